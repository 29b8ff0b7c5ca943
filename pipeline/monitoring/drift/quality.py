"""What the drift check asks of its inputs before judging them.

Two kinds of answer. Inputs that cannot be read as a batch, scores or labels at all (no rows,
missing or wrongly typed columns, scores outside [0, 1], labels other than 0 and 1, a report
folder that is a file) raise DriftInputError: bad input, exit 2, nothing written. A feature
whose values went missing or infinite is a finding about production data instead: it gets the
"data quality" verdict, reported next to the drift findings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

ERR_EMPTY = "the {name} batch is empty (0 rows)"
ERR_MISSING = "the {name} batch lacks required columns: {columns}"
ERR_NUMERIC_TYPE = "column {column!r} of the {name} batch must be numeric but holds {dtype}"
ERR_CATEGORICAL_TYPE = "column {column!r} of the {name} batch must hold category codes (strings) but holds {dtype}"
ERR_SCORE_TYPE = "{source}: column {column!r} must hold probabilities in [0, 1] but holds {dtype}"
ERR_SCORE_RANGE = (
    "{source}: column {column!r} must hold probabilities in [0, 1]; {count} of {rows} rows are missing or "
    "outside (e.g. {examples})"
)
ERR_LABEL_VALUES = "{source}: column {column!r} must hold the labels 0 and 1; found {values}"
ERR_NO_LABELS = "{source}: column {column!r} holds no label (every value is missing)"
ERR_OUT_DIR = "report folder {path} (--out-dir or params drift.out_dir): {blocker} exists and is not a folder"

LABELS = (0, 1)
_EXAMPLES = 5


class DriftInputError(ValueError):
    """An input cannot be checked: empty, missing columns, wrong types or values, unwritable report folder."""


# No production batch anywhere (no log window with answers, no batch file): not a broken input
# but a monitoring gap, so it gets its own exit code and the workflow raises an alert for it.
NO_DATA = "no data"
EXIT_NO_DATA = 3


class NoProductionData(DriftInputError):
    """Nothing to check: the log window holds no answer and no production batch file exists."""


# --------------------------------------------------------------------------- refusals


def check_batch(*, frame: pd.DataFrame, name: str, numeric: Sequence[str], categorical: Sequence[str]) -> None:
    """Refuse a batch that cannot be compared, naming the exact problem."""
    if len(frame) == 0:
        raise DriftInputError(ERR_EMPTY.format(name=name))
    missing = [c for c in (*numeric, *categorical) if c not in frame.columns]
    if missing:
        raise DriftInputError(ERR_MISSING.format(name=name, columns=", ".join(missing)))
    for column in (*numeric, *categorical):
        # A column with no value at all has whatever dtype its reader guessed (CSV: float, parquet
        # nulls: object); it is a data-quality finding, not a type error.
        if frame[column].isna().all():
            continue
        dtype = frame[column].dtype
        if column in numeric:
            if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
                raise DriftInputError(ERR_NUMERIC_TYPE.format(column=column, name=name, dtype=dtype))
        elif pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_float_dtype(dtype):
            raise DriftInputError(ERR_CATEGORICAL_TYPE.format(column=column, name=name, dtype=dtype))


def check_scores(*, scores: pd.Series, source: str, column: str) -> None:
    """Refuse scores that are not probabilities: text, booleans, missing, infinite or outside [0, 1]."""
    dtype = scores.dtype
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        raise DriftInputError(ERR_SCORE_TYPE.format(source=source, column=column, dtype=dtype))
    values = scores.to_numpy(dtype=np.float64, na_value=np.nan)
    # NaN fails both comparisons, so it counts as bad along with the out-of-range values.
    bad = values[~((values >= 0) & (values <= 1))]
    if bad.size:
        examples = ", ".join(str(v) for v in pd.unique(bad)[:_EXAMPLES])
        raise DriftInputError(
            ERR_SCORE_RANGE.format(source=source, column=column, count=bad.size, rows=values.size, examples=examples)
        )


def labelled_rows(*, labels: pd.DataFrame, source: str, column: str) -> pd.DataFrame:
    """The rows that carry a label, the label as 0/1 integers; any other label value is refused.

    A missing label means "not labelled yet" (as for retraining), so such rows are left out.
    """
    known = labels.loc[labels[column].notna()]
    if known.empty:
        raise DriftInputError(ERR_NO_LABELS.format(source=source, column=column))
    values = known[column]
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        # 0.0 and 1.0 are labels too: a label column with gaps is read as floats.
        bad = values[~np.isin(values.to_numpy(dtype=np.float64), LABELS)]
    else:
        # Label files written as text ("0"/"1") are read as strings.
        values = values.astype(str)
        bad = values[~values.isin([str(v) for v in LABELS])]
    if len(bad):
        shown = ", ".join(sorted({str(v) for v in bad.unique()})[:_EXAMPLES])
        raise DriftInputError(ERR_LABEL_VALUES.format(source=source, column=column, values=shown))
    return known.assign(**{column: values.astype("int64")})


def check_out_dir(*, path: Path) -> None:
    """Refuse a report folder that is, or lies under, an existing file, before anything is read."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise DriftInputError(ERR_OUT_DIR.format(path=path, blocker=candidate))
            return


# --------------------------------------------------------------------------- data-quality findings


@dataclass(frozen=True)
class ColumnQuality:
    """How many rows of one column hold no usable value."""

    rows: int
    missing: int
    infinite: int

    @property
    def missing_share(self) -> float:
        return self.missing / self.rows if self.rows else 0.0

    @property
    def infinite_share(self) -> float:
        return self.infinite / self.rows if self.rows else 0.0


def column_quality(*, series: pd.Series, kind: Literal["numeric", "categorical"]) -> ColumnQuality:
    """Missing (null, NaN) and infinite rows of a column; only numeric columns can be infinite."""
    missing = int(series.isna().sum())
    infinite = 0
    if kind == "numeric" and missing < len(series):
        infinite = int(np.isinf(series.to_numpy(dtype=np.float64, na_value=np.nan)).sum())
    return ColumnQuality(rows=len(series), missing=missing, infinite=infinite)


def _share(value: float) -> str:
    return f"{100 * value:.1f}%"


def find_quality_issue(*, current: ColumnQuality, reference: ColumnQuality, max_share: float) -> str | None:
    """Why a feature fails data quality, or None when it passes.

    Missing values fail when their share is more than `max_share` above the reference's own
    share, so a column that was already sparse in the reference is not a finding. An infinity is
    never a measurement: any infinite value fails unless the reference holds them too, and then
    the same margin applies.
    """
    reasons = []
    if current.missing_share - reference.missing_share > max_share:
        reasons.append(
            f"{current.missing} of {current.rows} rows missing "
            f"({_share(current.missing_share)}; reference {_share(reference.missing_share)})"
        )
    margin = max_share if reference.infinite else 0.0
    if current.infinite_share - reference.infinite_share > margin:
        reasons.append(
            f"{current.infinite} of {current.rows} rows infinite "
            f"({_share(current.infinite_share)}; reference {_share(reference.infinite_share)})"
        )
    return "; ".join(reasons) or None
