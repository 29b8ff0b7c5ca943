"""Pure decisions that follow from the schema: fairness groups and whether each sensitive column
is judged, the drift simulation's columns, and the knobs sized by the table.

Rules:
- a categorical sensitive column gets one group per value; values with fewer rows than
  fairness.min_group_size, or than prepare's representation check needs (min_rows_per_group /
  train share), are merged into "other", and the smallest other values join them until "other"
  is that large too (never leaving fewer than two groups);
- a numeric sensitive column gets BANDS quantile bands, edges rounded, labelled like "18-29";
- a column is judged (thresholds THRESHOLD) only when every group, rows without a value
  included, would pass prepare's representation check on the train split (rows x train share
  >= prepare.representation.min_rows_per_group, positive rate >= min_group_positive_rate).
  Otherwise its thresholds are null (reported, not judged), it is left out of
  prepare.representation.group_features (prepare would refuse the data), and a warning gives the
  numbers. Audit-only columns are grouped like --sensitive ones: auditing is why they are kept.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.core.config import Params, label_key
from pipeline.core.groups import UNMAPPED
from pipeline.stages.init.inspect import AUDIT_ONLY, INPUT, Column, InitError, Schema, code_order, nice_step

BANDS = 4
THRESHOLD = 0.10
OTHER = "other"


@dataclass(frozen=True)
class Settings:
    """The current params' knobs that the inference is sized by."""

    min_group_size: int
    min_rows_per_group: int
    min_group_positive_rate: float
    min_rows_per_class: int
    min_class_share: float
    train_share: float
    min_rows: int
    test_share: float = 0.2

    @classmethod
    def from_params(cls, params: Params) -> Settings:
        rep, prep = params.prepare.representation, params.prepare
        return cls(
            min_group_size=params.fairness.min_group_size,
            min_rows_per_group=rep.min_rows_per_group,
            min_group_positive_rate=rep.min_group_positive_rate,
            min_rows_per_class=rep.min_rows_per_class,
            min_class_share=rep.min_class_share,
            train_share=1 - prep.test_size - prep.valid_size,
            test_share=prep.test_size,
            min_rows=params.validation.min_rows,
        )


@dataclass(frozen=True)
class Grouping:
    column: str
    codes: dict[str, list[str]] | None
    bins: list[float] | None
    labels: list[str] | None
    judged: bool
    sizes: dict[str, int]
    # The fairness threshold proposed for this column (unused when not judged).
    threshold: float = 0.10


@dataclass(frozen=True)
class Simulation:
    covariate: str
    codes: dict[str, list[str]]
    ranges: dict[str, tuple[float, float]]
    new_column: str
    new_code: str


@dataclass(frozen=True)
class Plan:
    schema: Schema
    name: str
    groupings: list[Grouping]
    simulation: Simulation
    min_rows: int
    warnings: list[str] = field(default_factory=list)

    @property
    def group_features(self) -> list[str]:
        return [g.column for g in self.groupings if g.judged]

    @property
    def period_column(self) -> str | None:
        metadata = self.schema.of("metadata")
        return metadata[0].name if metadata else None


