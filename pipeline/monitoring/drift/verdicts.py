"""Judging drift: per-feature verdicts (with data quality), prediction drift and label-based performance."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipeline.core.config import DriftSection, GroupSpec
from pipeline.monitoring.drift.quality import (
    ERR_EMPTY,
    ERR_MISSING,
    DriftInputError,
    check_batch,
    check_scores,
    column_quality,
    find_quality_issue,
    labelled_rows,
)
from pipeline.monitoring.drift.statistics import (
    categorical_stats,
    category_counts,
    correct_p_values,
    numeric_stats,
    numeric_values,
)

DRIFT = "drift"
DATA_QUALITY = "data quality"
NO_DRIFT = "no drift"
NOT_ENOUGH_DATA = "not enough data"
# Data quality is a finding like drift (exit 1; --exit-zero-on-verdict leaves it to the outputs),
# so the scheduled workflow takes its retrain-or-alert path instead of passing over it; retraining
# validates its data, which refuses the missing values that raised the finding.
EXIT_CODES = {NO_DRIFT: 0, DRIFT: 1, DATA_QUALITY: 1, NOT_ENOUGH_DATA: 2}
# The verdicts that call for action: the `drift` flag of drift.json and the workflow outputs.
FINDINGS = (DATA_QUALITY, DRIFT)
# Worst first: the report sorts by this, the overall verdict takes the first one present. Broken
# inputs come before drift: drift measured on them may be an artefact of the breakage.
_VERDICT_RANK = {DATA_QUALITY: 0, DRIFT: 1, NO_DRIFT: 2, NOT_ENOUGH_DATA: 3}

ERR_DUPLICATE_IDS = "the {name} table repeats {count} id values; ids must be unique to join"
ERR_NO_OVERLAP = "no prediction id matches a label id: nothing to score"


# --------------------------------------------------------------------------- feature drift


@dataclass(frozen=True)
class FeatureResult:
    feature: str
    kind: Literal["numeric", "categorical"]
    test: str
    statistic: float | None
    p_value: float | None
    p_value_corrected: float | None
    effect_name: str
    effect: float | None
    effect_threshold: float
    psi: float | None
    rows_reference: int
    rows_current: int
    missing_rows_current: int
    missing_share_current: float
    infinite_rows_current: int
    infinite_share_current: float
    missing_share_reference: float
    infinite_share_reference: float
    unseen_categories: dict[str, int] = field(default_factory=dict)
    verdict: str = NOT_ENOUGH_DATA
    quality_issue: str | None = None

    @property
    def severity(self) -> float:
        """Effect size as a multiple of its threshold: 1.0 is the alarm line."""
        return 0.0 if self.effect is None else self.effect / self.effect_threshold


def _one_feature(
    *,
    name: str,
    kind: Literal["numeric", "categorical"],
    reference: pd.Series,
    current: pd.Series,
    config: DriftSection,
) -> FeatureResult:
    quality_ref, quality_cur = column_quality(series=reference, kind=kind), column_quality(series=current, kind=kind)
    statistic = p_value = effect = psi = None
    unseen: dict[str, int] = {}
    if kind == "numeric":
        ref_values, cur_values = numeric_values(series=reference), numeric_values(series=current)
        rows_ref, rows_cur = ref_values.size, cur_values.size
        test, effect_name, threshold = "ks", "normalised_wasserstein", config.min_numeric_effect
        if min(rows_ref, rows_cur) >= config.min_rows:
            num = numeric_stats(
                reference=ref_values, current=cur_values, psi_bins=config.psi_bins, psi_epsilon=config.psi_epsilon
            )
            statistic, p_value, effect, psi = num.ks_statistic, num.p_value, num.normalised_wasserstein, num.psi
    else:
        ref_counts, cur_counts = category_counts(series=reference), category_counts(series=current)
        rows_ref, rows_cur = int(ref_counts.sum()), int(cur_counts.sum())
        test, effect_name, threshold = "chi2", "jensen_shannon", config.min_categorical_effect
        cat = categorical_stats(reference=ref_counts, current=cur_counts, psi_epsilon=config.psi_epsilon)
        # Unseen codes are worth naming even in a batch too small to judge.
        unseen = cat.unseen
        if min(rows_ref, rows_cur) >= config.min_rows:
            statistic, p_value, effect, psi = cat.chi2_statistic, cat.p_value, cat.jensen_shannon, cat.psi
    return FeatureResult(
        feature=name,
        kind=kind,
        test=test,
        statistic=statistic,
        p_value=p_value,
        p_value_corrected=None,
        effect_name=effect_name,
        effect=effect,
        effect_threshold=threshold,
        psi=psi,
        rows_reference=int(rows_ref),
        rows_current=int(rows_cur),
        missing_rows_current=quality_cur.missing,
        missing_share_current=quality_cur.missing_share,
        infinite_rows_current=quality_cur.infinite,
        infinite_share_current=quality_cur.infinite_share,
        missing_share_reference=quality_ref.missing_share,
        infinite_share_reference=quality_ref.infinite_share,
        unseen_categories=unseen,
        quality_issue=find_quality_issue(current=quality_cur, reference=quality_ref, max_share=config.max_null_share),
    )


def feature_drift(
    *,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    config: DriftSection,
    workers: int | None = None,
) -> list[FeatureResult]:
    """Test every feature, correct the p-values together and give each feature its verdict.

    Values that are missing or infinite take no part in a test; a feature with too many of them
    (see quality.find_quality_issue) is "data quality" whatever its test says. Results come back
    sorted by severity (data quality, drift, then by effect over threshold).
    """
    check_batch(frame=reference, name="reference", numeric=numeric, categorical=categorical)
    check_batch(frame=current, name="current", numeric=numeric, categorical=categorical)
    jobs: list[tuple[str, Literal["numeric", "categorical"]]] = [(c, "numeric") for c in numeric]
    jobs += [(c, "categorical") for c in categorical]
    # numpy's sorts and searches release the GIL, so threads use every core without copying data.
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        raw = list(
            pool.map(
                lambda job: _one_feature(
                    name=job[0], kind=job[1], reference=reference[job[0]], current=current[job[0]], config=config
                ),
                jobs,
            )
        )
    corrected = correct_p_values(
        p_values=[np.nan if r.p_value is None else r.p_value for r in raw], method=config.correction
    )
    results = []
    for result, p_adj in zip(raw, corrected, strict=True):
        judged = result
        if result.effect is not None:
            drifted = p_adj <= config.alpha and result.effect > result.effect_threshold
            judged = _replace(result, p_value_corrected=p_adj, verdict=DRIFT if drifted else NO_DRIFT)
        if result.quality_issue is not None:
            # The test statistics stay in the report, but broken inputs outrank what they say.
            judged = _replace(judged, verdict=DATA_QUALITY)
        results.append(judged)
    return sorted(results, key=lambda r: (_VERDICT_RANK[r.verdict], -r.severity, r.feature))


def _replace(result: FeatureResult, **changes: Any) -> FeatureResult:
    return FeatureResult(**{**asdict(result), **changes})


def overall_verdict(*, verdicts: Sequence[str]) -> str:
    """The worst verdict present (data quality, then drift); "not enough data" only when nothing
    could be judged at all.
    """
    return min(verdicts, key=_VERDICT_RANK.__getitem__, default=NOT_ENOUGH_DATA)


# --------------------------------------------------------------------------- predictions


def prediction_drift(
    *, reference_scores: np.ndarray, current_scores: np.ndarray, threshold: float, config: DriftSection
) -> dict[str, Any]:
    """Label-free proxy: the share of positive predictions and the score distribution."""
    ref = np.asarray(reference_scores, dtype=np.float64)
    cur = np.asarray(current_scores, dtype=np.float64)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    spec = config.prediction
    out: dict[str, Any] = {"rows_reference": int(ref.size), "rows_current": int(cur.size)}
    if min(ref.size, cur.size) < config.min_rows:
        return {**out, "verdict": NOT_ENOUGH_DATA}
    share_ref = float(np.mean(ref >= threshold))
    share_cur = float(np.mean(cur >= threshold))
    num = numeric_stats(reference=ref, current=cur, psi_bins=config.psi_bins, psi_epsilon=config.psi_epsilon)
    share_moved = abs(share_cur - share_ref) > spec.max_positive_share_change
    scores_moved = num.p_value <= config.alpha and num.normalised_wasserstein > spec.min_score_effect
    return {
        **out,
        "positive_share_reference": share_ref,
        "positive_share_current": share_cur,
        "positive_share_change": share_cur - share_ref,
        "score_ks_statistic": num.ks_statistic,
        "score_p_value": num.p_value,
        "score_normalised_wasserstein": num.normalised_wasserstein,
        "score_psi": num.psi,
        "verdict": DRIFT if share_moved or scores_moved else NO_DRIFT,
    }


# --------------------------------------------------------------------------- performance


def join_labels(
    *,
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    id_column: str,
    target: str,
    score_column: str,
    predictions_source: str = "predictions",
    labels_source: str = "labels",
) -> pd.DataFrame:
    """Inner join of predictions and late labels on the id; refuses ambiguous or empty joins,
    scores that are not probabilities and labels other than 0 and 1 (the sources name the files
    in those messages). Rows whose label is missing are not labelled yet and are left out.
    """
    for name, frame, needed in (
        ("predictions", predictions, (id_column, score_column)),
        ("labels", labels, (id_column, target)),
    ):
        if len(frame) == 0:
            raise DriftInputError(ERR_EMPTY.format(name=name))
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise DriftInputError(ERR_MISSING.format(name=name, columns=", ".join(missing)))
        repeated = int(frame[id_column].duplicated().sum())
        if repeated:
            raise DriftInputError(ERR_DUPLICATE_IDS.format(name=name, count=repeated))
    check_scores(scores=predictions[score_column], source=predictions_source, column=score_column)
    known = labelled_rows(labels=labels[[id_column, target]], source=labels_source, column=target)
    joined = predictions.merge(known, on=id_column, how="inner", validate="one_to_one")
    if joined.empty:
        raise DriftInputError(ERR_NO_OVERLAP)
    return joined


def _metrics(*, y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float | None]:
    from sklearn.metrics import accuracy_score, roc_auc_score

    # ROC AUC is undefined for a slice holding one class (a group whose labels are all alike).
    auc = float(roc_auc_score(y_true, scores)) if np.unique(y_true).size == 2 else None
    return {"roc_auc": auc, "accuracy": float(accuracy_score(y_true, scores >= threshold)), "rows": int(y_true.size)}


def performance(
    *,
    joined: pd.DataFrame,
    target: str,
    score_column: str,
    threshold: float,
    baseline: Mapping[str, float],
    groups: Mapping[str, GroupSpec],
    min_group_size: int,
    config: DriftSection,
    period_column: str | None = None,
) -> dict[str, Any]:
    """ROC AUC and accuracy overall, per period and per sensitive group, judged against the baseline.

    Overall and per-period metrics are judged (drop > max_drop is drift); groups are reported.
    The period is params performance.period_column unless `period_column` names another one
    (the prediction log's periods are derived from the prediction time).
    """
    from pipeline.core.groups import group_labels

    spec = config.performance
    period = period_column or spec.period_column
    y = joined[target].to_numpy(dtype=np.int64)
    s = joined[score_column].to_numpy(dtype=np.float64)

    def judged(mask: np.ndarray) -> dict[str, Any]:
        rows = int(mask.sum())
        if rows < config.min_rows:
            return {"rows": rows, "verdict": NOT_ENOUGH_DATA}
        values = _metrics(y_true=y[mask], scores=s[mask], threshold=threshold)
        drops = {m: baseline[m] - v for m in spec.metrics if (v := values[m]) is not None and m in baseline}
        worse = [m for m, d in drops.items() if d > spec.max_drop]
        return {**values, "drop": drops, "degraded": sorted(worse), "verdict": DRIFT if worse else NO_DRIFT}

    everything = np.ones(len(joined), dtype=bool)
    out: dict[str, Any] = {"baseline": {m: baseline.get(m) for m in spec.metrics}, "max_drop": spec.max_drop}
    out["overall"] = judged(everything)
    if period in joined.columns:
        periods = joined[period].astype(str).to_numpy()
        out["periods"] = {p: judged(periods == p) for p in sorted(set(periods))}
    by_group: dict[str, dict[str, Any]] = {}
    for feature, group_spec in groups.items():
        if feature not in joined.columns:
            continue
        labels = group_labels(values=joined[feature], spec=group_spec).to_numpy()
        by_group[feature] = {}
        for label in sorted(set(labels)):
            mask = labels == label
            if mask.sum() < min_group_size:
                by_group[feature][label] = {"rows": int(mask.sum()), "verdict": NOT_ENOUGH_DATA}
            else:
                by_group[feature][label] = _metrics(y_true=y[mask], scores=s[mask], threshold=threshold)
    out["groups"] = by_group
    period_verdicts = [v["verdict"] for v in out.get("periods", {}).values()]
    out["verdict"] = overall_verdict(verdicts=[out["overall"]["verdict"], *period_verdicts])
    return out


# --------------------------------------------------------------------------- summary


def summarise(
    *,
    features: Sequence[FeatureResult],
    prediction: Mapping[str, Any] | None = None,
    perf: Mapping[str, Any] | None = None,
    config: DriftSection,
) -> dict[str, Any]:
    """The whole check as one JSON-ready mapping; the verdict is the worst of its parts."""
    feature_verdicts = [f.verdict for f in features]
    data_verdict = overall_verdict(verdicts=feature_verdicts)
    parts = [data_verdict]
    if prediction is not None:
        parts.append(prediction["verdict"])
    if perf is not None:
        parts.append(perf["verdict"])
    # Missing labels or predictions never mask a data verdict: "not enough data" counts only
    # when no part could be judged.
    verdict = overall_verdict(verdicts=parts)
    return {
        "verdict": verdict,
        "drift": verdict in FINDINGS,
        "data_drift": {
            "verdict": data_verdict,
            "drifted_features": [f.feature for f in features if f.verdict == DRIFT],
            "data_quality": {f.feature: f.quality_issue for f in features if f.verdict == DATA_QUALITY},
            "unseen_categories": {f.feature: f.unseen_categories for f in features if f.unseen_categories},
            "by_severity": [f.feature for f in features],
            "features": {f.feature: {**asdict(f), "severity": f.severity} for f in features},
        },
        "prediction_drift": dict(prediction) if prediction is not None else None,
        "performance": dict(perf) if perf is not None else None,
        "settings": config.model_dump(mode="json"),
    }
