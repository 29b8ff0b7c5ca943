"""Compile the chosen pipeline to ONNX and admit it only when it scores like scikit-learn.

Both pipelines build_pipeline makes are written as ONNX graphs here, in float64 (`trees`,
`linear`): skl2onnx 1.20 turns the gradient-boosting one into silently wrong probabilities
(categorical splits read as thresholds, columns out of order) and cannot write the imputer's
missing indicators of the linear one. Either way the graph is scored beside scikit-learn on the prepared test split plus edge rows
(every listed code, an unlisted code, a missing value where params allow one, the numeric
bounds); the largest absolute probability difference must stay within train.onnx_tolerance.

Whatever goes wrong (no converter, a converter error, a parity miss) refuses the compiled path
with the reason, never the stage: the model then serves on scikit-learn.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.config import DataSection
from pipeline.stages.compiled.graph import OPSETS
from pipeline.stages.compiled.runtime import (
    META_KIND,
    META_MAX_DIFF,
    META_ROWS,
    META_SKLEARN_SHA256,
    META_TOLERANCE,
    MISSING_CODE,
    CompiledModel,
)

logger = logging.getLogger(__name__)

ONNX, SKLEARN = "onnx", "sklearn"
# A code no params list holds, for the edge rows: scored as unknown by both sides.
UNLISTED_CODE = "__unlisted__"


@dataclass(frozen=True)
class Compiled:
    """The outcome: serving_path onnx with the file's bytes, or sklearn with the reason."""

    serving_path: str
    reason: str | None
    onnx: bytes | None
    record: dict[str, Any] = field(default_factory=dict)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def convert(pipeline: Any, *, kind: str, name: str) -> Any:
    """The ONNX ModelProto of a fitted pipeline (raises when it has no exact form)."""
    if kind == "hist_gradient_boosting":
        from pipeline.stages.compiled.trees import hgb_graph

        return hgb_graph(pipeline, name=name)
    if kind == "logistic_regression":
        from pipeline.stages.compiled.linear import linear_graph

        return linear_graph(pipeline, name=name)
    raise ValueError(f"no ONNX converter for estimator kind {kind!r}")


def converter_name(kind: str) -> str:
    import onnx

    module = "trees" if kind == "hist_gradient_boosting" else "linear"
    opsets = ", ".join(f"{domain or 'ai.onnx'} {version}" for domain, version in OPSETS.items())
    return f"pipeline.stages.compiled.{module} (onnx {onnx.__version__}; {opsets})"


def edge_rows(frame: pd.DataFrame, *, data: DataSection) -> pd.DataFrame:
    """Rows that differ from the first row of `frame` in one column each: every listed code, an
    unlisted code and a missing code per categorical column; each numeric column at its bounds
    and, where params allow a null, missing. Scored by both sides, they cover the inputs a test
    split may lack (a category training never saw, a null in a nullable column).
    """
    base = frame[list(data.features)].iloc[[0]]
    variants: list[pd.DataFrame] = []

    def vary(column: str, values: list[Any]) -> None:
        if values:
            rows = pd.concat([base] * len(values), ignore_index=True)
            rows[column] = pd.Series(values, dtype=rows[column].dtype)
            variants.append(rows)

    for column in data.categorical_features:
        vary(column, [*data.categorical[column].values, UNLISTED_CODE, np.nan])
    for column in data.numeric_features:
        bounds = data.numeric[column]
        vary(column, [bounds.min, bounds.max, *([np.nan] if bounds.nullable else [])])
    return pd.concat(variants, ignore_index=True) if variants else base.iloc[0:0]


def parity(pipeline: Any, compiled: CompiledModel, frame: pd.DataFrame) -> float:
    """The largest absolute difference of the positive-class probability; inf if any is NaN."""
    expected = np.asarray(pipeline.predict_proba(frame))[:, 1]
    got = compiled.predict_proba(frame)[:, 1]
    if got.shape != expected.shape or not np.all(np.isfinite(got)):
        return float("inf")
    return float(np.max(np.abs(got - expected))) if len(got) else 0.0


def _refuse(reason: str, record: dict[str, Any]) -> Compiled:
    logger.warning("compiled path refused, the model serves on scikit-learn: %s", reason)
    return Compiled(SKLEARN, reason, None, {**record, "serving_path": SKLEARN, "reason": reason})


def compile_model(
    pipeline: Any, *, kind: str, data: DataSection, test: pd.DataFrame, tolerance: float, sklearn_sha256: str
) -> Compiled:
    """Convert, check parity on `test` (canonical frame) plus edge rows, and stamp the file."""
    import onnxruntime

    record: dict[str, Any] = {
        "estimator": kind,
        "converter": None,
        "onnxruntime": onnxruntime.__version__,
        "sklearn_sha256": sklearn_sha256,
        "onnx_sha256": None,
        "parity": None,
    }
    codes = [c for col in data.categorical_features for c in data.categorical[col].values]
    if MISSING_CODE in codes or UNLISTED_CODE in codes:
        return _refuse("a category code in params equals the text used for missing or unlisted codes", record)
    try:
        record["converter"] = converter_name(kind)
        proto = convert(pipeline, kind=kind, name="model")
        _stamp(proto, {META_KIND: kind, META_SKLEARN_SHA256: sklearn_sha256})
        compiled = CompiledModel(
            proto.SerializeToString(), numeric=data.numeric_features, categorical=data.categorical_features
        )
    except Exception as exc:  # every converter failure means the same thing: no compiled path
        return _refuse(f"conversion failed: {type(exc).__name__}: {_first_line(exc)}", record)
    try:
        frame = pd.concat([test[list(data.features)], edge_rows(test, data=data)], ignore_index=True)
        diff = parity(pipeline, compiled, frame)
    except Exception as exc:  # the graph loaded but cannot score these rows
        return _refuse(f"the ONNX graph failed on the parity rows: {type(exc).__name__}: {_first_line(exc)}", record)
    checked = {
        "split": "test",
        "rows": len(frame),
        # Text: the report writer rounds floats to 6 decimals, which would zero both.
        "max_abs_diff": f"{diff:.3e}",
        "tolerance": f"{tolerance:g}",
        "passed": diff <= tolerance,
    }
    record["parity"] = checked
    if not diff <= tolerance:
        return _refuse(f"parity failed: max |p_onnx - p_sklearn| = {diff:.3e} > {tolerance:g}", record)
    _stamp(proto, {META_MAX_DIFF: f"{diff:.3e}", META_TOLERANCE: repr(tolerance), META_ROWS: str(len(frame))})
    onnx = proto.SerializeToString()
    logger.info("compiled path admitted: max |p_onnx - p_sklearn| = %.3e over %d rows", diff, len(frame))
    return Compiled(ONNX, None, onnx, {**record, "serving_path": ONNX, "reason": None, "onnx_sha256": sha256(onnx)})


def _stamp(proto: Any, entries: dict[str, str]) -> None:
    from onnx import helper

    current = {p.key: p.value for p in proto.metadata_props}
    current.update(entries)
    helper.set_model_props(proto, dict(sorted(current.items())))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


def write(compiled: Compiled, *, onnx_path: Path, report_path: Path) -> None:
    """The ONNX file (empty when refused: dvc tracks the path either way) and the report."""
    from pipeline.core import io

    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    onnx_path.write_bytes(compiled.onnx or b"")
    io.write_json({**compiled.record, "onnx_path": onnx_path.as_posix() if compiled.onnx else None}, report_path)
