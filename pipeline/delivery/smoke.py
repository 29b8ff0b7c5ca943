"""`pipeline smoke`: load the candidate the way serving does, score a fixed sample, check the
output's shape and range and the latency of a one-row prediction.
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.core.config import Params, SmokeSection

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

logger = logging.getLogger(__name__)

SMOKE_REPORT = "smoke.json"


class SmokeFailed(RuntimeError):
    """The model loaded but its output or its latency is wrong; the message lists each problem."""


def sample(*, raw: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Seeded raw rows, the model's inputs only, in the form the service hands the model."""
    from pipeline.core.schema import conform

    rows = min(params.smoke.rows, len(raw))
    picked = raw.sample(n=rows, random_state=params.base.seed)
    return conform(picked, params, with_target=False)[list(params.data.features)].reset_index(drop=True)


def output_problems(*, proba: Any, rows: int) -> list[str]:
    """Pure: what is wrong with predict_proba's output for `rows` inputs (empty when fine)."""
    values = np.asarray(proba)
    if values.ndim != 2 or values.shape[1] != 2:
        return [f"expected two probability columns per row, got shape {values.shape}"]
    problems = []
    if values.shape[0] != rows:
        problems.append(f"expected {rows} rows of probabilities, got {values.shape[0]}")
    if not np.isfinite(values).all():
        problems.append("probabilities contain NaN or infinite values")
    elif ((values < 0) | (values > 1)).any():
        problems.append("probabilities outside [0, 1]")
    elif not np.allclose(values.sum(axis=1), 1.0, atol=1e-6):
        problems.append("class probabilities of a row do not sum to 1")
    return problems


def median_predict_ms(*, model: Pipeline, rows: pd.DataFrame, repeats: int) -> float:
    """Median wall time of predict_proba on rows; the first call is a warm-up and not counted."""
    model.predict_proba(rows)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict_proba(rows)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def check(*, model: Pipeline, frame: pd.DataFrame, section: SmokeSection) -> dict[str, Any]:
    proba = model.predict_proba(frame)
    problems = output_problems(proba=proba, rows=len(frame))
    latency = median_predict_ms(model=model, rows=frame.head(1), repeats=section.repeats)
    if latency > section.max_single_row_ms:
        problems.append(f"one-row prediction took {latency:.1f} ms, over the {section.max_single_row_ms} ms bound")
    values = np.asarray(proba, dtype=float)
    usable = values.ndim == 2 and values.shape[1] == 2 and np.isfinite(values).all()
    return {
        "passed": not problems,
        "problems": problems,
        "rows": len(frame),
        "single_row_ms": latency,
        "max_single_row_ms": section.max_single_row_ms,
        "score_mean": float(values[:, 1].mean()) if usable and len(values) else None,
    }


def load(*, params: Params, model_path: Path | None, version: str | None) -> tuple[Pipeline, str]:
    """The model exactly as serving loads it: the registry (verified) for a version, else the file."""
    if version is not None:
        from pipeline.delivery import artifacts

        loaded = artifacts.load_model_version(name=params.tracking.registered_model, version=version)
        return loaded.model, f"{params.tracking.registered_model} version {loaded.version}"
    from pipeline.core import io

    path = model_path or params.paths.model
    return io.load_model(path), str(path)


def run(*, params: Params, model_path: Path | None = None, version: str | None = None) -> dict[str, Any]:
    from pipeline.core import io

    model, where = load(params=params, model_path=model_path, version=version)
    frame = sample(raw=io.read_table(params.data.raw), params=params)
    report = {"model": where, **check(model=model, frame=frame, section=params.smoke)}
    io.write_json(report, params.paths.reports / SMOKE_REPORT)
    if not report["passed"]:
        raise SmokeFailed(f"smoke test of {where} failed:\n" + "\n".join(f"  - {p}" for p in report["problems"]))
    logger.info("smoke test of %s passed: %d rows, one row in %.1f ms", where, len(frame), report["single_row_ms"])
    return report
