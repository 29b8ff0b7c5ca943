"""The drift check: compare a current batch with the reference data feature by feature, compare
the model's scores with the reference scores, and, once late labels arrive, judge ROC AUC and
accuracy against the champion's baseline; the worst part gives the verdict and the exit code.

A feature drifts only when its corrected p-value is significant AND its effect size passes its
threshold: at production sample sizes every p-value is tiny, so significance alone would flag
trivial shifts. A feature whose values went missing or infinite (beyond the reference's own
share) fails "data quality", a finding like drift. `quality` holds the input refusals and the
data-quality rule, `statistics` the pure tests, `verdicts` the judging, `report` drift.md and
its plots, `check` the reading of inputs and the whole run.
"""

from pipeline.monitoring.drift.check import batch_from_log, run
from pipeline.monitoring.drift.quality import DriftInputError
from pipeline.monitoring.drift.statistics import categorical_stats, correct_p_values, numeric_stats, psi_from_shares
from pipeline.monitoring.drift.verdicts import (
    DATA_QUALITY,
    DRIFT,
    EXIT_CODES,
    NO_DRIFT,
    NOT_ENOUGH_DATA,
    FeatureResult,
    feature_drift,
    join_labels,
    overall_verdict,
    performance,
    prediction_drift,
)

__all__ = [
    "DATA_QUALITY",
    "DRIFT",
    "EXIT_CODES",
    "NOT_ENOUGH_DATA",
    "NO_DRIFT",
    "DriftInputError",
    "FeatureResult",
    "batch_from_log",
    "categorical_stats",
    "correct_p_values",
    "feature_drift",
    "join_labels",
    "numeric_stats",
    "overall_verdict",
    "performance",
    "prediction_drift",
    "psi_from_shares",
    "run",
]
