"""Clean, split (seeded, stable per id), and refuse data a model could game: under-represented
classes or groups, and single features that leak the target.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.config import Params
from pipeline.core.groups import sensitive_frame
from pipeline.core.schema import conform

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


class PrepareFailed(RuntimeError):
    """The data is valid but unfit to train on; the message says which check failed."""


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


def clean(*, frame: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Optional seeded sample, the canonical column types, stable row order (so reruns hash the same)."""
    if params.data.sample_rows and params.data.sample_rows < len(frame):
        frame = frame.sample(n=params.data.sample_rows, random_state=params.base.seed)
    return conform(frame, params).sort_values(params.base.id_column).reset_index(drop=True)


def split_position(*, ids: pd.Series, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per id, fixed by the id and the seed alone."""
    key = f"{seed:016d}"[-16:]
    # As text: pandas applies the hash key to strings only, and ids may be either.
    hashed = pd.util.hash_pandas_object(ids.astype(str).reset_index(drop=True), index=False, hash_key=key)
    return hashed.to_numpy(dtype=np.uint64) / float(2**64)


def split(*, frame: pd.DataFrame, params: Params) -> dict[str, pd.DataFrame]:
    """Seeded split by a hash of each row's id, stratified by the target in expectation.

    A row's split depends on its id and the seed only, never on the other rows: when a
    retraining adds production rows, every reference row stays where it was, so the new test
    split holds no row that the champion trained on and the gate compares the two fairly.
    """
    position = split_position(ids=frame[params.base.id_column], seed=params.base.seed)
    test_cut = params.prepare.test_size
    valid_cut = test_cut + params.prepare.valid_size
    masks = {
        "train": position >= valid_cut,
        "valid": (position >= test_cut) & (position < valid_cut),
        "test": position < test_cut,
    }
    return {name: frame[masks[name]].sort_values(params.base.id_column).reset_index(drop=True) for name in SPLITS}


def representation_checks(*, frame: pd.DataFrame, params: Params) -> list[Check]:
    rep, target = params.prepare.representation, params.base.target
    checks: list[Check] = []
    counts = frame[target].value_counts()
    for cls in (0, 1):
        n = int(counts.get(cls, 0))
        share = n / max(len(frame), 1)
        ok = n >= rep.min_rows_per_class and share >= rep.min_class_share
        checks.append(Check(f"class {cls}", ok, f"{n} rows ({share:.1%})"))
    groups = sensitive_frame(frame=frame, groups={f: params.fairness.groups[f] for f in rep.group_features})
    for feature in rep.group_features:
        stats = frame[target].groupby(groups[feature]).agg(["size", "mean"])
        for group, row in stats.iterrows():
            n, rate = int(row["size"]), float(row["mean"])
            ok = n >= rep.min_rows_per_group and rate >= rep.min_group_positive_rate
            checks.append(Check(f"{feature}={group}", ok, f"{n} rows, positive rate {rate:.3f}"))
    return checks


def single_feature_auc(*, frame: pd.DataFrame, params: Params) -> dict[str, float]:
    """ROC AUC of each feature alone (categories by their target rate), direction-free."""
    from sklearn.metrics import roc_auc_score

    y = frame[params.base.target].to_numpy()
    if len(np.unique(y)) < 2:
        return {}
    scores: dict[str, float] = {}
    for col in params.data.features:
        x = frame[col]
        if col in params.data.categorical:
            x = x.map(frame.groupby(col)[params.base.target].mean())
        missing = x.isna()
        if missing.any():
            # A missing category ranks by its own target rate, as a level of its own; a missing
            # number sits at the median, so missingness alone cannot look like a leak.
            target_rate = float(frame[params.base.target][missing].mean())
            x = x.astype("float64").fillna(target_rate if col in params.data.categorical else x.median())
        auc = float(roc_auc_score(y, x.to_numpy(dtype="float64")))
        scores[col] = max(auc, 1 - auc)
    return scores


def prepare(*, frame: pd.DataFrame, params: Params) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Pure core of the stage: the splits and the report, or PrepareFailed."""
    cleaned = clean(frame=frame, params=params)
    parts = split(frame=cleaned, params=params)
    checks = representation_checks(frame=parts["train"], params=params)
    aucs = single_feature_auc(frame=parts["train"], params=params)
    limit = params.prepare.leakage.max_single_feature_auc
    leaks = {col: auc for col, auc in aucs.items() if auc >= limit}
    report = {
        "rows": {name: len(part) for name, part in parts.items()},
        "positive_rate": {name: float(part[params.base.target].mean()) for name, part in parts.items()},
        "representation": [c.__dict__ for c in checks],
        "single_feature_auc": dict(sorted(aucs.items(), key=lambda kv: -kv[1])),
        "leakage_limit": limit,
    }
    problems = [f"under-represented {c.name}: {c.detail}" for c in checks if not c.passed]
    problems += [f"target leakage: {col} alone has ROC AUC {auc:.3f} (limit {limit})" for col, auc in leaks.items()]
    report["passed"] = not problems
    report["problems"] = problems
    if problems:
        raise PrepareFailed("prepare refused the data:\n" + "\n".join(f"  - {p}" for p in problems))
    return parts, report


def main(*, params: Params) -> dict[str, Any]:
    from pipeline.core import io

    frame = io.read_table(params.data.raw)
    parts, report = prepare(frame=frame, params=params)
    for name, part in parts.items():
        io.write_table(part, params.paths.prepared / f"{name}.parquet")
    io.write_json(report, params.paths.reports / "prepare.json")
    return report
