"""The validation suite against the data the template ships."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.core.config import Params
from pipeline.stages.validate import build_suite, run_suite
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.data

PRODUCTION = sorted((REPO_ROOT / "data" / "production").glob("*_features.parquet"))


def test_reference_data_passes_the_suite(raw_frame: pd.DataFrame, params: Params, tmp_path: Path) -> None:
    outcome = run_suite(frame=raw_frame, params=params, docs_dir=tmp_path / "docs")
    assert outcome.success, outcome.failures
    assert outcome.evaluated == len(build_suite(params=params).expectations)
    assert (tmp_path / "docs" / "index.html").is_file()


@pytest.mark.parametrize("batch", PRODUCTION, ids=[p.stem for p in PRODUCTION])
def test_production_batches_pass_without_target(batch: Path, params: Params) -> None:
    outcome = run_suite(frame=pd.read_parquet(batch), params=params, with_target=False)
    assert outcome.success, outcome.failures


@pytest.mark.parametrize("batch", PRODUCTION, ids=[p.stem for p in PRODUCTION])
def test_labels_join_one_to_one_on_id(batch: Path, params: Params) -> None:
    features = pd.read_parquet(batch)
    labels = pd.read_parquet(batch.with_name(batch.name.replace("_features", "_labels")))
    assert set(labels.columns) == {params.base.id_column, params.base.target}
    assert labels[params.base.id_column].is_unique
    assert set(labels[params.base.id_column]) == set(features[params.base.id_column])
    assert set(labels[params.base.target].unique()) <= {0, 1}


def test_production_ids_do_not_overlap_training(raw_frame: pd.DataFrame, params: Params) -> None:
    train_ids = set(raw_frame[params.base.id_column])
    for batch in PRODUCTION:
        assert not train_ids & set(pd.read_parquet(batch)[params.base.id_column])
