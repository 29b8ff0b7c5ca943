"""`pipeline init`'s pure decisions on generated frames: fairness groups and whether they can be
judged, the drift simulation's columns, and the knobs sized by the table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.core.config import GroupSpec
from pipeline.core.groups import UNMAPPED, group_labels
from pipeline.stages.init.inspect import InitError, Options, classify, inspect_table
from pipeline.stages.init.plan import Settings, grouping, make_plan, merged_codes, numeric_bands, simulation, slug

pytestmark = pytest.mark.unit

SETTINGS = Settings(
    min_group_size=100,
    min_rows_per_group=100,
    min_group_positive_rate=0.05,
    min_rows_per_class=200,
    min_class_share=0.05,
    train_share=0.6,
    min_rows=1000,
)


def _frame(rows: int = 3000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "age": rng.integers(18, 90, rows),
            "spend": rng.gamma(2.0, 50.0, rows),
            "plan": rng.choice(["basic", "plus", "premium"], rows),
            "contract": rng.choice([1, 12, 24], rows),
            "sex": rng.choice(["f", "m"], rows),
            "y": rng.choice([0, 1], rows),
        }
    )


def test_merged_codes_keeps_large_values_and_merges_small_ones() -> None:
    counts = {"a": 900, "b": 800, "c": 150, "d": 120, "e": 5, "f": 3}
    assert merged_codes(counts, floor=4) == {"a": ["a"], "b": ["b"], "c": ["c"], "d": ["d"], "other": ["e", "f"]}
    # A lone small value keeps its own name: renaming it "other" would say nothing more.
    assert merged_codes({"a": 900, "b": 800, "c": 3}, floor=100) == {"a": ["a"], "b": ["b"], "c": ["c"]}
    # "other" holding 8 rows cannot be judged: the smallest kept values join it until it can.
    assert merged_codes(counts, floor=100) == {"a": ["a"], "b": ["b"], "c": ["c"], "other": ["d", "e", "f"]}
    assert merged_codes(counts, floor=167) == {"a": ["a"], "b": ["b"], "other": ["c", "d", "e", "f"]}


def test_merged_codes_never_leaves_a_single_group() -> None:
    assert merged_codes({"a": 50, "b": 40}, floor=100) == {"a": ["a"], "b": ["b"]}
    assert merged_codes({"a": 500, "b": 40, "c": 30}, floor=100) == {"a": ["a"], "other": ["b", "c"]}
    assert merged_codes({"a": 50, "b": 40, "c": 30}, floor=100) == {"a": ["a"], "b": ["b"], "c": ["c"]}


def test_merged_codes_sorts_numeric_codes_as_numbers_and_joins_an_existing_other() -> None:
    codes = merged_codes({"10": 500, "9": 500, "other": 30, "2": 20}, floor=100)
    assert list(codes) == ["9", "10", "other"]
    assert codes["other"] == ["2", "other"]


def test_numeric_bands_cover_every_declared_value_with_whole_labels() -> None:
    frame = _frame()
    column = classify(values=frame["age"], max_categories=50)
    bins, labels = numeric_bands(frame["age"], column)
    assert len(labels) == 4
    assert (bins[0], bins[-1]) == (column.low, (column.high or 0) + 1)
    first, second = labels[0], labels[1]
    assert first == f"{bins[0]:g}-{bins[1] - 1:g}"
    assert second.split("-")[0] == f"{bins[1]:g}"
    assert labels[-1].endswith("+")
    declared = pd.Series([column.low, column.high, *frame["age"]], dtype="float64")
    mapped = group_labels(values=declared, spec=GroupSpec(bins=tuple(bins), labels=tuple(labels)))
    assert UNMAPPED not in set(mapped)
    assert mapped.value_counts().min() > 500


def test_a_concentrated_numeric_column_cannot_be_banded() -> None:
    # Never below 0, so the lowest edge is 0 itself and every quartile falls on it: one band.
    values = pd.Series([0.0] * 99 + [2.5], name="x")
    column = classify(values=values, max_categories=50)
    with pytest.raises(InitError, match="'x': its values are too concentrated to form bands"):
        numeric_bands(values, column)


def test_a_grouping_that_passes_the_representation_check_is_judged() -> None:
    frame = _frame()
    found, warning = grouping(
        frame=frame, column=classify(values=frame["sex"], max_categories=50), positive=frame["y"], settings=SETTINGS
    )
    assert (found.judged, warning, found.codes) == (True, None, {"f": ["f"], "m": ["m"]})
    assert sum(found.sizes.values()) == len(frame)


def test_a_small_group_is_reported_not_judged_with_the_numbers() -> None:
    frame = _frame(400)
    frame["sex"] = ["f"] * 150 + ["m"] * 250
    found, warning = grouping(
        frame=frame, column=classify(values=frame["sex"], max_categories=50), positive=frame["y"], settings=SETTINGS
    )
    assert not found.judged
    assert warning is not None
    assert "'sex' is reported, not judged" in warning
    assert "'f' 150 rows (~90 in the train split)" in warning
    assert "min_rows_per_group 100" in warning


def test_missing_values_count_as_a_group_of_their_own() -> None:
    frame = _frame(3000)
    frame.loc[:9, "sex"] = None
    column = classify(values=frame["sex"], max_categories=50)
    found, warning = grouping(frame=frame, column=column, positive=frame["y"], settings=SETTINGS)
    assert found.sizes[UNMAPPED] == 10
    assert not found.judged
    assert warning is not None
    assert f"'{UNMAPPED}' 10 rows" in warning


def test_a_group_with_too_few_positives_is_not_judged() -> None:
    frame = _frame(3000)
    frame.loc[frame["sex"] == "f", "y"] = 0
    found, warning = grouping(
        frame=frame, column=classify(values=frame["sex"], max_categories=50), positive=frame["y"], settings=SETTINGS
    )
    assert not found.judged
    assert warning is not None
    assert "positive rate 0.000" in warning


def test_the_simulation_shifts_a_numeric_input_a_subgroup_and_a_categorical_input() -> None:
    frame = _frame()
    schema = inspect_table(frame=frame, options=Options(target="y", audit_only=("sex",)), source="t")
    sim = simulation(frame=frame, schema=schema, sensitive=["sex"])
    assert sim.covariate == "age"
    assert list(sim.codes) == ["sex"]
    assert sim.codes["sex"][0] in {"f", "m"}
    (column, (low, high)), *_ = sim.ranges.items()
    assert column == "age"
    assert 18 <= low < high <= 90
    assert sim.new_column == "plan"
    assert sim.new_code not in {"basic", "plus", "premium"}


def test_the_new_code_of_an_integer_coded_column_is_an_unused_number() -> None:
    frame = _frame()[["id", "age", "contract", "y"]]
    schema = inspect_table(frame=frame, options=Options(target="y"), source="t")
    sim = simulation(frame=frame, schema=schema, sensitive=[])
    assert (sim.new_column, sim.new_code) == ("contract", "25")
    assert list(sim.codes) == ["contract"]


def test_a_table_without_numbers_or_without_codes_cannot_be_simulated() -> None:
    frame = _frame()
    only_codes = frame[["id", "plan", "y"]]
    schema = inspect_table(frame=only_codes, options=Options(target="y"), source="t")
    with pytest.raises(InitError, match=r"t: no numeric column: params simulate\.covariate\.feature needs one"):
        simulation(frame=only_codes, schema=schema, sensitive=[])
    only_numbers = frame[["id", "age", "spend", "y"]]
    schema = inspect_table(frame=only_numbers, options=Options(target="y"), source="t")
    with pytest.raises(InitError, match=r"simulate\.new_category\.column needs one"):
        simulation(frame=only_numbers, schema=schema, sensitive=[])


def test_make_plan_sizes_min_rows_and_warns_of_a_rare_class() -> None:
    frame = _frame(1000)
    frame["y"] = [1] * 100 + [0] * 900
    schema = inspect_table(frame=frame, options=Options(target="y", sensitive=("sex",)), source="t")
    plan = make_plan(frame=frame, schema=schema, sensitive=["sex"], settings=SETTINGS, name="churn")
    assert plan.min_rows == 500
    assert any("target 'y' = 1: 100 rows (10.0%, ~60 in the train split)" in w for w in plan.warnings)
    big = _frame(3000)
    schema = inspect_table(frame=big, options=Options(target="y", sensitive=("sex",)), source="t")
    plan = make_plan(frame=big, schema=schema, sensitive=["sex"], settings=SETTINGS, name="churn")
    assert (plan.min_rows, plan.warnings, plan.group_features) == (1000, [], ["sex"])


def test_no_sensitive_column_is_a_warning() -> None:
    frame = _frame()
    schema = inspect_table(frame=frame, options=Options(target="y"), source="t")
    plan = make_plan(frame=frame, schema=schema, sensitive=[], settings=SETTINGS, name="x")
    assert plan.groupings == []
    assert any("nothing to measure" in w for w in plan.warnings)


@pytest.mark.parametrize(
    ("text", "expected"), [("Churn Table 2024", "churn-table-2024"), ("my_data.v2", "my-data-v2"), ("__", "")]
)
def test_slug(text: str, expected: str) -> None:
    assert slug(text) == expected


def test_left_out_columns_and_incomplete_metadata_are_warned_of() -> None:
    frame = _frame(3000).assign(
        note=[f"a long free text comment number {i}" for i in range(3000)],
        year=pd.array([2024] * 2999 + [None], dtype="Int64"),
    )
    schema = inspect_table(frame=frame, options=Options(target="y"), source="t")
    plan = make_plan(frame=frame, schema=schema, sensitive=[], settings=SETTINGS, name="x")
    assert any("drop ['note'] from the table" in w for w in plan.warnings)
    assert any("metadata column 'year' is empty in 1 rows" in w for w in plan.warnings)
    assert plan.period_column == "year"


def test_fairness_thresholds_widen_only_where_the_test_split_is_small() -> None:
    from pipeline.stages.init.plan import THRESHOLD, noise_threshold

    large = noise_threshold(sizes={"a": 34_000, "b": 34_000}, positive_share=0.5, test_share=0.2)
    small = noise_threshold(sizes={"a": 1_500, "b": 1_500}, positive_share=0.4, test_share=0.2)
    smaller = noise_threshold(sizes={"a": 300, "b": 5_000, "c": 400}, positive_share=0.4, test_share=0.2)
    assert large == THRESHOLD
    assert THRESHOLD < small < smaller
