"""The per-batch core: one raw frame in, (predictions, rejects) out, nothing read or written.

A row is judged by the rules the service applies to a request (`serve/inputs.py`): numbers within
params data.numeric ranges and finite, codes within params data.categorical values unless the
column's unseen policy is `other` (then any short printable text, scored as the encoders' unknown
bucket and flagged), a null only in a nullable or audit-only column. A row that breaks any rule is
a reject with every reason, never scored and never dropped. The same function serves a partition
of a distributed frame: it depends on its arguments alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.config import Label, Params, label_key
from pipeline.core.schema import codes, conform
from pipeline.delivery.serve.inputs import FLAG_CATEGORY, MAX_CODE_CHARS

ROW = "row"
REASON = "reason"
SCORE = "score"
LABEL = "label"
PREDICTED = "predicted"
FLAGS = "flags"
MODEL_NAME, MODEL_VERSION, MODEL_SHA256 = "model_name", "model_version", "model_sha256"
# Unicode category Cc, which the service refuses in codes: a control character in a code would
# garble every log line and report that echoes it.
CONTROL = r"[\x00-\x1f\x7f-\x9f]"
# A reason quotes the offending value, bounded so a huge text cell cannot bloat the rejects.
MAX_QUOTED_CHARS = 40


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    sha256: str


@dataclass(frozen=True)
class BatchSpec:
    """What every batch shares: params and the model's identity (picklable, for worker processes)."""

    params: Params
    info: ModelInfo

    @property
    def id_column(self) -> str:
        return self.params.base.id_column

    def optional(self, column: str) -> bool:
        """May be null, or absent altogether, as in a request."""
        data = self.params.data
        spec = data.numeric.get(column) or data.categorical.get(column)
        return column in data.audit_only or bool(spec is not None and spec.nullable)

    def carried(self) -> tuple[str, ...]:
        """Audit-only columns: written beside the score for fairness and drift, never scored."""
        return self.params.data.audit_only


def predicted_values(params: Params) -> tuple[Label, Label]:
    """(negative, positive) raw labels, as one type: both kept when they share one, else their text."""
    negative, positive = params.base.negative_label, params.base.positive_label
    if type(negative) is type(positive):
        return negative, positive
    return label_key(negative), label_key(positive)


def _quote(values: pd.Series) -> pd.Series:
    def one(value: object) -> str:
        text = repr(value)
        return text if len(text) <= MAX_QUOTED_CHARS else text[:MAX_QUOTED_CHARS] + "..."

    return values.map(one).astype(object)


class _Reasons:
    """Reasons per row, joined with '; ': rejects are rare, so only their rows pay for the text."""

    def __init__(self, index: pd.Index) -> None:
        self.text = pd.Series("", index=index, dtype=object)

    def add(self, mask: pd.Series, text: str, values: pd.Series | None = None, suffix: str = "") -> None:
        """`text`, or `text` + the row's quoted value + `suffix`, for the rows in `mask`."""
        if not mask.any():
            return
        new = pd.Series(text, index=mask.index[mask], dtype=object)
        if values is not None:
            new = new + _quote(values[mask]) + suffix
        old = self.text[mask]
        self.text[mask] = np.where(old == "", new, old + "; " + new)


def _numeric(frame: pd.DataFrame, spec: BatchSpec, reasons: _Reasons) -> None:
    for col, bounds in spec.params.data.numeric.items():
        if col not in frame:
            continue
        values = frame[col].astype("float64")
        missing = values.isna()
        if not spec.optional(col):
            reasons.add(missing, f"{col}: missing, and params do not declare it nullable")
        infinite = ~missing & ~np.isfinite(values)
        reasons.add(infinite, f"{col}: ", values, " is not a finite number")
        outside = ~missing & ~infinite & ((values < bounds.min) | (values > bounds.max))
        reasons.add(outside, f"{col}: ", values, f" outside the params range [{bounds.min:g}, {bounds.max:g}]")


def _categorical(frame: pd.DataFrame, spec: BatchSpec, reasons: _Reasons) -> pd.Series:
    """Validates the codes; returns, per row, the columns whose unseen code is scored as `other`."""
    unseen_other = pd.Series("", index=frame.index, dtype=object)
    for col, column in spec.params.data.categorical.items():
        if col not in frame:
            continue
        text = codes(frame[col], column)
        missing = text.isna()
        if not spec.optional(col):
            reasons.add(missing, f"{col}: missing, and params do not declare it nullable")
        unseen = ~missing & ~text.isin(column.values)
        if column.unseen == "refuse":
            reasons.add(unseen, f"{col}: unseen code ", text, " (params unseen: refuse)")
            continue
        lengths = text.str.len()
        reasons.add(~missing & (lengths == 0), f"{col}: empty code")
        reasons.add(~missing & (lengths > MAX_CODE_CHARS), f"{col}: code longer than {MAX_CODE_CHARS} characters")
        reasons.add(~missing & text.str.contains(CONTROL, regex=True, na=False), f"{col}: control character in code")
        flag = FLAG_CATEGORY.format(column=col)
        unseen_other[unseen] = np.where(unseen_other[unseen] == "", flag, unseen_other[unseen] + ";" + flag)
    return unseen_other


def judge(frame: pd.DataFrame, spec: BatchSpec) -> tuple[pd.Series, pd.Series]:
    """(reasons, flags) per row: a non-empty reason refuses the row; flags mark scored unseen codes."""
    reasons = _Reasons(frame.index)
    reasons.add(frame[spec.id_column].isna(), f"{spec.id_column}: missing id")
    _numeric(frame, spec, reasons)
    flags = _categorical(frame, spec, reasons)
    return reasons.text, flags


def canonical(frame: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Every declared column in canonical form (as conform gives it); an absent optional column is
    all missing.
    """
    declared = frame.reindex(columns=list(params.data.columns))
    for col in params.data.categorical:
        if col not in frame:
            declared[col] = pd.Series(np.nan, index=frame.index, dtype="str")
    return conform(declared, params, with_target=False)


def score_batch(
    frame: pd.DataFrame, *, model: Any, spec: BatchSpec, first_row: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pure: (predictions, rejects) for one raw batch. `first_row` numbers the batch's rows in the
    whole input, so a reject without an id can still be found.
    """
    params = spec.params
    frame = frame.reset_index(drop=True)
    reasons, flags = judge(frame, spec)
    refused = (reasons != "").to_numpy()
    rejects = pd.DataFrame(
        {
            spec.id_column: frame[spec.id_column][refused],
            ROW: np.flatnonzero(refused).astype("int64") + first_row,
            REASON: reasons[refused].astype(str),
        }
    ).reset_index(drop=True)
    kept = frame[~refused].reset_index(drop=True)
    inputs = canonical(kept, params)
    features = list(params.data.features)
    score = model.predict_proba(inputs[features])[:, 1].astype("float64") if len(kept) else np.empty(0)
    label = (score >= params.evaluate.threshold).astype("int64")
    negative, positive = predicted_values(params)
    kept_flags = flags[~refused].reset_index(drop=True)
    predictions = pd.DataFrame(
        {
            spec.id_column: kept[spec.id_column],
            SCORE: score,
            LABEL: label,
            PREDICTED: np.where(label == 1, positive, negative) if len(kept) else np.empty(0, dtype=object),
            FLAGS: [f.split(";") if f else [] for f in kept_flags],
            **{c: inputs[c] for c in spec.carried()},
            MODEL_NAME: spec.info.name,
            MODEL_VERSION: spec.info.version,
            MODEL_SHA256: spec.info.sha256,
        }
    )
    return predictions, rejects
