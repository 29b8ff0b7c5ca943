from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from pipeline.core import params_edit
from pipeline.core.config import TrainSection, load_params
from tests.conftest import DEMO_PARAMS, demo_params_text

pytestmark = pytest.mark.unit

PARAMS_TEXT = demo_params_text()
ANSWERS: dict[str, Any] = {
    "project_name": "acme-churn",
    "registered_model": "acme-churn-model",
    "table": "data/raw/churn.csv",
    "target": "employed",
    "id_column": "id",
    "sensitive_columns": ["SEX", "RAC1P", "AGEP"],
    "primary_metric": "average_precision",
}


def _changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    old, new = before.splitlines(), after.splitlines()
    assert len(old) == len(new), "an edit must not add or remove lines"
    return [(a, b) for a, b in zip(old, new, strict=True) if a != b]


def test_set_scalar_changes_only_that_line_and_keeps_every_comment() -> None:
    edited = params_edit.set_scalar(text=PARAMS_TEXT, key="data.raw", value="data/raw/other.parquet")
    assert _changed_lines(PARAMS_TEXT, edited) == [
        ("  raw: data/raw/employment_2015.parquet", "  raw: data/raw/other.parquet")
    ]
    before, after = yaml.safe_load(PARAMS_TEXT), yaml.safe_load(edited)
    assert after["data"]["raw"] == "data/raw/other.parquet"
    after["data"]["raw"] = before["data"]["raw"]
    assert after == before


def test_set_scalar_finds_the_key_by_its_whole_path() -> None:
    text = "base:\n  raw: keep\ndata:\n  raw: data/a.parquet  # note\n  inner:\n    raw: keep\nother:\n  raw: keep\n"
    edited = params_edit.set_scalar(text=text, key="data.raw", value="data/b.parquet")
    assert edited == text.replace("data/a.parquet", "data/b.parquet")
    nested = params_edit.set_scalar(text=text, key="data.inner.raw", value="x")
    assert yaml.safe_load(nested) == {
        "base": {"raw": "keep"},
        "data": {"raw": "data/a.parquet", "inner": {"raw": "x"}},
        "other": {"raw": "keep"},
    }


def test_set_scalar_sets_a_top_level_key_of_a_manifest() -> None:
    text = "# Desired state.\nmodel: employment-ma\nchampion: 1\n"
    assert (
        params_edit.set_scalar(text=text, key="model", value="acme") == "# Desired state.\nmodel: acme\nchampion: 1\n"
    )


@pytest.mark.parametrize(
    "value",
    [
        "employed",
        "yes",
        "No",
        "null",
        "~",
        "1",
        "0.5",
        "1e3",
        "a b",
        "x: y",
        "#c",
        "a #c",
        "it's",
        'q"uote',
        "ünï",
        "-",
        "[x]",
        "@x",
        "",
    ],
)
def test_set_scalar_writes_values_that_read_back_as_the_same_string(value: str) -> None:
    text = "k:\n  v: old  # why\n  w: 1\n"
    edited = params_edit.set_scalar(text=text, key="k.v", value=value)
    assert yaml.safe_load(edited) == {"k": {"v": value, "w": 1}}
    assert edited.splitlines()[1].endswith("  # why")


def test_set_scalar_replaces_a_quoted_value_holding_a_hash() -> None:
    text = "k:\n  v: \"a # b\"  # why\n  s: 'it''s # here'\n"
    edited = params_edit.set_scalar(text=text, key="k.v", value="c")
    edited = params_edit.set_scalar(text=edited, key="k.s", value="d")
    assert edited == "k:\n  v: c  # why\n  s: d\n"


def test_set_scalar_keeps_windows_line_endings() -> None:
    text = "data:\r\n  raw: a.parquet\r\n  sample_rows: 0\r\n"
    edited = params_edit.set_scalar(text=text, key="data.raw", value="b.parquet")
    assert edited == "data:\r\n  raw: b.parquet\r\n  sample_rows: 0\r\n"


