"""Score the model on the test split: metrics.json, plot data for `dvc plots`, and
permutation feature importance.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)
from sklearn.pipeline import Pipeline

from pipeline.core.config import Params

logger = logging.getLogger(__name__)

PLOTS_DIR = "plots"


def classification_metrics(*, y_true: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, Any]:
    pred = (proba >= threshold).astype(int)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, pred, labels=[0, 1], zero_division=0)
    return {
        "rows": len(y_true),
        "accuracy": float(accuracy_score(y_true, pred)),
        "roc_auc": float(roc_auc_score(y_true, proba)),
        "average_precision": float(average_precision_score(y_true, proba)),
        "f1": float(f1_score(y_true, pred, zero_division=0)),
        "positive_rate": float(pred.mean()),
        "per_class": {
            str(cls): {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, cls in enumerate((0, 1))
        },
    }


def plot_tables(*, y_true: np.ndarray, proba: np.ndarray, threshold: float, bins: int) -> dict[str, pd.DataFrame]:
    fpr, tpr, _ = roc_curve(y_true, proba)
    precision, recall, _ = precision_recall_curve(y_true, proba)
    prob_true, prob_pred = calibration_curve(y_true, proba, n_bins=bins, strategy="quantile")
    return {
        "roc": pd.DataFrame({"fpr": fpr, "tpr": tpr}).round(5),
        "precision_recall": pd.DataFrame({"recall": recall, "precision": precision}).round(5),
        "calibration": pd.DataFrame({"mean_predicted": prob_pred, "observed_rate": prob_true}).round(5),
        "confusion": pd.DataFrame({"actual": y_true, "predicted": (proba >= threshold).astype(int)}),
    }


def permutation_importance_table(*, model: Pipeline, test: pd.DataFrame, params: Params) -> list[dict[str, Any]]:
    """Drop in ROC AUC when one raw column is shuffled, on a seeded subsample of the test split."""
    from sklearn.inspection import permutation_importance

    features, target = list(params.data.features), params.base.target
    cfg = params.evaluate.permutation
    sample = test.sample(n=min(cfg.max_rows, len(test)), random_state=params.base.seed)
    result = permutation_importance(
        model,
        sample[features],
        sample[target],
        scoring="roc_auc",
        n_repeats=cfg.n_repeats,
        random_state=params.base.seed,
        n_jobs=1,
    )
    rows = [
        {"feature": f, "importance_mean": float(m), "importance_std": float(s)}
        for f, m, s in zip(features, result.importances_mean, result.importances_std, strict=True)
    ]
    return sorted(rows, key=lambda r: -r["importance_mean"])


def main(*, params: Params) -> dict[str, Any]:
    from pipeline.core import io

    model = io.load_model(params.paths.model)
    test = io.read_table(params.paths.prepared / "test.parquet")
    y = test[params.base.target].to_numpy()
    proba = model.predict_proba(test[list(params.data.features)])[:, 1]
    metrics = classification_metrics(y_true=y, proba=proba, threshold=params.evaluate.threshold)
    io.write_json(metrics, params.paths.reports / "metrics.json")
    tables = plot_tables(
        y_true=y, proba=proba, threshold=params.evaluate.threshold, bins=params.evaluate.calibration_bins
    )
    for name, table in tables.items():
        path = params.paths.reports / PLOTS_DIR / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, index=False)
    importance = permutation_importance_table(model=model, test=test, params=params)
    io.write_json({"scoring": "roc_auc", "features": importance}, params.paths.reports / "importance.json")
    return metrics