def slug(text: str) -> str:
    """A registry and experiment name: lower case letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def codes_of(values: pd.Series, column: Column) -> pd.Series:
    """The text each value compares by (as inspect wrote the codes), nulls kept as NaN."""
    if column.dtype == "int":
        return values.astype(object).map(lambda v: str(int(v)), na_action="ignore")
    if column.dtype == "bool":
        return values.astype(object).map(lambda v: label_key(bool(v)), na_action="ignore")
    return values.astype(object).map(str, na_action="ignore")


def _band_label(low: float, high: float, *, whole: bool, last: bool) -> str:
    def fmt(x: float) -> str:
        return f"{x:.10g}"

    if last:
        return f"{fmt(low)}+"
    if whole:
        return fmt(low) if high - 1 <= low else f"{fmt(low)}-{fmt(high - 1)}"
    return f"{fmt(low)}-{fmt(high)}"


def numeric_bands(values: pd.Series, column: Column) -> tuple[list[float], list[str]]:
    """BANDS quantile bands over the declared range: [min, q1), [q1, q2), ..., [q3, max]."""
    assert column.low is not None
    assert column.high is not None
    assert column.observed is not None
    present = values.dropna().astype("float64")
    # Whole numbers stored as floats (ages, counts) get whole edges and inclusive labels too.
    whole = column.dtype == "int" or bool((present == present.round()).all())
    step = nice_step(column.observed[1] - column.observed[0])
    step = max(step, 1.0) if whole else step
    inner = [round(float(q) / step) * step for q in np.quantile(present, [i / BANDS for i in range(1, BANDS)])]
    # The declared max itself must fall inside the last band (bands include their lower edge only).
    top = column.high + (1 if whole else step)
    edges = sorted({column.low, *(round(e, 10) for e in inner if column.low < e < top), top})
    if len(edges) < 3:
        raise InitError(f"sensitive column {column.name!r}: its values are too concentrated to form bands")
    labels = [
        _band_label(lo, hi, whole=whole, last=i == len(edges) - 2)
        for i, (lo, hi) in enumerate(itertools.pairwise(edges))
    ]
    return edges, labels


def merged_codes(counts: dict[str, int], *, floor: int) -> dict[str, list[str]]:
    """One group per value; values below `floor` rows go to "other", and the smallest of the rest
    join them until "other" reaches `floor` too. A lone small value keeps its name; never fewer than
    two groups.
    """
    by_size = sorted(counts, key=lambda c: (counts[c], code_order(c)))
    small = [c for c in by_size if counts[c] < floor]
    rest = [c for c in by_size if counts[c] >= floor]
    while small and sum(counts[c] for c in small) < floor and len(rest) > 2:
        small.append(rest.pop(0))
    if len(small) == 1 or len(rest) + (1 if small else 0) < 2:
        # A lone small value keeps its own name, and one group measures nothing: no merge.
        rest, small = [*rest, *small], []
    codes = {code: [code] for code in sorted(rest, key=code_order)}
    if small:
        codes[OTHER] = sorted({*codes.pop(OTHER, []), *small}, key=code_order)
    return codes


def grouping(
    *, frame: pd.DataFrame, column: Column, positive: pd.Series, settings: Settings
) -> tuple[Grouping, str | None]:
    """The column's groups, whether they can be judged, and a warning when they cannot."""
    values = frame[column.name]
    codes: dict[str, list[str]] | None = None
    bins: list[float] | None = None
    labels: list[str] | None = None
    if column.kind == "numeric":
        bins, labels = numeric_bands(values, column)
        groups = pd.cut(values.astype("float64"), bins=bins, labels=labels, right=False).astype(object)
    else:
        text = codes_of(values, column)
        # The smallest group prepare accepts, counted over the whole table.
        floor = max(settings.min_group_size, math.ceil(settings.min_rows_per_group / settings.train_share))
        codes = merged_codes({str(c): int(n) for c, n in text.value_counts().items()}, floor=floor)
        lookup = {code: name for name, members in codes.items() for code in members}
        groups = text.map(lookup)
    groups = groups.where(groups.notna(), UNMAPPED).astype(str)
    stats = positive.groupby(groups).agg(["size", "mean"])
    sizes = {str(g): int(n) for g, n in stats["size"].items()}
    failing = [
        f"{g!r} {int(row['size'])} rows (~{int(row['size'] * settings.train_share)} in the train split), "
        f"positive rate {row['mean']:.3f}"
        for g, row in stats.iterrows()
        if row["size"] * settings.train_share < settings.min_rows_per_group
        or row["mean"] < settings.min_group_positive_rate
    ]
    judged = not failing
    warning = None
    if failing:
        warning = (
            f"fairness: {column.name!r} is reported, not judged (thresholds null) and left out of "
            f"prepare.representation.group_features: {'; '.join(failing)} is below "
            f"prepare.representation.min_rows_per_group {settings.min_rows_per_group} rows in the train split "
            f"or min_group_positive_rate {settings.min_group_positive_rate}"
        )
    threshold = noise_threshold(sizes=sizes, positive_share=float(positive.mean()), test_share=settings.test_share)
    return Grouping(column.name, codes, bins, labels, judged, sizes, threshold), warning


def noise_threshold(*, sizes: dict[str, int], positive_share: float, test_share: float) -> float:
    """THRESHOLD, or more when the test split is too small to tell it from noise: three standard
    errors of a difference of two rates (worst-case variance) between the two smallest groups,
    counting only one class's rows as equalized odds does.
    """
    counts = sorted(n * test_share * min(positive_share, 1 - positive_share) for n in sizes.values())
    if len(counts) < 2 or counts[0] < 1:
        return THRESHOLD
    standard_error = math.sqrt(0.25 * (1 / counts[0] + 1 / counts[1]))
    return max(THRESHOLD, math.ceil(3 * standard_error * 100) / 100)


