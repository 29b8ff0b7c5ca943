"""Group metrics with fairlearn's MetricFrame over each sensitive feature, and a verdict
from the thresholds in params. Groups smaller than min_group_size are shown, not judged.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.config import FairnessSection, Params
from pipeline.core.groups import sensitive_frame

logger = logging.getLogger(__name__)


class FairnessFailed(RuntimeError):
    """A fairness difference exceeds its threshold; the report says which."""


def _rate(numerator: np.ndarray, denominator: np.ndarray) -> float:
    # A group with no positives has no true positive rate: say so (NaN) instead of warning.
    d = int(denominator.sum())
    return float(numerator.sum()) / d if d else math.nan


def selection_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_pred)) if len(y_pred) else math.nan


def true_positive_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    pos = np.asarray(y_true) == 1
    return _rate(np.asarray(y_pred)[pos] == 1, pos[pos])


def false_positive_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    neg = np.asarray(y_true) == 0
    return _rate(np.asarray(y_pred)[neg] == 1, neg[neg])


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred))) if len(y_true) else math.nan


METRICS = {
    "selection_rate": selection_rate,
    "true_positive_rate": true_positive_rate,
    "false_positive_rate": false_positive_rate,
    "accuracy": accuracy,
}


def _spread(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.max() - values.min()) if len(values) >= 2 else math.nan


def assess(
    *, y_true: np.ndarray, y_pred: np.ndarray, sensitive: pd.DataFrame, section: FairnessSection
) -> dict[str, Any]:
    """Pure core: per feature, the group table, the differences and the verdict."""
    from fairlearn.metrics import MetricFrame, count

    features: dict[str, Any] = {}
    for feature in section.groups:
        frame = MetricFrame(
            metrics={**METRICS, "count": count},
            y_true=y_true,
            y_pred=y_pred,
            sensitive_features=sensitive[feature],
        )
        table = frame.by_group
        judged = table[table["count"] >= section.min_group_size]
        differences = {
            "demographic_parity": _spread(judged["selection_rate"]),
            "equalized_odds": max(
                (
                    d
                    for d in (_spread(judged["true_positive_rate"]), _spread(judged["false_positive_rate"]))
                    if not math.isnan(d)
                ),
                default=math.nan,
            ),
        }
        limits = section.thresholds[feature].model_dump()
        breaches = [
            f"{feature}: {name.replace('_', ' ')} difference {value:.3f} exceeds {limits[name]}"
            for name, value in differences.items()
            if limits[name] is not None and not math.isnan(value) and value > limits[name]
        ]
        features[feature] = {
            "groups": [
                {
                    "group": str(group),
                    "count": int(row["count"]),
                    "judged": bool(row["count"] >= section.min_group_size),
                    **{m: float(row[m]) for m in METRICS},
                }
                for group, row in table.iterrows()
            ],
            "differences": differences,
            "thresholds": limits,
            "passed": not breaches,
            "breaches": breaches,
        }
    breaches = [b for f in features.values() for b in f["breaches"]]
    return {
        "passed": not breaches,
        "breaches": breaches,
        "min_group_size": section.min_group_size,
        "features": features,
    }


def fmt_rate(value: float | None) -> str:
    """Three decimals, or n/a for a missing or NaN rate (a group too small to judge)."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def render_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Fairness: {'PASSED' if report['passed'] else 'FAILED'}", ""]
    lines += [f"- {b}" for b in report["breaches"]]
    lines.append(f"Groups with fewer than {report['min_group_size']} rows are shown but not judged.")
    lines.append("")
    for feature, body in report["features"].items():
        diffs = body["differences"]
        limits = body["thresholds"]
        lines += [
            f"## {feature}",
            "",
            f"Demographic parity difference {fmt_rate(diffs['demographic_parity'])} (limit {fmt_rate(limits['demographic_parity'])}); "
            f"equalized odds difference {fmt_rate(diffs['equalized_odds'])} (limit {fmt_rate(limits['equalized_odds'])}).",
            "",
            "| group | rows | judged | selection rate | TPR | FPR | accuracy |",
            "|---|---:|:---:|---:|---:|---:|---:|",
        ]
        for g in body["groups"]:
            lines.append(
                f"| {g['group']} | {g['count']} | {'yes' if g['judged'] else 'no'} | {fmt_rate(g['selection_rate'])} | "
                f"{fmt_rate(g['true_positive_rate'])} | {fmt_rate(g['false_positive_rate'])} | {fmt_rate(g['accuracy'])} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(*, params: Params) -> dict[str, Any]:
    from pipeline.core import io

    model = io.load_model(params.paths.model)
    test = io.read_table(params.paths.prepared / "test.parquet")
    proba = model.predict_proba(test[list(params.data.features)])[:, 1]
    y_pred = (proba >= params.evaluate.threshold).astype(int)
    sensitive = sensitive_frame(frame=test, groups=params.fairness.groups)
    report = assess(
        y_true=test[params.base.target].to_numpy(), y_pred=y_pred, sensitive=sensitive, section=params.fairness
    )
    io.write_json(report, params.paths.reports / "fairness.json")
    io.write_text(render_markdown(report), params.paths.reports / "fairness.md")
    if not report["passed"]:
        raise FairnessFailed("fairness check failed:\n" + "\n".join(f"  - {b}" for b in report["breaches"]))
    return report
