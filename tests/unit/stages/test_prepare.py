from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.core.config import Params
from pipeline.stages.prepare import PrepareFailed, clean, prepare, representation_checks, single_feature_auc, split

pytestmark = pytest.mark.unit


@pytest.fixture
def frame(raw_frame: pd.DataFrame) -> pd.DataFrame:
    return raw_frame.sample(n=6000, random_state=0).reset_index(drop=True)


def test_split_is_seeded_stratified_and_disjoint(frame: pd.DataFrame, params: Params) -> None:
    a = split(frame=clean(frame=frame, params=params), params=params)
    b = split(frame=clean(frame=frame, params=params), params=params)
    train, valid, test = (set(part[params.base.id_column]) for part in a.values())
    assert not train & valid
    assert not train & test
    assert not valid & test
    assert sum(len(p) for p in a.values()) == len(frame)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
        rate = a[name][params.base.target].mean()
        assert abs(rate - frame[params.base.target].mean()) < 0.03
    # Sizes are shares in expectation; 6000 rows keep them within a few standard errors.
    assert len(a["test"]) / len(frame) == pytest.approx(params.prepare.test_size, abs=0.02)
    assert len(a["valid"]) / len(frame) == pytest.approx(params.prepare.valid_size, abs=0.02)


def test_rows_keep_their_split_when_data_is_added(frame: pd.DataFrame, params: Params) -> None:
    half = frame.iloc[: len(frame) // 2]
    before = split(frame=clean(frame=half, params=params), params=params)
    after = split(frame=clean(frame=frame, params=params), params=params)
    for name in before:
        kept = set(before[name][params.base.id_column])
        assert kept <= set(after[name][params.base.id_column]), name


def test_another_seed_gives_another_split(frame: pd.DataFrame, params: Params) -> None:
    other = params.model_copy(update={"base": params.base.model_copy(update={"seed": params.base.seed + 1})})
    a = split(frame=clean(frame=frame, params=params), params=params)["test"]
    b = split(frame=clean(frame=frame, params=other), params=other)["test"]
    assert set(a[params.base.id_column]) != set(b[params.base.id_column])


def test_shipped_sample_passes(frame: pd.DataFrame, params: Params) -> None:
    parts, report = prepare(frame=frame, params=params)
    assert report["passed"]
    assert set(parts) == {"train", "valid", "test"}


def test_group_with_too_few_positives_fails(frame: pd.DataFrame, params: Params) -> None:
    # The lesson of a rare class: a group whose positives vanish can be ignored by a model
    # while the headline metric stays high.
    frame = frame.copy()
    frame.loc[frame["SEX"] == "2", params.base.target] = 0
    with pytest.raises(PrepareFailed, match=r"under-represented SEX=female"):
        prepare(frame=frame, params=params)


def test_rare_class_fails(frame: pd.DataFrame, params: Params) -> None:
    frame = frame.copy()
    positives = frame.index[frame[params.base.target] == 1]
    frame.loc[positives[50:], params.base.target] = 0
    checks = representation_checks(frame=frame, params=params)
    failed = {c.name for c in checks if not c.passed}
    assert "class 1" in failed


def test_leaky_feature_is_caught(frame: pd.DataFrame, params: Params) -> None:
    frame = frame.copy()
    # MIL as a perfect copy of the target: a classic leak through a recoded column.
    frame["MIL"] = np.where(frame[params.base.target] == 1, "1", "4")
    with pytest.raises(PrepareFailed, match="target leakage: MIL"):
        prepare(frame=frame, params=params)


def test_single_feature_auc_is_direction_free(frame: pd.DataFrame, params: Params) -> None:
    scores = single_feature_auc(frame=clean(frame=frame, params=params), params=params)
    assert set(scores) == set(params.data.features)
    assert all(0.5 <= v <= 1 for v in scores.values())


def test_sample_rows_draws_a_seeded_sample(frame: pd.DataFrame, params: Params) -> None:
    small = params.model_copy(update={"data": params.data.model_copy(update={"sample_rows": 1000})})
    a, b = clean(frame=frame, params=small), clean(frame=frame, params=small)
    assert len(a) == 1000
    pd.testing.assert_frame_equal(a, b)
