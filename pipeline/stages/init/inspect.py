"""Pure inference of a table's schema: the target and its labels, the id, and a role, a dtype and
a reason for every other column. Nothing here reads or writes a file.

The rules, in the order they apply to a column that is neither target nor id:
1. all values null -> dropped ("all null");
2. a datetime column, text that parses as dates or periods (2024-01-31, 2024-01), or whole
   numbers in a column named like a period (year, month, quarter, week, period, or ending in
   _year, _month, _date, _period) -> metadata: kept for lineage, never a model input;
3. a single distinct value -> dropped ("constant");
4. booleans -> categorical (dtype bool);
5. whole numbers (an integer column, or floats that are all whole with some missing: how an
   integer column with a missing value arrives) with at most INT_CATEGORY_LIMIT distinct values ->
   categorical (dtype int: codes); more -> numeric (dtype int: a quantity);
6. floats -> numeric (dtype float);
7. text: long, mostly unique values -> dropped ("free text"); more than --max-categories
   distinct values -> dropped ("high cardinality"); otherwise categorical (dtype str);
8. anything else -> dropped ("unsupported dtype").
A numeric column's declared range is the observed one widened by MARGIN of its width on each
side (never below 0 for a column with no negative value), rounded outwards, so that the next
batch is not refused for a value just past the ones seen so far.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import pandas as pd

from pipeline.core.config import Label, label_key

INT_CATEGORY_LIMIT = 10
MARGIN = 0.10
DEFAULT_MAX_CATEGORIES = 50
# Text is free text (a comment, a name, an address) when its values are this long on average and
# at least this share of them are distinct: no category to learn from, and personal data besides.
FREE_TEXT_MEAN_LENGTH = 20
FREE_TEXT_DISTINCT_SHARE = 0.5
PERIOD_NAME = re.compile(r"^(year|month|quarter|week|period|date)$|_(year|month|date|period)$", re.IGNORECASE)
NUMBER_TEXT = re.compile(r"-?\d+(\.\d+)?")
DATE_TEXT = re.compile(r"^\d{4}-\d{2}(-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?)?$")
# Two-valued text targets whose positive value is obvious; anything else needs --positive-label.
POSITIVE_WORDS = {"yes", "y", "true", "t", "1", "positive", "pos"}
NEGATIVE_WORDS = {"no", "n", "false", "f", "0", "negative", "neg"}

INPUT, AUDIT_ONLY, METADATA, DROPPED, ID, TARGET = "input", "audit-only", "metadata", "dropped", "id", "target"


class InitError(ValueError):
    """The table or the options cannot describe a binary classification project; nothing was written."""


@dataclass(frozen=True)
class Column:
    name: str
    role: str
    # "numeric" or "categorical" for a declared column, "" otherwise.
    kind: str
    dtype: str
    nulls: int
    distinct: int
    reason: str
    values: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    observed: tuple[float, float] | None = None

    @property
    def nullable(self) -> bool:
        return self.nulls > 0

    @property
    def declared(self) -> bool:
        return self.kind in {"numeric", "categorical"}


@dataclass(frozen=True)
class Target:
    name: str
    positive: Label
    negative: Label
    counts: dict[str, int]
    reason: str


@dataclass(frozen=True)
class Options:
    target: str
    id_column: str | None = None
    sensitive: tuple[str, ...] = ()
    audit_only: tuple[str, ...] = ()
    positive_label: str | None = None
    max_categories: int = DEFAULT_MAX_CATEGORIES


@dataclass(frozen=True)
class Schema:
    source: str
    rows: int
    target: Target
    id_column: str
    id_reason: str
    columns: list[Column] = field(default_factory=list)

    def of(self, *roles: str) -> list[Column]:
        return [c for c in self.columns if c.role in roles]

    def by_name(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _examples(values: Sequence[object], limit: int = 3) -> str:
    return ", ".join(repr(v) if isinstance(v, str) else str(v) for v in list(values)[:limit])


def infer_target(*, frame: pd.DataFrame, name: str, positive_label: str | None, source: str) -> Target:
    if name not in frame.columns:
        raise InitError(f"{source}: no target column {name!r} (columns: {_examples(list(frame.columns), 12)})")
    values = frame[name]
    if values.isna().any():
        raise InitError(
            f"{source}: target {name!r} is empty in {int(values.isna().sum())} rows; "
            "label those rows or leave them out of the table"
        )
    distinct = list(pd.unique(values))
    if len(distinct) == 1:
        raise InitError(f"{source}: target {name!r} holds a single value ({_examples(distinct)}); it needs two")
    if len(distinct) > 2:
        raise InitError(
            f"{source}: target {name!r} holds {len(distinct)} distinct values ({_examples(sorted(map(str, distinct)))}, ...): "
            "only binary targets are supported (multiclass and regression are not)"
        )
    labels = [_label(v) for v in distinct]
    keys = [label_key(v) for v in labels]
    counts = {label_key(_label(v)): int(n) for v, n in values.value_counts().items()}
    yes_no = _yes_no(keys)
    if positive_label is not None:
        if label_key(positive_label) not in keys:
            raise InitError(
                f"{source}: --positive-label {positive_label!r} is not a value of target {name!r} "
                f"(it holds {_examples(keys)})"
            )
        pos = keys.index(label_key(positive_label))
        reason = "--positive-label"
    elif set(keys) in ({"0", "1"}, {"false", "true"}):
        pos = keys.index("1") if "1" in keys else keys.index("true")
        reason = "0/1 or false/true: positive is 1/true"
    elif yes_no is not None:
        pos = yes_no
        reason = f"yes/no-like: positive is {keys[pos]!r}"
    else:
        raise InitError(_name_positive(source, name, keys))
    return Target(name=name, positive=labels[pos], negative=labels[1 - pos], counts=counts, reason=reason)


def _yes_no(keys: list[str]) -> int | None:
    """The index of the positive value of an obviously yes/no-like pair, else None."""
    lowered = [k.lower() for k in keys]
    for pos in (0, 1):
        if lowered[pos] in POSITIVE_WORDS and lowered[1 - pos] in NEGATIVE_WORDS:
            return pos
    return None


def _name_positive(source: str, name: str, keys: list[str]) -> str:
    return (
        f"{source}: target {name!r} holds {keys[0]!r} and {keys[1]!r}: "
        "say which one the model predicts with --positive-label"
    )


def _label(value: object) -> Label:
    """A target value as params writes it: bool, whole number or text."""
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and float(value).is_integer():
        return int(value)
    return str(value)


def choose_id(*, frame: pd.DataFrame, id_column: str | None, target: str, source: str) -> tuple[str, str]:
    """The id column and why; refuses a missing, empty or repeated key."""
    if id_column is None:
        if "id" not in frame.columns:
            raise InitError(
                f"{source}: no --id given and no column named 'id': pass --id COL "
                "(a table without a unique key cannot join late labels)"
            )
        id_column, reason = "id", "the column named 'id'"
    else:
        if id_column not in frame.columns:
            raise InitError(f"{source}: --id column {id_column!r} is not in the table")
        reason = "--id"
    if id_column == target:
        raise InitError(f"{source}: the id column and the target are both {id_column!r}")
    ids = frame[id_column]
    if ids.isna().any():
        raise InitError(f"{source}: id column {id_column!r} is empty in {int(ids.isna().sum())} rows")
    repeated = ids[ids.duplicated(keep=False)]
    if len(repeated):
        examples = _examples(list(pd.unique(repeated))[:3])
        raise InitError(
            f"{source}: id column {id_column!r} is not unique: {repeated.nunique()} values repeat "
            f"over {len(repeated)} rows (e.g. {examples})"
        )
    return id_column, reason


def code_order(code: str) -> tuple[int, float, str]:
    """Codes that are numbers sort as numbers (2 before 10), then the others as text."""
    return (0, float(code), code) if NUMBER_TEXT.fullmatch(code) else (1, 0.0, code)


def _looks_like_dates(values: pd.Series) -> bool:
    text = values.astype(str)
    if not text.str.fullmatch(DATE_TEXT).all():
        return False
    parsed = pd.to_datetime(text.where(text.str.len() > 7, text + "-01"), errors="coerce", format="ISO8601")
    return bool(parsed.notna().all())


def nice_step(width: float) -> float:
    """A round step of a hundredth to a thousandth of `width`: what ranges and band edges round to."""
    return 10.0 ** math.floor(math.log10(width / 100)) if width > 0 else 1.0


def widened_range(*, low: float, high: float, whole: bool) -> tuple[float, float]:
    width = high - low
    margin = MARGIN * width if width > 0 else max(abs(low) * MARGIN, 1.0)
    step = max(nice_step(width or margin), 1.0) if whole else nice_step(width or margin)
    lo = math.floor((low - margin) / step) * step
    hi = math.ceil((high + margin) / step) * step
    if low >= 0:
        lo = max(lo, 0.0)
    return float(round(lo, 10)), float(round(hi, 10))


def classify(*, values: pd.Series, max_categories: int) -> Column:
    """Role, kind, dtype and the reason for one column that is neither target nor id."""
    name = str(values.name)
    present = values.dropna()
    nulls, distinct = len(values) - len(present), int(present.nunique())
    base = partial(Column, name=name, nulls=nulls, distinct=distinct)
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        # A pandas category column is text with a fixed vocabulary: judge it by its values.
        values, present = values.astype(object), present.astype(object)
        dtype = values.dtype
    if len(present) == 0:
        return base(role=DROPPED, kind="", dtype=str(dtype), reason="all null")
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return base(role=METADATA, kind="", dtype="datetime", reason="dates: lineage, not an input")
    inferred = pd.api.types.infer_dtype(present, skipna=True)
    boolean = pd.api.types.is_bool_dtype(dtype) or inferred == "boolean"
    is_text = not boolean and (pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype))
    whole = not boolean and (
        pd.api.types.is_integer_dtype(dtype)
        # A missing value turns an integer column into floats on the way in (numpy has no missing int).
        or (pd.api.types.is_float_dtype(dtype) and nulls > 0 and bool((present == present.round()).all()))
    )
    if is_text and _looks_like_dates(present):
        return base(role=METADATA, kind="", dtype="str", reason="dates or periods as text")
    if whole and PERIOD_NAME.search(name):
        return base(role=METADATA, kind="", dtype="int", reason="a period by its name")
    if distinct == 1:
        return base(role=DROPPED, kind="", dtype=str(dtype), reason=f"constant ({_label(present.iloc[0])!r})")
    if boolean:
        codes = tuple(sorted(label_key(bool(v)) for v in pd.unique(present)))
        return base(role=INPUT, kind="categorical", dtype="bool", reason="booleans", values=codes)
    if whole and distinct <= INT_CATEGORY_LIMIT:
        codes = tuple(str(v) for v in sorted(int(v) for v in pd.unique(present)))
        reason = f"whole numbers, {distinct} distinct (<= {INT_CATEGORY_LIMIT}): codes"
        return base(role=INPUT, kind="categorical", dtype="int", reason=reason, values=codes)
    if whole or pd.api.types.is_float_dtype(dtype):
        numbers = present.astype("float64")
        if not numbers.map(math.isfinite).all():
            return base(role=DROPPED, kind="", dtype=str(dtype), reason="holds infinite values")
        observed = (float(numbers.min()), float(numbers.max()))
        low, high = widened_range(low=observed[0], high=observed[1], whole=whole)
        reason = f"whole numbers, {distinct} distinct (> {INT_CATEGORY_LIMIT})" if whole else "decimal numbers"
        return base(
            role=INPUT,
            kind="numeric",
            dtype="int" if whole else "float",
            reason=reason,
            low=low,
            high=high,
            observed=observed,
        )
    if is_text:
        text = present.astype(str)
        mean_length = float(text.str.len().mean())
        if mean_length >= FREE_TEXT_MEAN_LENGTH and distinct >= FREE_TEXT_DISTINCT_SHARE * len(text):
            reason = f"free text ({distinct} distinct values, {mean_length:.0f} characters on average)"
            return base(role=DROPPED, kind="", dtype="str", reason=reason)
        if distinct > max_categories:
            reason = f"high cardinality ({distinct} distinct values > --max-categories {max_categories})"
            return base(role=DROPPED, kind="", dtype="str", reason=reason)
        codes = tuple(sorted(text.unique(), key=code_order))
        reason = f"text, {distinct} distinct (<= --max-categories {max_categories})"
        return base(role=INPUT, kind="categorical", dtype="str", reason=reason, values=codes)
    return base(role=DROPPED, kind="", dtype=str(dtype), reason=f"unsupported dtype {dtype}")


def inspect_table(*, frame: pd.DataFrame, options: Options, source: str) -> Schema:
    """Every column's role, or InitError naming the file and the column at fault."""
    if len(frame) == 0:
        raise InitError(f"{source}: the table has no rows")
    target = infer_target(frame=frame, name=options.target, positive_label=options.positive_label, source=source)
    id_column, id_reason = choose_id(frame=frame, id_column=options.id_column, target=options.target, source=source)
    for flag, names in (("--sensitive", options.sensitive), ("--audit-only", options.audit_only)):
        for name in names:
            if name not in frame.columns:
                raise InitError(f"{source}: {flag} column {name!r} is not in the table")
            if name in {options.target, id_column}:
                raise InitError(f"{source}: {flag} column {name!r} is the target or the id column")
    columns = []
    for name in frame.columns:
        if name in {options.target, id_column}:
            continue
        column = classify(values=frame[name], max_categories=options.max_categories)
        if name in options.sensitive or name in options.audit_only:
            if not column.declared:
                flag = "--sensitive" if name in options.sensitive else "--audit-only"
                raise InitError(f"{source}: {flag} column {name!r} cannot be grouped: {column.role}, {column.reason}")
            if name in options.audit_only:
                column = replace(column, role=AUDIT_ONLY, reason=f"--audit-only; {column.reason}")
        columns.append(column)
    inputs = [c for c in columns if c.role == INPUT]
    if not inputs:
        left = "; ".join(f"{c.name}: {c.role}, {c.reason}" for c in columns) or "no other column"
        raise InitError(f"{source}: no model input besides the target and the id column ({left})")
    return Schema(
        source=source, rows=len(frame), target=target, id_column=id_column, id_reason=id_reason, columns=columns
    )