def test_set_scalar_ignores_lookalike_lines_in_block_scalars_and_comments() -> None:
    text = "notes: |\n  raw: not a key\n# raw: nor this\ndata:\n  raw: a\n"
    assert params_edit.set_scalar(text=text, key="data.raw", value="b").endswith("  raw: b\n")
    with pytest.raises(params_edit.ParamsEditError, match="no `raw` key"):
        params_edit.set_scalar(text=text, key="raw", value="b")


@pytest.mark.parametrize("key", ["data.nope", "nope.raw", "raw"])
def test_set_scalar_refuses_a_missing_key_by_name(key: str) -> None:
    with pytest.raises(params_edit.ParamsEditError, match=rf"params\.yaml: no `{key}` key"):
        params_edit.set_scalar(text=PARAMS_TEXT, key=key, value="x")


@pytest.mark.parametrize("key", ["data", "data.numeric", "data.metadata_columns", "data.numeric.AGEP"])
def test_set_scalar_refuses_a_key_that_holds_more_than_a_scalar(key: str) -> None:
    with pytest.raises(params_edit.ParamsEditError, match=rf"`{key}` does not hold a one-line value"):
        params_edit.set_scalar(text=PARAMS_TEXT, key=key, value="x")


def test_keys_under_lists_the_fairness_groupings() -> None:
    shipped = load_params(DEMO_PARAMS)
    assert params_edit.keys_under(text=PARAMS_TEXT, key="fairness.groups") == list(shipped.fairness.groups)


def test_primary_metrics_are_those_the_train_stage_supports() -> None:
    assert set(params_edit.PRIMARY_METRICS) == set(get_args(TrainSection.model_fields["primary_metric"].annotation))


def test_apply_answers_fills_params(tmp_path: Path) -> None:
    applied = params_edit.apply_answers(params_text=PARAMS_TEXT, answers=ANSWERS)
    assert applied.notes == []
    path = tmp_path / "params.yaml"
    path.write_text(applied.text, encoding="utf-8")
    params = load_params(path)
    assert params.tracking.experiment == "acme-churn"
    assert params.tracking.registered_model == "acme-churn-model"
    assert params.data.raw.as_posix() == params.retrain.reference.as_posix() == "data/raw/churn.csv"
    assert (params.base.target, params.base.id_column) == ("employed", "id")
    assert params.train.primary_metric == "average_precision"
    # Target and id column are the shipped ones: those lines stay as they were.
    assert len(_changed_lines(PARAMS_TEXT, applied.text)) == 5


def test_apply_answers_notes_the_groupings_left_out() -> None:
    applied = params_edit.apply_answers(params_text=PARAMS_TEXT, answers={**ANSWERS, "sensitive_columns": ["SEX"]})
    assert len(applied.notes) == 1
    assert "['RAC1P', 'AGEP']" in applied.notes[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sensitive_columns": ["SEX", "gender"]}, r"no grouping for \['gender'\]"),
        ({"sensitive_columns": []}, "non-empty list"),
        ({"sensitive_columns": "SEX"}, "non-empty list"),
        ({"primary_metric": "mse"}, "'mse' is not one of"),
        ({"table": "/abs/t.parquet"}, "path inside the project"),
        ({"table": "../t.parquet"}, "path inside the project"),
        ({"table": "data/t.txt"}, "ending in .parquet"),
        ({"id_column": "employed"}, "same column"),
        ({"sensitive_columns": ["SEX"], "target": "SEX"}, "cannot be sensitive"),
        ({"registered_model": " spaced "}, "answer registered_model"),
        ({"project_name": ""}, "answer project_name"),
    ],
)
def test_apply_answers_refuses_what_params_cannot_take(change: dict[str, Any], message: str) -> None:
    with pytest.raises(params_edit.ParamsEditError, match=message):
        params_edit.apply_answers(params_text=PARAMS_TEXT, answers={**ANSWERS, **change})


def test_apply_answers_refuses_a_missing_answer() -> None:
    answers = {k: v for k, v in ANSWERS.items() if k != "target"}
    with pytest.raises(params_edit.ParamsEditError, match="answer target"):
        params_edit.apply_answers(params_text=PARAMS_TEXT, answers=answers)
