"""`pipeline init`'s pure inference on generated frames: each column rule, the target's labels,
the id column, and the refusals of tables that cannot make a binary classification project.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.core.io import plain_dtypes
from pipeline.stages.init.inspect import (
    INT_CATEGORY_LIMIT,
    InitError,
    Options,
    choose_id,
    classify,
    code_order,
    infer_target,
    inspect_table,
    widened_range,
)

pytestmark = pytest.mark.unit

SRC = "data/raw/t.csv"


def _classify(values: list[object] | pd.Series, name: str = "col", max_categories: int = 50) -> tuple[str, str, str]:
    series = values if isinstance(values, pd.Series) else pd.Series(values, name=name)
    column = classify(values=series.rename(name), max_categories=max_categories)
    return column.role, column.kind, column.dtype


def test_all_null_and_constant_columns_are_dropped_with_the_reason() -> None:
    all_null = classify(values=pd.Series([None, None], name="x", dtype=object), max_categories=50)
    assert (all_null.role, all_null.reason) == ("dropped", "all null")
    constant = classify(values=pd.Series([3, 3, 3], name="x"), max_categories=50)
    assert constant.role == "dropped"
    assert constant.reason.startswith("constant")


def test_whole_numbers_are_codes_up_to_the_limit_and_quantities_above_it() -> None:
    few = pd.Series(np.arange(300) % INT_CATEGORY_LIMIT, name="contract")
    column = classify(values=few, max_categories=50)
    assert (column.role, column.kind, column.dtype) == ("input", "categorical", "int")
    assert column.values == tuple(str(i) for i in range(INT_CATEGORY_LIMIT))
    many = pd.Series(np.arange(300) % (INT_CATEGORY_LIMIT + 1), name="calls")
    assert _classify(many, name="calls") == ("input", "numeric", "int")


def test_an_integer_column_with_missing_values_arrives_as_floats_and_stays_int() -> None:
    raw = pd.DataFrame({"age": pd.array([20, None, 31, 45, 52, 60, 61, 62, 70, 71, 72, 80], dtype="Int64")})
    plain = plain_dtypes(raw)["age"]
    assert plain.dtype == "float64"
    column = classify(values=plain, max_categories=50)
    assert (column.kind, column.dtype, column.nullable, column.nulls) == ("numeric", "int", True, 1)


def test_floats_are_numeric_with_a_widened_range() -> None:
    column = classify(values=pd.Series(np.linspace(0.5, 2.5, 50), name="spend"), max_categories=50)
    assert (column.kind, column.dtype, column.nullable) == ("numeric", "float", False)
    assert column.observed == (0.5, 2.5)
    assert column.low == pytest.approx(0.3)
    assert column.high == pytest.approx(2.7)


@pytest.mark.parametrize(
    ("low", "high", "whole", "expected"),
    [
        (18, 80, True, (11, 87)),  # 10% of 62 = 6.2 each side, rounded outwards
        (0, 120, True, (0, 132)),  # never below 0 for a column with no negative value
        (-5, 5, True, (-6, 6)),
        (0.0, 1.0, False, (0.0, 1.1)),
    ],
)
def test_widened_range(low: float, high: float, whole: bool, expected: tuple[float, float]) -> None:
    assert widened_range(low=low, high=high, whole=whole) == pytest.approx(expected)


def test_booleans_are_categorical_even_with_missing_values() -> None:
    column = classify(values=pd.Series([True, False, True], name="flag"), max_categories=50)
    assert (column.kind, column.dtype, column.values) == ("categorical", "bool", ("false", "true"))
    with_null = plain_dtypes(pd.DataFrame({"flag": pd.array([True, None, False], dtype="boolean")}))["flag"]
    column = classify(values=with_null, max_categories=50)
    assert (column.kind, column.dtype, column.nullable) == ("categorical", "bool", True)


def test_text_is_categorical_free_text_and_high_cardinality_are_dropped() -> None:
    codes = pd.Series(["b", "a", None, "c"] * 10, name="plan", dtype="str")
    column = classify(values=codes, max_categories=50)
    assert (column.kind, column.dtype, column.values, column.nulls) == ("categorical", "str", ("a", "b", "c"), 10)
    notes = pd.Series([f"customer called about invoice number {i} again" for i in range(40)], name="notes")
    column = classify(values=notes, max_categories=50)
    assert (column.role, column.reason.split(" (")[0]) == ("dropped", "free text")
    towns = pd.Series([f"town{i % 60}" for i in range(600)], name="town")
    column = classify(values=towns, max_categories=50)
    assert column.role == "dropped"
    assert "high cardinality (60 distinct values > --max-categories 50)" in column.reason
    assert classify(values=towns, max_categories=60).kind == "categorical"


def test_numeric_codes_sort_as_numbers() -> None:
    column = classify(values=pd.Series(["10", "2", "1", "x"] * 5, name="code"), max_categories=50)
    assert column.values == ("1", "2", "10", "x")
    assert sorted(["b", "10", "9"], key=code_order) == ["9", "10", "b"]


@pytest.mark.parametrize(
    ("values", "name", "dtype"),
    [
        (pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]), "signup", "datetime"),
        (["2024-01", "2024-02", "2024-03"], "cohort_label", "str"),
        (["2024-01-31", "2024-02-29", None], "joined", "str"),
        ([2015, 2016, 2017], "year", "int"),
        ([1, 2, 3], "survey_month", "int"),
    ],
)
def test_dates_and_periods_are_metadata(values: object, name: str, dtype: str) -> None:
    column = classify(values=pd.Series(values, name=name), max_categories=50)
    assert (column.role, column.dtype) == ("metadata", dtype)


def test_a_number_named_like_a_period_only_when_it_holds_whole_numbers() -> None:
    assert _classify([0.5, 1.5, 2.5], name="year_share")[0] == "input"
    assert _classify(["a", "b"], name="month")[0] == "input"


def test_a_pandas_category_column_is_judged_by_its_values() -> None:
    values = pd.Series(pd.Categorical(["x", "y", "x"]), name="kind")
    assert _classify(values, name="kind") == ("input", "categorical", "str")


# ---------------------------------------------------------------------------- the target


@pytest.mark.parametrize(
    ("values", "positive", "negative"),
    [
        ([0, 1, 1], 1, 0),
        ([1.0, 0.0], 1, 0),
        ([True, False], True, False),
        (["no", "yes", "no"], "yes", "no"),
        (["N", "Y"], "Y", "N"),
        (["False", "True"], "True", "False"),
    ],
)
def test_obvious_positive_labels(values: list[object], positive: object, negative: object) -> None:
    target = infer_target(frame=pd.DataFrame({"y": values}), name="y", positive_label=None, source=SRC)
    assert (target.positive, target.negative) == (positive, negative)
    assert type(target.positive) is type(positive)


def test_other_pairs_need_the_positive_label_named() -> None:
    frame = pd.DataFrame({"y": ["churn", "stay", "stay"]})
    with pytest.raises(InitError, match=r"holds 'churn' and 'stay': say which one .* --positive-label"):
        infer_target(frame=frame, name="y", positive_label=None, source=SRC)
    target = infer_target(frame=frame, name="y", positive_label="churn", source=SRC)
    assert (target.positive, target.negative, target.counts) == ("churn", "stay", {"churn": 1, "stay": 2})
    with pytest.raises(InitError, match="--positive-label 'left' is not a value of target 'y'"):
        infer_target(frame=frame, name="y", positive_label="left", source=SRC)
    numeric = infer_target(frame=pd.DataFrame({"y": [1, 2]}), name="y", positive_label="2", source=SRC)
    assert (numeric.positive, numeric.negative) == (2, 1)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([1, 1, 1], "target 'y' holds a single value"),
        (["a", "b", "c"], "3 distinct values .*multiclass and regression are not"),
        (list(np.linspace(0, 1, 20)), "20 distinct values .*only binary targets are supported"),
        ([1, None, 0], "target 'y' is empty in 1 rows"),
    ],
)
def test_targets_that_are_not_binary_are_refused(values: list[object], message: str) -> None:
    with pytest.raises(InitError, match=message):
        infer_target(frame=pd.DataFrame({"y": values}), name="y", positive_label=None, source=SRC)


def test_a_missing_target_names_the_file_and_the_column() -> None:
    with pytest.raises(InitError, match=r"data/raw/t.csv: no target column 'label' \(columns: 'a', 'b'\)"):
        infer_target(frame=pd.DataFrame({"a": [1], "b": [2]}), name="label", positive_label=None, source=SRC)


# ---------------------------------------------------------------------------- the id


def test_the_id_defaults_to_a_unique_column_named_id() -> None:
    frame = pd.DataFrame({"id": [3, 1, 2], "y": [0, 1, 0]})
    assert choose_id(frame=frame, id_column=None, target="y", source=SRC) == ("id", "the column named 'id'")


def test_without_a_column_named_id_init_asks_for_one() -> None:
    with pytest.raises(InitError, match="no --id given and no column named 'id': pass --id COL"):
        choose_id(frame=pd.DataFrame({"key": [1, 2], "y": [0, 1]}), id_column=None, target="y", source=SRC)


def test_a_repeated_id_is_refused_with_its_count_and_examples() -> None:
    frame = pd.DataFrame({"key": [1, 2, 2, 3, 3, 3, 4], "y": [0] * 7})
    with pytest.raises(InitError, match=r"'key' is not unique: 2 values repeat over 5 rows \(e.g. 2, 3\)"):
        choose_id(frame=frame, id_column="key", target="y", source=SRC)


@pytest.mark.parametrize(
    ("id_column", "message"),
    [("nope", "--id column 'nope' is not in the table"), ("y", "the id column and the target are both 'y'")],
)
def test_a_bad_id_option_is_refused(id_column: str, message: str) -> None:
    with pytest.raises(InitError, match=message):
        choose_id(frame=pd.DataFrame({"key": [1, 2], "y": [0, 1]}), id_column=id_column, target="y", source=SRC)


def test_an_empty_id_is_refused() -> None:
    with pytest.raises(InitError, match="id column 'key' is empty in 1 rows"):
        choose_id(frame=pd.DataFrame({"key": [1.0, None], "y": [0, 1]}), id_column="key", target="y", source=SRC)


# ---------------------------------------------------------------------------- the table


def _table(rows: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "age": rng.integers(18, 80, rows),
            "plan": rng.choice(["a", "b"], rows),
            "sex": rng.choice(["f", "m"], rows),
            "y": rng.choice(["yes", "no"], rows),
        }
    )


def test_roles_of_a_whole_table() -> None:
    schema = inspect_table(frame=_table(), options=Options(target="y", audit_only=("sex",)), source=SRC)
    assert schema.id_column == "id"
    assert [(c.name, c.role) for c in schema.columns] == [("age", "input"), ("plan", "input"), ("sex", "audit-only")]
    assert schema.target.positive == "yes"


def test_an_empty_table_is_refused() -> None:
    with pytest.raises(InitError, match=r"data/raw/t\.csv: the table has no rows"):
        inspect_table(frame=_table().iloc[:0], options=Options(target="y"), source=SRC)


def test_a_table_with_nothing_to_learn_from_is_refused_with_each_column_s_reason() -> None:
    with pytest.raises(InitError, match=r"no model input besides the target and the id column \(no other column\)"):
        inspect_table(frame=_table()[["id", "y"]], options=Options(target="y"), source=SRC)
    frame = _table()[["id", "y"]].assign(const=1)
    with pytest.raises(InitError, match=r"\(const: dropped, constant \(1\)\)"):
        inspect_table(frame=frame, options=Options(target="y"), source=SRC)
    with pytest.raises(InitError, match="no model input"):
        inspect_table(frame=_table()[["id", "y", "sex"]], options=Options(target="y", audit_only=("sex",)), source=SRC)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (Options(target="y", sensitive=("gender",)), "--sensitive column 'gender' is not in the table"),
        (Options(target="y", audit_only=("race",)), "--audit-only column 'race' is not in the table"),
        (Options(target="y", sensitive=("y",)), "--sensitive column 'y' is the target or the id column"),
    ],
)
def test_bad_sensitive_options_are_refused(options: Options, message: str) -> None:
    with pytest.raises(InitError, match=message):
        inspect_table(frame=_table(), options=options, source=SRC)


def test_a_sensitive_column_that_cannot_be_grouped_is_refused() -> None:
    frame = _table(200).assign(town=[f"t{i}" for i in range(200)])
    with pytest.raises(InitError, match="--sensitive column 'town' cannot be grouped: dropped, high cardinality"):
        inspect_table(frame=frame, options=Options(target="y", sensitive=("town",)), source=SRC)