def _new_code(column: Column) -> str:
    if column.dtype == "int":
        return str(max(int(v) for v in column.values) + 1)
    code, n = "unseen", 1
    while code in column.values:
        code, n = f"unseen-{n}", n + 1
    return code


def simulation(*, frame: pd.DataFrame, schema: Schema, sensitive: list[str]) -> Simulation:
    """The columns the drift simulation shifts: a numeric input, a subgroup, a categorical input."""
    declared = [c for c in schema.columns if c.declared]
    numeric_inputs = [c for c in declared if c.kind == "numeric" and c.role == INPUT]
    numeric = numeric_inputs or [c for c in declared if c.kind == "numeric"]
    if not numeric:
        raise InitError(
            f"{schema.source}: no numeric column: params simulate.covariate.feature needs one "
            "(the drift simulation reweights rows by it)"
        )
    covariate = numeric[0]
    categorical = [c for c in declared if c.kind == "categorical"]
    candidates = [c for c in categorical if c.role == INPUT and c.dtype == "str"]
    candidates += [c for c in categorical if c.role == INPUT and c.dtype == "int"]
    candidates += [c for c in categorical if c.role == AUDIT_ONLY and c.dtype in {"str", "int"}]
    if not candidates:
        raise InitError(
            f"{schema.source}: no categorical column with text or whole-number codes: params "
            "simulate.new_category.column needs one (the drift simulation adds an unseen code to it)"
        )
    new = candidates[0]
    by_name = {c.name: c for c in declared}
    subgroup = [by_name[n] for n in sensitive if n in by_name and by_name[n].kind == "categorical"] or categorical
    codes: dict[str, list[str]] = {}
    if subgroup:
        top = codes_of(frame[subgroup[0].name], subgroup[0]).value_counts().index[0]
        codes = {subgroup[0].name: [str(top)]}
    banded = [by_name[n] for n in sensitive if n in by_name and by_name[n].kind == "numeric"] or [covariate]
    values = frame[banded[0].name].dropna().astype("float64")
    assert banded[0].observed is not None
    step = nice_step(banded[0].observed[1] - banded[0].observed[0])
    low = math.floor(float(values.quantile(0.25)) / step) * step
    high = math.ceil(float(values.quantile(0.75)) / step) * step
    ranges = {banded[0].name: (round(low, 10), round(high if high > low else low + step, 10))}
    return Simulation(covariate.name, codes, ranges, new.name, _new_code(new))


def make_plan(*, frame: pd.DataFrame, schema: Schema, sensitive: list[str], settings: Settings, name: str) -> Plan:
    target = schema.target
    positive = (frame[target.name].map(label_key) == label_key(target.positive)).astype("float64")
    warnings: list[str] = []
    for label in (target.positive, target.negative):
        n = target.counts[label_key(label)]
        in_train, share = int(n * settings.train_share), n / schema.rows
        if in_train < settings.min_rows_per_class or share < settings.min_class_share:
            warnings.append(
                f"target {target.name!r} = {label!r}: {n} rows ({share:.1%}, ~{in_train} in the train split); "
                f"prepare refuses fewer than {settings.min_rows_per_class} rows or "
                f"{settings.min_class_share:.0%} (prepare.representation)"
            )
    dropped = [c.name for c in schema.of("dropped")]
    if dropped:
        warnings.append(
            f"validation refuses a table holding columns params do not declare: drop {dropped} from the "
            "table, or declare them in params data"
        )
    warnings += [
        f"metadata column {c.name!r} is empty in {c.nulls} rows: validation refuses missing values there"
        for c in schema.of("metadata")
        if c.nulls
    ]
    groupings = []
    for column_name in sensitive:
        found, warning = grouping(frame=frame, column=schema.by_name(column_name), positive=positive, settings=settings)
        groupings.append(found)
        if warning:
            warnings.append(warning)
    if not sensitive:
        warnings.append("no --sensitive or --audit-only column: the fairness stage has nothing to measure")
    return Plan(
        schema=schema,
        name=name,
        groupings=groupings,
        simulation=simulation(frame=frame, schema=schema, sensitive=sensitive),
        min_rows=min(settings.min_rows, schema.rows // 2),
        warnings=warnings,
    )
