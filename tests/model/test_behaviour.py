"""Behavioural tests of the model the pipeline trains: invariance to changes that must not
matter, direction of effects that must matter, and minimum recall per class and per group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import recall_score
from sklearn.pipeline import Pipeline

from pipeline.core.config import Params
from pipeline.core.groups import sensitive_frame
from pipeline.stages.prepare import prepare
from pipeline.stages.train import fit_candidates

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def fitted(raw_frame: pd.DataFrame, params: Params) -> tuple[Pipeline, pd.DataFrame]:
    sample = raw_frame.sample(n=20000, random_state=params.base.seed)
    parts, _ = prepare(frame=sample, params=params)
    best = fit_candidates(train=parts["train"], valid=parts["valid"], params=params)[0]
    return best.model, parts["test"]


def _proba(model: Pipeline, frame: pd.DataFrame, params: Params) -> np.ndarray:
    return model.predict_proba(frame[list(params.data.features)])[:, 1]


def test_invariant_to_ids_metadata_and_column_order(fitted: tuple[Pipeline, pd.DataFrame], params: Params) -> None:
    model, test = fitted
    base = _proba(model, test, params)
    changed = test.copy()
    changed[params.base.id_column] = changed[params.base.id_column] + 10_000_000
    for col in params.data.metadata_columns:
        changed[col] = 1999
    shuffled_cols = changed[list(reversed(changed.columns))]
    np.testing.assert_array_equal(model.predict_proba(shuffled_cols)[:, 1], base)


def test_invariant_to_row_order(fitted: tuple[Pipeline, pd.DataFrame], params: Params) -> None:
    model, test = fitted
    order = np.random.default_rng(params.base.seed).permutation(len(test))
    np.testing.assert_allclose(_proba(model, test.iloc[order], params), _proba(model, test, params)[order])


def test_retirement_age_lowers_employment(fitted: tuple[Pipeline, pd.DataFrame], params: Params) -> None:
    model, test = fitted
    adults = test[test["AGEP"].between(25, 60)].copy()
    older = adults.assign(AGEP=80.0)
    assert _proba(model, older, params).mean() < _proba(model, adults, params).mean() - 0.2


def test_disability_lowers_employment(fitted: tuple[Pipeline, pd.DataFrame], params: Params) -> None:
    model, test = fitted
    adults = test[(test["AGEP"].between(25, 60)) & (test["DIS"] == "2")]
    disabled = adults.assign(DIS="1")  # ACS: 1 = with a disability
    assert _proba(model, disabled, params).mean() < _proba(model, adults, params).mean()


def test_minimum_recall_per_class(fitted: tuple[Pipeline, pd.DataFrame], params: Params) -> None:
    model, test = fitted
    pred = (_proba(model, test, params) >= params.evaluate.threshold).astype(int)
    recalls = recall_score(test[params.base.target], pred, labels=[0, 1], average=None)
    assert min(recalls) >= params.evaluate.min_recall.per_class, recalls


def test_minimum_recall_per_judged_group(fitted: tuple[Pipeline, pd.DataFrame], params: Params) -> None:
    model, test = fitted
    pred = pd.Series((_proba(model, test, params) >= params.evaluate.threshold).astype(int), index=test.index)
    groups = sensitive_frame(frame=test, groups=params.fairness.groups)
    positives = test[params.base.target] == 1
    checked = 0
    for feature in params.prepare.representation.group_features:
        for group, index in groups[positives].groupby(feature).groups.items():
            if len(index) < params.fairness.min_group_size:
                continue
            recall = pred.loc[index].mean()
            assert recall >= params.evaluate.min_recall.per_group, f"{feature}={group}: recall {recall:.3f}"
            checked += 1
    assert checked >= 4
