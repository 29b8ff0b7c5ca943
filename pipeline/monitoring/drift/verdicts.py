"""Drift monitoring: per-feature tests, prediction drift and label-based performance.

The statistics are pure functions of arrays and frames; reading files, writing reports and
exit codes live at the bottom (`run`). The verdict for one feature is "drift" only when the
corrected p-value is significant AND the effect size passes its threshold: at production
sample sizes every p-value is tiny, so significance alone would flag trivial shifts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

from pipeline.core.config import DriftSection, GroupSpec, Params

logger = logging.getLogger(__name__)

DRIFT = "drift"
NO_DRIFT = "no drift"
NOT_ENOUGH_DATA = "not enough data"
EXIT_CODES = {NO_DRIFT: 0, DRIFT: 1, NOT_ENOUGH_DATA: 2}
# Worst first: the report sorts by this, the overall verdict takes the first one present.
_VERDICT_RANK = {DRIFT: 0, NO_DRIFT: 1, NOT_ENOUGH_DATA: 2}
# scipy.stats.ks_2samp's own switch from exact to asymptotic p-values (its MAX_AUTO_N).
_FINITE_KS_MAX_N = 10_000
_PLOT_BINS = 30

ERR_EMPTY = "the {name} batch is empty (0 rows)"
ERR_MISSING = "the {name} batch lacks required columns: {columns}"
ERR_NUMERIC_TYPE = "column {column!r} of the {name} batch must be numeric but holds {dtype}"
ERR_CATEGORICAL_TYPE = "column {column!r} of the {name} batch must hold category codes (strings) but holds {dtype}"
ERR_DUPLICATE_IDS = "the {name} table repeats {count} id values; ids must be unique to join"
ERR_NO_OVERLAP = "no prediction id matches a label id: nothing to score"
ERR_SCORE_RANGE = "column {column!r} of the {name} table must hold probabilities in [0, 1]"
ERR_SOURCE = "give either --current (with --predictions if any) or --log-url, which supplies both"


class DriftInputError(ValueError):
    """An input batch cannot be checked: empty, missing columns or wrong types."""


# --------------------------------------------------------------------------- input checks


def check_batch(*, frame: pd.DataFrame, name: str, numeric: Sequence[str], categorical: Sequence[str]) -> None:
    """Refuse a batch that cannot be compared, naming the exact problem."""
    if len(frame) == 0:
        raise DriftInputError(ERR_EMPTY.format(name=name))
    missing = [c for c in (*numeric, *categorical) if c not in frame.columns]
    if missing:
        raise DriftInputError(ERR_MISSING.format(name=name, columns=", ".join(missing)))
    for column in numeric:
        dtype = frame[column].dtype
        if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            raise DriftInputError(ERR_NUMERIC_TYPE.format(column=column, name=name, dtype=dtype))
    for column in categorical:
        dtype = frame[column].dtype
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_float_dtype(dtype):
            raise DriftInputError(ERR_CATEGORICAL_TYPE.format(column=column, name=name, dtype=dtype))


def _numeric_values(series: pd.Series) -> np.ndarray:
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    return values[np.isfinite(values)]


def _category_counts(series: pd.Series) -> pd.Series:
    # CSV readers turn code columns such as SCHL into integers; codes compare as strings.
    if not isinstance(series.dtype, pd.StringDtype) and not pd.api.types.is_object_dtype(series.dtype):
        series = series.astype("string")
    counts = series.value_counts(dropna=True, sort=False)
    counts.index = counts.index.astype(str)
    return counts


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class NumericStats:
    ks_statistic: float
    p_value: float
    wasserstein: float
    normalised_wasserstein: float
    psi: float


@dataclass(frozen=True)
class CategoricalStats:
    chi2_statistic: float
    p_value: float
    jensen_shannon: float
    psi: float
    unseen: dict[str, int]


def psi_from_shares(*, reference: np.ndarray, current: np.ndarray, epsilon: float) -> float:
    """Population stability index of two share vectors; empty cells are floored at epsilon."""
    ref = np.maximum(reference, epsilon)
    cur = np.maximum(current, epsilon)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _tie_group_ends(sorted_values: np.ndarray) -> np.ndarray:
    # With right-continuous CDFs the largest gap sits at the last element of a run of ties.
    ends = np.empty(sorted_values.size, dtype=bool)
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=ends[:-1])
    ends[-1] = True
    return np.flatnonzero(ends)


def ks_statistic_sorted(*, reference: np.ndarray, current: np.ndarray) -> float:
    """Two-sample KS statistic sup|F_ref - F_cur| of two sorted samples, from one binary search."""
    n, m = reference.size, current.size
    # below[i] = how many current values are < reference[i]. Then reference[i] <= current[j]
    # exactly when below[i] <= j, so a running count gives F_ref at every current value in O(n).
    below = np.searchsorted(current, reference, side="left")
    ref_at_cur = np.cumsum(np.bincount(below, minlength=m + 1)[:m])
    ends_cur = _tie_group_ends(current)
    gap_cur = np.abs((ends_cur + 1) / m - ref_at_cur[ends_cur] / n)
    # At a reference value that also occurs in current, `below` is F_cur's left limit, not its
    # value; those points are already covered by gap_cur, so they are left out here.
    ends_ref = _tie_group_ends(reference)
    below_ends = below[ends_ref]
    shared = below_ends < m
    shared[shared] = current[below_ends[shared]] == reference[ends_ref[shared]]
    gap_ref = np.abs((ends_ref[~shared] + 1) / n - below_ends[~shared] / m)
    return float(max(gap_cur.max(), gap_ref.max(initial=0.0)))


def ks_p_value(*, statistic: float, n: int, m: int) -> float:
    """Asymptotic two-sided p-value of the two-sample KS statistic.

    Up to scipy's own exact-method limit this is Smirnov's distribution exactly as
    scipy.stats.ks_2samp(method="asymp") uses it; above, Kolmogorov's limit distribution,
    whose error shrinks like 1/sqrt(n) while the finite-n series costs up to a second per call.
    """
    effective = n * m / (n + m)
    if max(n, m) <= _FINITE_KS_MAX_N:
        return float(np.clip(stats.kstwo.sf(statistic, np.round(effective)), 0.0, 1.0))
    return float(np.clip(special.kolmogorov(np.sqrt(effective) * statistic), 0.0, 1.0))


def wasserstein_sorted(*, reference: np.ndarray, current: np.ndarray) -> float:
    """First Wasserstein distance of two sorted samples, as the area between quantile functions."""
    n, m = reference.size, current.size
    if n == m:
        return float(np.mean(np.abs(reference - current)))
    # Breakpoints i/n and j/m of both quantile functions, in integer units of 1/(n*m) so the
    # index arithmetic is exact.
    grid = np.concatenate([np.arange(1, n + 1, dtype=np.int64) * m, np.arange(1, m + 1, dtype=np.int64) * n])
    grid.sort(kind="stable")
    widths = np.diff(grid, prepend=0)
    ref_index = (grid + m - 1) // m - 1
    cur_index = (grid + n - 1) // n - 1
    return float(np.sum(widths * np.abs(reference[ref_index] - current[cur_index])) / (n * m))


def numeric_stats(*, reference: np.ndarray, current: np.ndarray, psi_bins: int, psi_epsilon: float) -> NumericStats:
    """KS test, Wasserstein distance (raw and over the reference std) and PSI on quantile bins.

    Both arrays must be finite and non-empty; they need not be sorted.
    """
    ref = np.sort(reference)
    cur = np.sort(current)
    n, m = ref.size, cur.size
    d = ks_statistic_sorted(reference=ref, current=cur)
    p_value = ks_p_value(statistic=d, n=n, m=m)
    w = wasserstein_sorted(reference=ref, current=cur)
    std = float(np.std(ref))
    normalised = w / std if std > 0 else (0.0 if w == 0 else float("inf"))
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, psi_bins + 1)[1:-1]))
    ref_shares = np.diff(np.searchsorted(ref, edges, side="right"), prepend=0, append=n) / n
    cur_shares = np.diff(np.searchsorted(cur, edges, side="right"), prepend=0, append=m) / m
    psi = psi_from_shares(reference=ref_shares, current=cur_shares, epsilon=psi_epsilon)
    return NumericStats(ks_statistic=d, p_value=p_value, wasserstein=w, normalised_wasserstein=normalised, psi=psi)


def categorical_stats(*, reference: pd.Series, current: pd.Series, psi_epsilon: float) -> CategoricalStats:
    """Chi-square test of homogeneity, Jensen-Shannon distance (base 2), PSI and unseen codes.

    Takes per-category counts (index = category code), as from `Series.value_counts`.
    """
    table = pd.concat([reference.rename("reference"), current.rename("current")], axis=1).fillna(0)
    table = table.loc[table.sum(axis=1) > 0].sort_index()
    ref_counts = table["reference"].to_numpy(dtype=np.float64)
    cur_counts = table["current"].to_numpy(dtype=np.float64)
    unseen = {str(k): int(v) for k, v in table.loc[(ref_counts == 0) & (cur_counts > 0), "current"].items()}
    if len(table) < 2:
        chi2, p_value = 0.0, 1.0
    else:
        result = stats.chi2_contingency(np.vstack([ref_counts, cur_counts]), correction=False)
        chi2, p_value = float(result.statistic), float(result.pvalue)
    ref_shares = ref_counts / ref_counts.sum()
    cur_shares = cur_counts / cur_counts.sum()
    js = float(jensenshannon(ref_shares, cur_shares, base=2))
    psi = psi_from_shares(reference=ref_shares, current=cur_shares, epsilon=psi_epsilon)
    return CategoricalStats(chi2_statistic=chi2, p_value=p_value, jensen_shannon=js, psi=psi, unseen=unseen)


def correct_p_values(*, p_values: Sequence[float], method: Literal["benjamini_hochberg", "bonferroni"]) -> list[float]:
    """Adjust p-values for testing many features at once; NaN (untested) stays NaN."""
    raw = np.asarray(p_values, dtype=np.float64)
    out = np.full(raw.shape, np.nan)
    tested = ~np.isnan(raw)
    if tested.any():
        if method == "bonferroni":
            out[tested] = np.minimum(raw[tested] * tested.sum(), 1.0)
        else:
            out[tested] = stats.false_discovery_control(raw[tested], method="bh")
    return [float(v) for v in out]


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
    missing_share_current: float
    unseen_categories: dict[str, int] = field(default_factory=dict)
    verdict: str = NOT_ENOUGH_DATA

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
    missing_share = float(current.isna().mean())
    statistic = p_value = effect = psi = None
    unseen: dict[str, int] = {}
    if kind == "numeric":
        ref_values, cur_values = _numeric_values(reference), _numeric_values(current)
        rows_ref, rows_cur = ref_values.size, cur_values.size
        test, effect_name, threshold = "ks", "normalised_wasserstein", config.min_numeric_effect
        if min(rows_ref, rows_cur) >= config.min_rows:
            num = numeric_stats(
                reference=ref_values, current=cur_values, psi_bins=config.psi_bins, psi_epsilon=config.psi_epsilon
            )
            statistic, p_value, effect, psi = num.ks_statistic, num.p_value, num.normalised_wasserstein, num.psi
    else:
        ref_counts, cur_counts = _category_counts(reference), _category_counts(current)
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
        missing_share_current=missing_share,
        unseen_categories=unseen,
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

    Results come back sorted by severity (drift first, then by effect over threshold).
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
        if result.effect is None:
            results.append(result)
            continue
        drifted = p_adj <= config.alpha and result.effect > result.effect_threshold
        results.append(_replace(result, p_value_corrected=p_adj, verdict=DRIFT if drifted else NO_DRIFT))
    return sorted(results, key=lambda r: (_VERDICT_RANK[r.verdict], -r.severity, r.feature))


def _replace(result: FeatureResult, **changes: Any) -> FeatureResult:
    return FeatureResult(**{**asdict(result), **changes})


def overall_verdict(*, verdicts: Sequence[str]) -> str:
    """Drift anywhere wins; "not enough data" only when nothing could be judged at all."""
    if DRIFT in verdicts:
        return DRIFT
    if NO_DRIFT in verdicts:
        return NO_DRIFT
    return NOT_ENOUGH_DATA


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
    *, predictions: pd.DataFrame, labels: pd.DataFrame, id_column: str, target: str, score_column: str
) -> pd.DataFrame:
    """Inner join of predictions and late labels on the id; refuses ambiguous or empty joins."""
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
    scores = predictions[score_column]
    if not pd.api.types.is_numeric_dtype(scores.dtype) or bool(((scores < 0) | (scores > 1)).any()):
        raise DriftInputError(ERR_SCORE_RANGE.format(column=score_column, name="predictions"))
    joined = predictions.merge(labels[[id_column, target]], on=id_column, how="inner", validate="one_to_one")
    if joined.empty:
        raise DriftInputError(ERR_NO_OVERLAP)
    return joined


def batch_from_log(*, log: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The current batch (id and features) and its predictions (id and score) from prediction-log
    rows: the one place where the log's association id becomes the id column the checks join on.
    """
    from pipeline.monitoring.sample import SampleError, answers

    id_column = params.base.id_column
    try:
        table = answers(log=log, id_column=id_column, features=params.data.features)
    except SampleError as exc:
        raise DriftInputError(str(exc)) from exc
    current = table[[id_column, *params.data.features]]
    predictions = table[[id_column, "score"]].rename(columns={"score": params.drift.prediction.score_column})
    return current, predictions


