"""The team's table against the team's params: the checks `make run` starts with, as tests."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.core.config import Params
from pipeline.core.config_keys import missing_from_table
from tests.project.support import project_params, read_project_table

pytestmark = pytest.mark.project


@pytest.fixture(scope="module")
def params() -> Params:
    return project_params()


@pytest.fixture(scope="module")
def table(params: Params) -> pd.DataFrame:
    return read_project_table(params)


def test_params_name_only_columns_the_table_holds(params: Params, table: pd.DataFrame) -> None:
    assert missing_from_table(params, table.columns) == []


def test_table_passes_validation(params: Params, table: pd.DataFrame) -> None:
    from pipeline.stages.validate import build_suite, run_suite

    outcome = run_suite(frame=table, params=params)
    assert outcome.success, "\n".join(f.message for f in outcome.failures)
    assert outcome.rows == len(table)
    assert outcome.evaluated == len(build_suite(params=params).expectations)


def test_table_is_fit_to_train_on(params: Params, table: pd.DataFrame) -> None:
    from pipeline.stages.prepare import prepare

    parts, report = prepare(frame=table, params=params)
    sample = params.data.sample_rows
    assert sum(len(p) for p in parts.values()) == (min(sample, len(table)) if sample else len(table))
    assert report["passed"], report["problems"]
    # Both classes in every split: each metric, floor and group check has something to judge.
    for name, part in parts.items():
        assert set(part[params.base.target].unique()) == {0, 1}, name
