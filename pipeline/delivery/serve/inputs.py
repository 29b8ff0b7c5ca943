"""Request inputs: the schema from params, the training profile and the humility flags."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

from pipeline.core.config import DataSection, HumilitySection, Params, label_key

logger = logging.getLogger(__name__)

FLAG_RANGE = "out_of_training_range:{column}"
FLAG_CATEGORY = "unseen_category:{column}"
FLAG_UNCERTAIN = "uncertain_score"
JSON_MEDIA_TYPE = "application/json"
ERR_CONTROL_CHARACTER = "must not contain control characters (found U+{code:04X})"
# An unseen code is logged and echoed in flags: bound its length like any other text field.
MAX_CODE_CHARS = 128


@dataclass(frozen=True)
class TrainingProfile:
    """What the model saw in training: numeric ranges and the categories present."""

    numeric: Mapping[str, tuple[float, float]]
    categorical: Mapping[str, frozenset[str]]


def training_profile(*, frame: pd.DataFrame, data: DataSection) -> TrainingProfile:
    """Over the model's inputs only; the split is canonical (prepare wrote it), the raw table
    is conformed first.
    """
    numeric = {c: (float(frame[c].min()), float(frame[c].max())) for c in data.numeric_features}
    categorical = {c: frozenset(frame[c].dropna().astype(str).unique()) for c in data.categorical_features}
    return TrainingProfile(numeric=numeric, categorical=categorical)


def load_profile(*, params: Params) -> TrainingProfile:
    """From the training split when prepared, else from the raw data it is cut from."""
    from pipeline.core import io

    path = params.paths.prepared / "train.parquet"
    if not path.is_file():
        logger.warning("%s not found: humility ranges come from %s", path, params.data.raw)
        path = params.data.raw
    from pipeline.core.schema import conform

    return training_profile(frame=conform(io.read_table(path), params, with_target=False), data=params.data)


def probe_row(*, profile: TrainingProfile) -> dict[str, Any]:
    """A row inside every training range, for checking a model scores before it serves."""
    row: dict[str, Any] = {c: (low + high) / 2 for c, (low, high) in profile.numeric.items()}
    row.update({c: min(seen) if seen else "" for c, seen in profile.categorical.items()})
    return row


def input_flags(*, row: Mapping[str, Any], profile: TrainingProfile) -> list[str]:
    # A missing value (a nullable column) is neither out of range nor unseen: the model imputes it.
    flags = [
        FLAG_RANGE.format(column=c)
        for c, (low, high) in profile.numeric.items()
        if row[c] is not None and not low <= row[c] <= high
    ]
    flags += [
        FLAG_CATEGORY.format(column=c)
        for c, seen in profile.categorical.items()
        if row[c] is not None and row[c] not in seen
    ]
    return flags


def score_flags(*, score: float, humility: HumilitySection) -> list[str]:
    low, high = humility.uncertain_band
    return [FLAG_UNCERTAIN] if low <= score <= high else []


def answer(*, score: float, flags: Sequence[str], threshold: float, humility: HumilitySection) -> tuple[int, bool]:
    """(label, fallback used): a flagged prediction takes the fallback label when one is set."""
    if flags and humility.fallback_label is not None:
        return int(humility.fallback_label), True
    return int(score >= threshold), False


def _code(value: Any) -> Any:
    # JSON clients often send codes as numbers or booleans: 16 and "16" are the same code, and
    # true is "true", as params list them.
    if isinstance(value, bool | int):
        return label_key(value)
    return value


def is_json(*, content_type: str | None) -> bool:
    """Whether a Content-Type header names JSON; parameters such as charset are allowed."""
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == JSON_MEDIA_TYPE


def _no_control_characters(value: str) -> str:
    # The id is echoed into responses, log lines and the prediction log: a newline or escape
    # sequence in it would forge or garble their records. isprintable() is the cheap common path.
    if not value.isprintable():
        bad = next((c for c in value if unicodedata.category(c) == "Cc"), None)
        if bad is not None:
            raise ValueError(ERR_CONTROL_CHARACTER.format(code=ord(bad)))
    return value


def request_model(*, data: DataSection, max_id_chars: int) -> type[BaseModel]:
    """The request schema from params: numeric ranges and category code lists, nothing extra.

    A nullable column may be null or left out; so may an audit-only column, which is logged
    (for fairness and drift by group) but never scored. A column whose unseen policy is
    `other` takes any short text: the model scores an unknown code as its unknown bucket.
    """
    forbid = ConfigDict(extra="forbid")
    fields: dict[str, Any] = {}
    for column, bounds in data.numeric.items():
        number: Any = Annotated[float, Field(ge=bounds.min, le=bounds.max, allow_inf_nan=False, strict=True)]
        fields[column] = _optional(number) if bounds.nullable or column in data.audit_only else (number, ...)
    for column, spec in data.categorical.items():
        code: Any = (
            Annotated[
                str,
                BeforeValidator(_code),
                Field(min_length=1, max_length=MAX_CODE_CHARS),
                AfterValidator(_no_control_characters),
            ]
            if spec.unseen == "other"
            else Annotated[Literal[spec.values], BeforeValidator(_code)]
        )
        fields[column] = _optional(code) if spec.nullable or column in data.audit_only else (code, ...)
    features = create_model("Features", __config__=forbid, **fields)
    model: type[BaseModel] = create_model(
        "PredictRequest",
        __config__=forbid,
        association_id=(
            Annotated[str, Field(min_length=1, max_length=max_id_chars), AfterValidator(_no_control_characters)] | None,
            None,
        ),
        features=(features, ...),
    )
    return model


def _optional(kind: Any) -> tuple[Any, None]:
    return (kind | None, None)


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False)
    ]


def to_frame(*, rows: Sequence[Mapping[str, Any]], data: DataSection) -> pd.DataFrame:
    """The model's inputs only, in its canonical form: a null number is NaN, a null code NaN."""
    columns: dict[str, Any] = {
        c: np.fromiter((np.nan if r.get(c) is None else r[c] for r in rows), np.float64, len(rows))
        for c in data.numeric_features
    }
    columns.update({c: pd.array([r.get(c) for r in rows], dtype="str") for c in data.categorical_features})
    return pd.DataFrame(columns)
