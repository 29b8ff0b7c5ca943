"""Simulated production batches: seeded, built from real rows, drift exactly where planted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.core.config import Params
from pipeline.monitoring import simulate
from tests.conftest import REPO_ROOT, demo_params

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def params() -> Params:
    return demo_params()


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = 2000
    return pd.DataFrame(
        {
            "id": np.arange(rows) + 10,
            "age": rng.integers(16, 90, size=rows).astype(float),
            "sex": pd.array(rng.choice(["1", "2"], size=rows), dtype="str"),
            "anc": pd.array(rng.choice(["1", "2", "4"], size=rows), dtype="str"),
            "y": rng.integers(0, 2, size=rows),
        }
    )


def _as_real_rows(batch: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    # Every simulated row must be some real row: match on all columns but the fresh id.
    cols = [c for c in frame.columns if c != "id"]
    return batch[cols].merge(frame[cols].drop_duplicates(), on=cols, how="left", indicator=True)


def test_resample_is_seeded_real_and_gets_fresh_ids(frame: pd.DataFrame) -> None:
    a = simulate.resample(frame=frame, rows=500, seed=1, id_column="id", first_id=5000)
    b = simulate.resample(frame=frame, rows=500, seed=1, id_column="id", first_id=5000)
    c = simulate.resample(frame=frame, rows=500, seed=2, id_column="id", first_id=5000)
    pd.testing.assert_frame_equal(a, b)
    assert not a.drop(columns="id").equals(c.drop(columns="id"))
    assert (_as_real_rows(a, frame)["_merge"] == "both").all()
    assert a["id"].tolist() == list(range(5000, 5500))


def test_covariate_shift_moves_the_feature_with_real_rows(frame: pd.DataFrame) -> None:
    older = simulate.covariate_shift(frame=frame, feature="age", strength=1.0, rows=3000, seed=3)
    younger = simulate.covariate_shift(frame=frame, feature="age", strength=-1.0, rows=3000, seed=3)
    assert older["age"].mean() > frame["age"].mean() + frame["age"].std() / 4
    assert younger["age"].mean() < frame["age"].mean() - frame["age"].std() / 4
    assert (_as_real_rows(older, frame)["_merge"] == "both").all()


def test_covariate_shift_refuses_constant_feature(frame: pd.DataFrame) -> None:
    with pytest.raises(simulate.SimulationError, match="constant"):
        simulate.covariate_shift(frame=frame.assign(age=1.0), feature="age", strength=1.0, rows=10, seed=0)


def test_concept_shift_flips_only_the_subgroup(frame: pd.DataFrame) -> None:
    codes, ranges = {"sex": ("2",)}, {"age": (25.0, 45.0)}
    out = simulate.concept_shift(frame=frame, target="y", share=0.5, codes=codes, ranges=ranges, seed=4)
    inside = simulate.subgroup_mask(frame=frame, codes=codes, ranges=ranges)
    changed = out["y"].to_numpy() != frame["y"].to_numpy()
    assert not changed[~inside].any()
    assert changed.sum() == round(0.5 * inside.sum())
    pd.testing.assert_frame_equal(out.drop(columns="y"), frame.drop(columns="y"))
    with pytest.raises(simulate.SimulationError, match="matches no row"):
        simulate.concept_shift(frame=frame, target="y", share=0.5, codes={"sex": ("9",)}, ranges={}, seed=4)


def test_concept_shift_flips_text_labels_between_the_two_params_name(frame: pd.DataFrame) -> None:
    codes, ranges = {"sex": ("2",)}, {"age": (25.0, 45.0)}
    text = frame.assign(y=np.where(frame["y"] == 1, "yes", "no"))
    out = simulate.concept_shift(
        frame=text, target="y", share=1.0, codes=codes, ranges=ranges, seed=4, labels=("yes", "no")
    )
    inside = simulate.subgroup_mask(frame=text, codes=codes, ranges=ranges)
    assert set(out["y"]) <= {"yes", "no"}
    flipped = np.where(text["y"] == "yes", "no", "yes")
    assert (out["y"].to_numpy()[inside] == flipped[inside]).all()
    assert (out["y"].to_numpy()[~inside] == text["y"].to_numpy()[~inside]).all()


def test_new_category_replaces_exactly_the_share(frame: pd.DataFrame) -> None:
    out = simulate.new_category(frame=frame, column="anc", code="9", share=0.25, seed=5)
    assert (out["anc"] == "9").sum() == round(0.25 * len(frame))
    assert out["anc"].dtype == frame["anc"].dtype
    untouched = out["anc"] != "9"
    assert (out.loc[untouched, "anc"] == frame.loc[untouched, "anc"]).all()
    with pytest.raises(simulate.SimulationError, match="already occurs"):
        simulate.new_category(frame=frame, column="anc", code="4", share=0.1, seed=5)


@pytest.mark.parametrize(
    "call",
    [
        lambda f: simulate.resample(frame=f.iloc[:0], rows=5, seed=0),
        lambda f: simulate.covariate_shift(frame=f, feature="nope", strength=1.0, rows=5, seed=0),
        lambda f: simulate.new_category(frame=f, column="nope", code="9", share=0.1, seed=0),
    ],
    ids=["empty-frame", "unknown-feature", "unknown-column"],
)
def test_bad_requests_are_refused(frame: pd.DataFrame, call: object) -> None:
    with pytest.raises(simulate.SimulationError):
        call(frame)  # type: ignore[operator]


def test_simulate_from_params_and_write(params: Params, tmp_path: Path) -> None:
    reference = pd.read_parquet(REPO_ROOT / params.data.raw)
    id_column, target = params.base.id_column, params.base.target
    for kind in simulate.KINDS:
        batch = simulate.simulate(reference=reference, kind=kind, params=params, seed=6, rows=1000)
        assert len(batch) == 1000
        assert batch[id_column].is_unique
        assert batch[id_column].min() > reference[id_column].max()
    features, labels = simulate.write_batch(batch=batch, out_dir=tmp_path, name="b", params=params)
    assert labels is not None
    assert target not in pd.read_parquet(features).columns
    assert pd.read_parquet(labels).columns.tolist() == [id_column, target]
