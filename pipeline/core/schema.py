"""From a table as it arrives (ints, floats, booleans, text, nulls; a target in any two values)
to the frame every model, report and check reads: numeric inputs as float64 with NaN for a
missing value, categorical codes as text with NaN for a missing one, the target as 0/1.

Validation judges the table as it arrives; everything after it reads only this form, so a
team's dtypes never need a rewrite and no stage carries its own conversions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.core.config import BaseSection, CategoricalColumn, DataSection, label_key

if TYPE_CHECKING:
    from pipeline.core.config import Params


class SchemaError(ValueError):
    """A column cannot be read as params declare it; the message names the column."""


def label_keys(values: pd.Series) -> pd.Series:
    """label_key for a whole column, NaN kept: 1, 1.0 and "1" become "1"; True and "TRUE" "true"."""
    if pd.api.types.is_bool_dtype(values):
        return values.map({True: "true", False: "false"})
    if pd.api.types.is_numeric_dtype(values):
        numbers = values.astype("float64")
        whole = numbers.notna() & (numbers == np.floor(numbers))
        text = numbers.astype(str)
        text[whole] = numbers[whole].astype("int64").astype(str)
        return text.where(numbers.notna())
    text = values.astype(str)
    lowered = text.str.lower()
    return text.where(~lowered.isin(["true", "false"]), lowered).where(values.notna())


def target_binary(values: pd.Series, base: BaseSection) -> pd.Series:
    """1 where the raw target is base.positive_label, 0 where it is negative_label."""
    keys = label_keys(values)
    positive, negative = label_key(base.positive_label), label_key(base.negative_label)
    unknown = keys[~keys.isin([positive, negative])]
    if len(unknown):
        examples = ", ".join(repr(v) for v in values[unknown.index].drop_duplicates().head(5))
        raise SchemaError(
            f"column {values.name!r}: {len(unknown)} values are neither base.positive_label "
            f"({base.positive_label!r}) nor base.negative_label ({base.negative_label!r}), e.g. {examples}"
        )
    return (keys == positive).astype("int64")


def codes(values: pd.Series, spec: CategoricalColumn) -> pd.Series:
    """Categorical values as the text params list them in, NaN for a missing one."""
    if spec.dtype == "str" and not pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype(str)
    return label_keys(values).astype(str)


def numbers(values: pd.Series) -> pd.Series:
    try:
        return values.astype("float64")
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"column {values.name!r}: not numeric ({exc})") from exc


def conform_codes(frame: pd.DataFrame, data: DataSection) -> pd.DataFrame:
    """Only the categorical columns as text codes: for checks that judge numeric dtypes themselves."""
    out = frame.copy()
    for col, spec in data.categorical.items():
        if col in out:
            out[col] = codes(out[col], spec)
    return out


def conform(frame: pd.DataFrame, params: Params, *, with_target: bool = True) -> pd.DataFrame:
    """The canonical frame; the id and metadata columns pass through as they are, ignored ones go."""
    data = params.data
    out = conform_codes(frame.drop(columns=[c for c in data.ignored if c in frame.columns]), data)
    for col in data.numeric:
        if col in out:
            out[col] = numbers(out[col])
    target = params.base.target
    if with_target and target in out:
        out[target] = target_binary(out[target], params.base)
    return out


def request_features(row: Mapping[str, Any], data: DataSection) -> dict[str, Any]:
    """One conformed row as a client sends it to the service: every declared column (audit-only
    ones are logged, never scored), numbers as floats, codes as text, a missing value as null.
    """
    out: dict[str, Any] = {}
    for col in data.columns:
        value: Any = row.get(col)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out[col] = None
        else:
            out[col] = float(value) if col in data.numeric else label_key(value)
    return out
