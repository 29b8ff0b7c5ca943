"""Columns a project leaves out stay in the table: validation accepts them, the model frame
drops them; metadata may hold nulls. A key naming an ignored column is refused by name.
"""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.core.config import Params
from pipeline.core.schema import conform
from pipeline.stages.validate import run_suite

pytestmark = pytest.mark.data


def _with_ignored(params: Params, *columns: str) -> Params:
    return params.model_copy(update={"data": params.data.model_copy(update={"ignored": columns})})


def test_an_ignored_column_passes_validation_and_never_reaches_the_model(
    params: Params, raw_frame: pd.DataFrame
) -> None:
    frame = raw_frame.head(2000).assign(notes=[f"free text, row {i}" for i in range(2000)])
    refused = run_suite(frame=frame, params=params)
    assert not refused.success
    assert any("unexpected extra columns ['notes']" in f.message for f in refused.failures)
    ignoring = _with_ignored(params, "notes")
    assert run_suite(frame=frame, params=ignoring).success
    assert "notes" not in conform(frame, ignoring).columns


def test_metadata_may_hold_nulls(params: Params, raw_frame: pd.DataFrame) -> None:
    if not params.data.metadata_columns:
        pytest.skip("the fixture params declare no metadata column")
    column = params.data.metadata_columns[0]
    frame = raw_frame.head(2000).copy()
    frame[column] = frame[column].astype("float64")
    frame.loc[:10, column] = None
    assert run_suite(frame=frame, params=params).success


def test_ignoring_the_target_is_refused_by_key(params: Params) -> None:
    raw = params.model_dump(mode="json")
    raw["data"]["ignored"] = [params.base.target]
    with pytest.raises(ValueError, match=r"data.ignored: .* is base.target"):
        Params.model_validate(raw)
