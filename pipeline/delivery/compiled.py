"""Which path scores a loaded version: onnxruntime when the version carries a parity-checked ONNX
file and params serve.compiled allows it, scikit-learn otherwise, with the reason.

A registered version's ONNX file lies inside its artifact (extra_files/), so the artifact hash
that `pipeline register` tags and the deploy manifest pins covers it like the skops file. A model
file served without the registry takes the .onnx file beside it only when that file names the
model file's sha256 (the train stage writes both). Before serving either way, the compiled model
scores the probe row beside scikit-learn and must agree within the tolerance it was admitted with.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.config import DataSection
from pipeline.stages.compiled.export import ONNX, SKLEARN
from pipeline.stages.compiled.runtime import (
    META_MAX_DIFF,
    META_SKLEARN_SHA256,
    META_TOLERANCE,
    CompiledModel,
    CompiledModelError,
)

logger = logging.getLogger(__name__)

# Where mlflow's extra_files puts the train stage's ONNX file inside a logged model.
ARTIFACT_ONNX = Path("extra_files") / "model.onnx"
MODES = ("auto", "off")
REASON_OFF = "params serve.compiled is off"
REASON_ABSENT = "the version carries no parity-checked ONNX file"


@dataclass(frozen=True)
class ServedModel:
    """A loaded version as it serves: `model` is what the batcher calls predict_proba on."""

    name: str
    version: str
    run_id: str | None
    model: Any
    signature_columns: list[str]
    serving_path: str
    path_reason: str | None


def onnx_in_artifact(root: Path) -> bytes | None:
    """The ONNX file inside a downloaded (already hash-verified) model artifact, if any."""
    path = root / ARTIFACT_ONNX
    data = path.read_bytes() if path.is_file() else b""
    return data or None


def onnx_beside(model_path: Path) -> bytes | None:
    """The .onnx file beside a model file when it was compiled from exactly that file's bytes."""
    import onnx

    path = model_path.with_suffix(".onnx")
    data = path.read_bytes() if path.is_file() else b""
    if not data or not model_path.is_file():
        return None
    try:
        meta = {p.key: p.value for p in onnx.load_model_from_string(data).metadata_props}
    except Exception as exc:  # a damaged file is a reason to serve scikit-learn, not to stop
        logger.warning("%s is not a readable ONNX file (%s): serving %s on scikit-learn", path, exc, model_path)
        return None
    if meta.get(META_SKLEARN_SHA256) != hashlib.sha256(model_path.read_bytes()).hexdigest():
        logger.warning("%s was not compiled from %s: serving it on scikit-learn", path, model_path)
        return None
    return data


def serving_path(model: Any) -> str:
    return str(getattr(model, "serving_path", SKLEARN))


def served(loaded: Any, *, mode: str, data: DataSection, probe: pd.DataFrame, threads: int = 1) -> ServedModel:
    """The loaded version on the compiled path when it qualifies, else on scikit-learn."""
    keep = {
        "name": loaded.name,
        "version": loaded.version,
        "run_id": loaded.run_id,
        "signature_columns": list(loaded.signature_columns),
    }
    onnx: bytes | None = getattr(loaded, "compiled", None)
    reason = REASON_OFF if mode == "off" else None if onnx else REASON_ABSENT
    if reason is None and onnx is not None:
        try:
            compiled = checked(onnx, sklearn=loaded.model, data=data, probe=probe, threads=threads)
            return ServedModel(**keep, model=compiled, serving_path=ONNX, path_reason=None)
        except CompiledModelError as exc:
            reason = f"ONNX file refused: {exc}"
            logger.warning("model version %s serves on scikit-learn: %s", loaded.version, reason)
    return ServedModel(**keep, model=loaded.model, serving_path=SKLEARN, path_reason=reason)


def checked(onnx: bytes, *, sklearn: Any, data: DataSection, probe: pd.DataFrame, threads: int) -> CompiledModel:
    model = CompiledModel(onnx, numeric=data.numeric_features, categorical=data.categorical_features, threads=threads)
    meta = model.metadata
    if META_MAX_DIFF not in meta or META_TOLERANCE not in meta:
        raise CompiledModelError("it carries no parity record")
    tolerance = float(meta[META_TOLERANCE])
    try:
        got = model.predict_proba(probe)[:, 1]
    except Exception as exc:  # onnxruntime's own error types
        raise CompiledModelError(f"it cannot score the probe row: {exc}") from exc
    diff = float(np.max(np.abs(got - np.asarray(sklearn.predict_proba(probe))[:, 1])))
    if not diff <= tolerance:
        raise CompiledModelError(f"it scores the probe row {diff:.3e} away from scikit-learn (tolerance {tolerance:g})")
    return model
