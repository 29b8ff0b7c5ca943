"""The demo replays the production periods it finds (name order), not years written in code."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipeline.core.config import Params
from pipeline.demo import loop, timeline, workspace
from tests.conftest import DEMO_PARAMS

pytestmark = pytest.mark.unit


def _touch(directory: Path, *names: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_bytes(b"")


def test_the_newest_labelled_periods_are_replayed_oldest_first(tmp_path: Path) -> None:
    labelled = [f"{p}_{kind}.parquet" for p in ("a1", "a2", "b1", "b2") for kind in ("features", "labels")]
    _touch(tmp_path, *labelled, "c1_features.parquet", "readme.txt")
    chosen = loop.real_periods(directory=tmp_path, needed=3)
    assert [p.name for p in chosen] == ["a2", "b1", "b2"]
    assert all(p.labels is not None for p in chosen)


def test_too_few_labelled_periods_is_one_clear_error(tmp_path: Path) -> None:
    _touch(tmp_path, "x_features.parquet", "x_labels.parquet", "y_features.parquet")
    with pytest.raises(workspace.DemoError) as caught:
        loop.real_periods(directory=tmp_path, needed=3)
    assert str(caught.value) == (
        f"{tmp_path}: the demo replays 3 labelled production periods (<period>_features.parquet with its "
        "<period>_labels.parquet file), found 1: x"
    )
    with pytest.raises(workspace.DemoError, match=r"found 0$"):
        loop.real_periods(directory=tmp_path / "missing", needed=1)


def test_run_refuses_a_source_without_enough_periods_before_any_work(params: Params, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(DEMO_PARAMS, source / "params.yaml")
    production = source / params.retrain.production_dir
    _touch(production, "p1_features.parquet", "p1_labels.parquet")
    out = tmp_path / "out"
    with pytest.raises(workspace.DemoError, match=f"the demo replays {loop.REAL_PERIODS} labelled"):
        loop.run(source=source, out_dir=out, rows_per_slice=10_000, sample_rows=0, workdir=tmp_path / "repo")
    assert not out.exists()
    assert not (tmp_path / "repo").exists()


def test_simulated_periods_follow_the_last_real_one() -> None:
    assert timeline.later_period("2018", steps=1) == "2019"
    assert timeline.later_period("0099", steps=2) == "0101"
    assert timeline.later_period("wave-c", steps=1) == "wave-c.sim1"
    # Monthly files of the simulated period sort after the real period's, as retraining's window needs.
    real = timeline.period_name(year="wave-c", month=12)
    simulated = timeline.period_name(year=timeline.later_period("wave-c", steps=1), month=1)
    assert sorted([simulated, real]) == [real, simulated]
    assert timeline.period_value("2019", like=pd.Series([2018, 2018])) == 2019
    assert timeline.period_value("2019", like=pd.Series(["2018"])) == "2019"
    assert timeline.period_value("wave-c.sim1", like=pd.Series([1])) == "wave-c.sim1"


def test_the_training_data_is_named_by_its_one_period() -> None:
    assert timeline.reference_label([2015]) == "2015"
    assert timeline.reference_label([2014, 2015]) == "reference"
    assert timeline.reference_label([]) == "reference"


def test_copy_skips_the_production_folder_params_names(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for rel in ("params.yaml", "dvc.yaml", "feeds/batches/p_features.parquet", "feeds/keep.txt"):
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_text("x", encoding="utf-8")
    workspace.git("init", "-q", repo=source)
    dest = tmp_path / "dest"
    dest.mkdir()
    workspace.copy_template(source=source, dest=dest, sample_rows=0, skip=Path("feeds/batches"))
    assert (dest / "feeds" / "keep.txt").is_file()
    assert not (dest / "feeds" / "batches").exists()
