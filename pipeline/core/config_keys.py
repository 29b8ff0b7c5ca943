"""Every params key that names a column, checked against the declared columns (and, once the
data is known, against the table) so an error names the key to fix, not only the column.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.core.config import Params

NUMERIC, CATEGORICAL, DECLARED = "data.numeric", "data.categorical", "data.numeric or data.categorical"


def named_columns(params: Params) -> list[tuple[str, str, str]]:
    """(params key, column, where it must be declared) for every key that names a column."""
    named: list[tuple[str, str, str]] = []
    named += [(f"fairness.groups.{c}", c, DECLARED) for c in params.fairness.groups]
    named += [("simulate.covariate.feature", params.simulate.covariate.feature, NUMERIC)]
    named += [(f"simulate.concept.codes.{c}", c, CATEGORICAL) for c in params.simulate.concept.codes]
    named += [(f"simulate.concept.ranges.{c}", c, NUMERIC) for c in params.simulate.concept.ranges]
    named += [("simulate.new_category.column", params.simulate.new_category.column, CATEGORICAL)]
    return named


def column_problems(params: Params) -> list[str]:
    data = params.data
    declared = {NUMERIC: set(data.numeric), CATEGORICAL: set(data.categorical), DECLARED: set(data.columns)}
    problems = [
        f"{key}: column {column!r} is not declared under {where}"
        for key, column, where in named_columns(params)
        if column not in declared[where]
    ]
    problems += [
        f"prepare.representation.group_features: {c!r} has no grouping under fairness.groups"
        for c in params.prepare.representation.group_features
        if c not in params.fairness.groups
    ]
    reserved = {"base.target": params.base.target, "base.id_column": params.base.id_column}
    problems += [f"data.ignored: {column!r} is {key}" for key, column in reserved.items() if column in data.ignored]
    problems += [
        f"{key}: {column!r} is also declared under {where}"
        for key, column in reserved.items()
        for where, columns in (
            ("data.numeric or data.categorical", data.columns),
            ("data.metadata_columns", data.metadata_columns),
        )
        if column in columns
    ]
    problems += [
        f"data.metadata_columns: {c!r} is also declared as a data column"
        for c in data.metadata_columns
        if c in data.columns
    ]
    return problems


def missing_from_table(params: Params, columns: Iterable[str], *, with_target: bool = True) -> list[str]:
    """Keys whose column the table does not hold: one line each, naming the key."""
    have = set(columns)
    wanted: list[tuple[str, str]] = [("base.id_column", params.base.id_column)]
    if with_target:
        wanted.append(("base.target", params.base.target))
    wanted += [(f"data.numeric.{c}", c) for c in params.data.numeric]
    wanted += [(f"data.categorical.{c}", c) for c in params.data.categorical]
    wanted += [("data.metadata_columns", c) for c in params.data.metadata_columns]
    return [f"{key}: column {column!r} is not in the table" for key, column in wanted if column not in have]
