"""Pure drift statistics: KS, Wasserstein, PSI, chi-square and Jensen-Shannon on arrays and counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

# scipy.stats.ks_2samp's own switch from exact to asymptotic p-values (its MAX_AUTO_N).
_FINITE_KS_MAX_N = 10_000


def numeric_values(*, series: pd.Series) -> np.ndarray:
    """The finite values of a numeric column: missing and infinite values take no part in a test."""
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    return values[np.isfinite(values)]


def category_counts(*, series: pd.Series) -> pd.Series:
    """Rows per category code of a column, codes as strings, missing values left out."""
    # CSV readers turn numeric-looking category codes into integers; codes compare as strings.
    if not isinstance(series.dtype, pd.StringDtype) and not pd.api.types.is_object_dtype(series.dtype):
        series = series.astype("string")
    counts = series.value_counts(dropna=True, sort=False)
    counts.index = counts.index.astype(str)
    return counts


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

    Takes per-category counts (index = category code), as from `Series.value_counts`. A side
    without any count (a column that is entirely missing) gives NaN statistics: there is nothing
    to compare, and chi-square would divide by its zero total.
    """
    table = pd.concat([reference.rename("reference"), current.rename("current")], axis=1).fillna(0)
    table = table.loc[table.sum(axis=1) > 0].sort_index()
    ref_counts = table["reference"].to_numpy(dtype=np.float64)
    cur_counts = table["current"].to_numpy(dtype=np.float64)
    unseen = {str(k): int(v) for k, v in table.loc[(ref_counts == 0) & (cur_counts > 0), "current"].items()}
    if ref_counts.sum() == 0 or cur_counts.sum() == 0:
        return CategoricalStats(chi2_statistic=np.nan, p_value=np.nan, jensen_shannon=np.nan, psi=np.nan, unseen=unseen)
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