def _metrics(*, y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float | None]:
    from sklearn.metrics import accuracy_score, roc_auc_score

    # ROC AUC is undefined for a slice holding one class (e.g. children, who are never employed).
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
) -> dict[str, Any]:
    """ROC AUC and accuracy overall, per period and per sensitive group, judged against the baseline.

    Overall and per-period metrics are judged (drop > max_drop is drift); groups are reported.
    """
    from pipeline.core.groups import group_labels

    spec = config.performance
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
    if spec.period_column in joined.columns:
        periods = joined[spec.period_column].astype(str).to_numpy()
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
        "drift": verdict == DRIFT,
        "data_drift": {
            "verdict": data_verdict,
            "drifted_features": [f.feature for f in features if f.verdict == DRIFT],
            "unseen_categories": {f.feature: f.unseen_categories for f in features if f.unseen_categories},
            "by_severity": [f.feature for f in features],
            "features": {f.feature: {**asdict(f), "severity": f.severity} for f in features},
        },
        "prediction_drift": dict(prediction) if prediction is not None else None,
        "performance": dict(perf) if perf is not None else None,
        "settings": config.model_dump(mode="json"),
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}" if abs(value) < 1e-3 else f"{value:.{digits}f}"


def markdown_report(*, summary: Mapping[str, Any], features: Sequence[FeatureResult], plots: Mapping[str, str]) -> str:
    """The human report: verdict first, then features by severity with links to their plots."""
    data = summary["data_drift"]
    lines = [f"# Drift check: **{summary['verdict']}**", ""]
    lines.append(
        f"- Data drift: **{data['verdict']}**"
        + (f" ({', '.join(data['drifted_features'])})" if data["drifted_features"] else "")
    )
    if summary["prediction_drift"] is not None:
        lines.append(f"- Prediction drift: **{summary['prediction_drift']['verdict']}**")
    if summary["performance"] is not None:
        perf = summary["performance"]
        degraded = perf["overall"].get("degraded") or []
        lines.append(
            f"- Performance: **{perf['verdict']}**" + (f" ({', '.join(degraded)} dropped)" if degraded else "")
        )
    for feature, codes in data["unseen_categories"].items():
        lines.append(f"- Unseen categories in `{feature}`: " + ", ".join(f"`{k}` ({v} rows)" for k, v in codes.items()))
    settings = summary["settings"]
    lines += [
        "",
        (
            f"A feature drifts when its {settings['correction'].replace('_', '-')} corrected p-value is at most "
            f"{settings['alpha']} and its effect size passes the threshold."
        ),
        "",
        "| feature | verdict | effect | threshold | p (corrected) | PSI | rows | plot |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in features:
        plot = f"[plot]({plots[f.feature]})" if f.feature in plots else ""
        lines.append(
            f"| `{f.feature}` | {f.verdict} | {f.effect_name} {_fmt(f.effect)} | {f.effect_threshold} | "
            f"{_fmt(f.p_value_corrected)} | {_fmt(f.psi)} | {f.rows_current} | {plot} |"
        )
    pred = summary["prediction_drift"]
    if pred is not None and pred["verdict"] != NOT_ENOUGH_DATA:
        lines += [
            "",
            "## Predictions",
            "",
            (
                f"Positive share {pred['positive_share_reference']:.3f} -> {pred['positive_share_current']:.3f}; "
                f"score normalised Wasserstein {_fmt(pred['score_normalised_wasserstein'])}, "
                f"KS p {_fmt(pred['score_p_value'])}."
            ),
        ]
    perf = summary["performance"]
    if perf is not None:
        lines += ["", "## Performance", "", "| slice | rows | ROC AUC | accuracy | verdict |", "|---|---|---|---|---|"]
        slices = [("overall", perf["overall"])] + [(f"period {k}", v) for k, v in perf.get("periods", {}).items()]
        for name, row in slices:
            lines.append(
                f"| {name} | {row['rows']} | {_fmt(row.get('roc_auc'))} | {_fmt(row.get('accuracy'))} | "
                f"{row['verdict']} |"
            )
        for feature, group_rows in perf["groups"].items():
            for label, row in group_rows.items():
                lines.append(
                    f"| {feature} = {label} | {row['rows']} | {_fmt(row.get('roc_auc'))} | "
                    f"{_fmt(row.get('accuracy'))} | {row.get('verdict', 'reported')} |"
                )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- I/O edge


def plot_features(
    *, reference: pd.DataFrame, current: pd.DataFrame, features: Sequence[FeatureResult], out_dir: Path, limit: int
) -> dict[str, str]:
    """Small reference-vs-current distribution plots for the most severe features."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: dict[str, str] = {}
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    for f in [f for f in features if f.verdict != NOT_ENOUGH_DATA][:limit]:
        fig, ax = plt.subplots(figsize=(4, 2.6), dpi=80)
        if f.kind == "numeric":
            ref, cur = _numeric_values(reference[f.feature]), _numeric_values(current[f.feature])
            edges = np.histogram_bin_edges(ref, bins=_PLOT_BINS)
            if np.all(ref == np.round(ref)):
                # Whole numbers (ages): bins on integer boundaries, or bars alternate in height.
                width = max(1.0, float(np.ceil((ref.max() - ref.min()) / _PLOT_BINS)))
                edges = np.arange(ref.min() - 0.5, ref.max() + width, width)
            ax.hist(ref, bins=edges.tolist(), density=True, alpha=0.5, label="reference")
            ax.hist(cur, bins=edges.tolist(), density=True, alpha=0.5, label="current")
        else:
            table = pd.concat(
                [
                    _category_counts(reference[f.feature]).rename("reference"),
                    _category_counts(current[f.feature]).rename("current"),
                ],
                axis=1,
            ).fillna(0)
            shares = (table / table.sum()).sort_index()
            positions = np.arange(len(shares))
            ax.bar(positions - 0.2, shares["reference"], width=0.4, label="reference")
            ax.bar(positions + 0.2, shares["current"], width=0.4, label="current")
            ax.set_xticks(positions, [str(i) for i in shares.index], fontsize=6)
        ax.set_title(f"{f.feature}: {f.verdict}", fontsize=9)
        ax.legend(fontsize=6)
        fig.tight_layout()
        relative = f"plots/{f.feature}.png"
        fig.savefig(out_dir / relative, metadata={"Software": None})
        plt.close(fig)
        plots[f.feature] = relative
    return plots


def write_github_output(*, summary: Mapping[str, Any], path: Path | str) -> None:
    """Expose the verdict to later workflow steps (GITHUB_OUTPUT's key=value lines)."""
    with Path(path).open("a", encoding="utf-8") as fh:
        fh.write(f"drift={'true' if summary['drift'] else 'false'}\n")
        fh.write(f"verdict={summary['verdict']}\n")


def _baseline_metrics(path: Path, names: Sequence[str]) -> dict[str, float]:
    from pipeline.core import io

    data = io.read_json(path)
    found = {m: float(data[m]) for m in names if isinstance(data, dict) and isinstance(data.get(m), int | float)}
    if not found:
        raise DriftInputError(f"{path}: holds none of the baseline metrics {list(names)}")
    return found


def _reference_scores(*, params: Params, reference: pd.DataFrame, path: Path | None) -> np.ndarray | None:
    from pipeline.core import io

    score_column = params.drift.prediction.score_column
    if path is not None:
        frame = io.read_table(path)
        if score_column not in frame.columns:
            raise DriftInputError(ERR_MISSING.format(name="reference predictions", columns=score_column))
        return frame[score_column].to_numpy(dtype=np.float64)
    if not params.paths.model.is_file():
        logger.warning("no reference predictions and no model at %s: prediction drift skipped", params.paths.model)
        return None
    model = io.load_model(params.paths.model)
    proba: np.ndarray = model.predict_proba(reference[list(params.data.features)])[:, 1]
    return proba


def read_log_batch(
    *, params: Params, url: str, env: str | None, since: str | None, until: str | None, now: float | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The current batch and its predictions from the prediction log's window [since, until)."""
    import time

    from pipeline.core import predlog
    from pipeline.monitoring.sample import SampleError, parse_time

    moment = time.time() if now is None else now
    try:
        start = parse_time(value=since, now=moment) if since else None
        end = parse_time(value=until, now=moment) if until else None
        log = predlog.read_log(url=url, env=env, start=start, end=end)
    except (SampleError, predlog.PredictionLogError) as exc:
        raise DriftInputError(str(exc)) from exc
    return batch_from_log(log=log, params=params)


def run(
    *,
    params: Params,
    current_path: Path | None = None,
    reference_path: Path | None = None,
    predictions_path: Path | None = None,
    labels_path: Path | None = None,
    reference_predictions_path: Path | None = None,
    baseline_path: Path | None = None,
    out_dir: Path | None = None,
    plots: bool = True,
    log_url: str | None = None,
    env: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    """Read the inputs, run every check that has its inputs, write drift.json and drift.md.

    The current batch and its predictions come either from files (current_path, predictions_path)
    or from the prediction log (log_url, optionally narrowed to env and [since, until)).

    Returns the summary; its verdict maps to the exit code through EXIT_CODES.
    """
    from pipeline.core import io

    config = params.drift
    out_dir = out_dir or config.out_dir
    reference = io.read_table(reference_path or params.data.raw)
    predictions: pd.DataFrame | None
    if log_url is not None and current_path is None and predictions_path is None:
        current, predictions = read_log_batch(params=params, url=log_url, env=env, since=since, until=until)
    elif log_url is None and current_path is not None:
        current = io.read_table(current_path)
        predictions = io.read_table(predictions_path) if predictions_path is not None else None
    else:
        raise DriftInputError(ERR_SOURCE)
    numeric, categorical = tuple(params.data.numeric), tuple(params.data.categorical)
    features = feature_drift(
        reference=reference, current=current, numeric=numeric, categorical=categorical, config=config
    )
    score_column = config.prediction.score_column
    id_column = params.base.id_column
    prediction = None
    if predictions is not None:
        if score_column not in predictions.columns:
            raise DriftInputError(ERR_MISSING.format(name="predictions", columns=score_column))
        ref_scores = _reference_scores(params=params, reference=reference, path=reference_predictions_path)
        if ref_scores is not None:
            prediction = prediction_drift(
                reference_scores=ref_scores,
                current_scores=predictions[score_column].to_numpy(dtype=np.float64),
                threshold=params.evaluate.threshold,
                config=config,
            )
    perf = None
    if labels_path is not None:
        if predictions is None:
            raise DriftInputError("--labels needs --predictions: labels are joined to predictions by id")
        labels = io.read_table(labels_path)
        if log_url is not None:
            # The log keeps association ids as text; ids in a labels file are often integers.
            labels = labels.assign(**{id_column: labels[id_column].astype(str)}) if id_column in labels else labels
        joined = join_labels(
            predictions=predictions,
            labels=labels,
            id_column=id_column,
            target=params.base.target,
            score_column=score_column,
        )
        # Sensitive features and the period come from the batch when the prediction log lacks them.
        extra = [
            c
            for c in (*params.fairness.groups, config.performance.period_column)
            if c in current.columns and c not in joined.columns
        ]
        if extra and id_column in current.columns:
            joined = joined.merge(current[[id_column, *extra]].drop_duplicates(id_column), on=id_column, how="left")
        baseline = _baseline_metrics(baseline_path or config.performance.baseline, config.performance.metrics)
        perf = performance(
            joined=joined,
            target=params.base.target,
            score_column=score_column,
            threshold=params.evaluate.threshold,
            baseline=baseline,
            groups=params.fairness.groups,
            min_group_size=params.fairness.min_group_size,
            config=config,
        )
    summary = summarise(features=features, prediction=prediction, perf=perf, config=config)
    plot_links = (
        plot_features(reference=reference, current=current, features=features, out_dir=out_dir, limit=config.max_plots)
        if plots
        else {}
    )
    io.write_json(summary, out_dir / "drift.json")
    io.write_text(markdown_report(summary=summary, features=features, plots=plot_links), out_dir / "drift.md")
    if github_output := os.environ.get("GITHUB_OUTPUT"):
        write_github_output(summary=summary, path=github_output)
    logger.info("drift check: %s (%s)", summary["verdict"], ", ".join(summary["data_drift"]["drifted_features"]))
    return summary
