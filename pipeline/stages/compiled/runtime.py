"""Scoring a compiled model: an onnxruntime session fed from the canonical frame.

The graph takes one [N, 1] input per model column: float64 numbers (NaN for a missing value)
and text codes. A missing code travels as MISSING_CODE, a text no params list may hold, so the
graph scores it exactly like scikit-learn scores NaN: as unknown (one-hot zeros) or missing
(the trees' missing branch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

MISSING_CODE = "\x00"
OUTPUT = "probabilities"
# Keys of the ONNX file's metadata: what it was checked against, so a copy found beside a
# model file proves it belongs to that file and passed parity.
META_SKLEARN_SHA256 = "pipeline.sklearn_sha256"
META_KIND = "pipeline.estimator"
META_MAX_DIFF = "pipeline.parity_max_abs_diff"
META_TOLERANCE = "pipeline.parity_tolerance"
META_ROWS = "pipeline.parity_rows"


class CompiledModelError(ValueError):
    """An ONNX file that cannot score this project's rows (unreadable, other inputs)."""


class CompiledModel:
    """predict_proba on onnxruntime, over the same canonical frame scikit-learn scores."""

    def __init__(self, onnx: bytes, *, numeric: Sequence[str], categorical: Sequence[str], threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One thread per call: on a small machine a pool only contends with the event loop,
        # and a one-row graph finishes in tens of microseconds.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 4
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad graphs
            raise CompiledModelError(f"onnxruntime cannot load the graph: {exc}") from exc
        self.numeric, self.categorical = list(numeric), list(categorical)
        kinds = {i.name: i.type for i in self.session.get_inputs()}
        wanted = {**{c: "tensor(double)" for c in self.numeric}, **{c: "tensor(string)" for c in self.categorical}}
        if kinds != wanted:
            raise CompiledModelError(f"the graph's inputs {sorted(kinds.items())} are not the model columns")
        if OUTPUT not in {o.name for o in self.session.get_outputs()}:
            raise CompiledModelError(f"the graph has no {OUTPUT!r} output")
        self._order = [*self.numeric, *self.categorical]

    @property
    def metadata(self) -> Mapping[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def feeds(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """One [N, 1] array per input, from the frame's model columns.

        One conversion of the whole frame: for the few rows a request carries, pandas' per-column
        access costs more than the graph itself.
        """
        values = frame[self._order].to_numpy(dtype=object) if list(frame.columns) != self._order else None
        if values is None:
            values = frame.to_numpy(dtype=object)
        n_num = len(self.numeric)
        out: dict[str, np.ndarray] = {}
        if n_num:
            numbers = np.ascontiguousarray(values[:, :n_num].T, dtype=np.float64)
            out.update({c: numbers[j].reshape(-1, 1) for j, c in enumerate(self.numeric)})
        if self.categorical:
            codes = values[:, n_num:].T
            missing = pd.isna(codes)
            codes = np.where(missing, MISSING_CODE, codes) if missing.any() else np.ascontiguousarray(codes)
            out.update({c: codes[j].reshape(-1, 1) for j, c in enumerate(self.categorical)})
        return out

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        proba: Any = self.session.run([OUTPUT], self.feeds(frame))[0]
        return np.asarray(proba, dtype=np.float64)
