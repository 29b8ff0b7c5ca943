"""How well the drift check decides on the shipped ACS data: false alarms, planted shifts, real years."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.core.config import Params
from pipeline.monitoring import drift, simulate
from tests.conftest import demo_params

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parents[2]
SEEDS = range(40)


@pytest.fixture(scope="module")
def params() -> Params:
    return demo_params()


@pytest.fixture(scope="module")
def reference(params: Params) -> pd.DataFrame:
    return pd.read_parquet(ROOT / params.data.raw)


def _check(params: Params, reference: pd.DataFrame, current: pd.DataFrame) -> list[drift.FeatureResult]:
    return drift.feature_drift(
        reference=reference,
        current=current,
        numeric=tuple(params.data.numeric),
        categorical=tuple(params.data.categorical),
        config=params.drift,
    )


def test_false_alarm_rate_on_resamples_is_within_level(params: Params, reference: pd.DataFrame) -> None:
    alarms = 0
    for seed in SEEDS:
        batch = simulate.simulate(reference=reference, kind="none", params=params, seed=seed)
        results = _check(params, reference, batch)
        alarms += drift.overall_verdict(verdicts=[r.verdict for r in results]) == drift.DRIFT
    assert alarms / len(SEEDS) <= params.drift.alpha


def test_corrected_p_values_hold_the_level_on_disjoint_halves(params: Params, reference: pd.DataFrame) -> None:
    # A resample of the reference is compared with itself, which flatters the tests. Disjoint
    # halves are two honest samples of one population: the family-wise rate of significant
    # corrected p-values (ignoring effect sizes) must stay within the level too.
    significant = 0
    for seed in SEEDS:
        order = np.random.default_rng(seed).permutation(len(reference))
        half = len(reference) // 2
        ref, cur = reference.iloc[order[:half]], reference.iloc[order[half : half + params.simulate.rows]]
        results = _check(params, ref, cur)
        significant += any(
            r.p_value_corrected is not None and r.p_value_corrected <= params.drift.alpha for r in results
        )
    assert significant / len(SEEDS) <= params.drift.alpha


@pytest.mark.parametrize("seed", range(3))
def test_covariate_shift_is_found_and_named(params: Params, reference: pd.DataFrame, seed: int) -> None:
    batch = simulate.simulate(reference=reference, kind="covariate", params=params, seed=seed)
    results = _check(params, reference, batch)
    # Results are sorted by severity: the reweighted feature must lead.
    assert results[0].feature == params.simulate.covariate.feature
    assert results[0].verdict == drift.DRIFT


@pytest.mark.parametrize("seed", range(3))
def test_new_category_is_found_and_named(params: Params, reference: pd.DataFrame, seed: int) -> None:
    spec = params.simulate.new_category
    batch = simulate.simulate(reference=reference, kind="new_category", params=params, seed=seed)
    results = {r.feature: r for r in _check(params, reference, batch)}
    assert results[spec.column].verdict == drift.DRIFT
    assert list(results[spec.column].unseen_categories) == [spec.code]
    assert [f for f, r in results.items() if r.verdict == drift.DRIFT] == [spec.column]


def test_concept_shift_leaves_features_quiet(params: Params, reference: pd.DataFrame) -> None:
    # Only labels change: feature drift must not see it (that is the performance check's job).
    batch = simulate.simulate(reference=reference, kind="concept", params=params, seed=0)
    assert all(r.verdict == drift.NO_DRIFT for r in _check(params, reference, batch))


def test_tiny_batch_is_not_enough_data(params: Params, reference: pd.DataFrame) -> None:
    batch = simulate.simulate(reference=reference, kind="covariate", params=params, seed=0, rows=50)
    results = _check(params, reference, batch)
    assert drift.overall_verdict(verdicts=[r.verdict for r in results]) == drift.NOT_ENOUGH_DATA


@pytest.mark.parametrize("year", [2016, 2017, 2018])
def test_real_later_years_stay_quiet(params: Params, reference: pd.DataFrame, year: int) -> None:
    current = pd.read_parquet(ROOT / params.retrain.production_dir / f"{year}_features.parquet")
    results = _check(params, reference, current)
    assert all(r.verdict == drift.NO_DRIFT for r in results)
    # The real shift is there (significant) but below every effect threshold.
    assert any(r.p_value_corrected is not None and r.p_value_corrected <= params.drift.alpha for r in results)
