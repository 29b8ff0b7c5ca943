"""params.yaml's base and data sections: what the table holds and how each column arrives."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Frozen(BaseModel):
    # extra="forbid" turns a typo in params.yaml into an error instead of a silently ignored knob.
    model_config = ConfigDict(frozen=True, extra="forbid")


Label = int | str | bool


class BaseSection(_Frozen):
    seed: int
    target: str
    id_column: str
    # Binary targets only. The raw target may hold any two values (0/1, true/false, "yes"/"no"):
    # these name them, and the model predicts the probability of positive_label.
    positive_label: Label = 1
    negative_label: Label = 0

    @model_validator(mode="after")
    def _two_labels(self) -> BaseSection:
        if label_key(self.positive_label) == label_key(self.negative_label):
            raise ValueError("base.positive_label and base.negative_label must differ")
        if self.target == self.id_column:
            raise ValueError("base.target and base.id_column name the same column")
        return self


def label_key(value: object) -> str:
    """The text a label or code compares by: 1, 1.0 and "1" are one; true and "True" are one."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    return text.lower() if text.lower() in {"true", "false"} else text


class NumericRange(_Frozen):
    min: float
    max: float
    # How the column arrives; int columns are validated as whole numbers and modelled as floats.
    dtype: Literal["float", "int"] = "float"
    # Nullable columns are imputed inside the model pipeline; their null share is reported.
    nullable: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> NumericRange:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class CategoricalColumn(_Frozen):
    values: tuple[str, ...] = Field(min_length=1)
    dtype: Literal["str", "int", "bool"] = "str"
    nullable: bool = False
    # A value outside `values` in a request or a production batch: refuse it (422 / validation
    # failure), or score it as "other" (the encoders' unknown bucket), flag it and let drift find it.
    unseen: Literal["refuse", "other"] = "refuse"

    @field_validator("values", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        # YAML reads 1 and true as numbers and booleans; the codes compare as text.
        if isinstance(value, list | tuple):
            return tuple(label_key(v) if isinstance(v, bool | int | float) else v for v in value)
        return value


class SourceSection(_Frozen):
    """A table that lives in a database: the ingest stage snapshots the query into data.raw."""

    query: str = Field(min_length=1)
    # The SQLAlchemy URL is read from this environment variable, never written to params.
    url_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")


class DataSection(_Frozen):
    raw: Path
    sample_rows: int = Field(ge=0)
    metadata_columns: tuple[str, ...] = ()
    numeric: dict[str, NumericRange]
    categorical: dict[str, CategoricalColumn]
    # Declared (so validated, logged and grouped for fairness and drift) but never fed to the
    # model: the usual way to audit a sensitive attribute the model must not use.
    audit_only: tuple[str, ...] = ()
    # Columns the table holds that the project leaves out (free text, constant, too many values):
    # validation accepts them and the model frame drops them, so the table needs no rewrite.
    ignored: tuple[str, ...] = ()
    source: SourceSection | None = None

    @field_validator("categorical", mode="before")
    @classmethod
    def _short_form(cls, value: object) -> object:
        # `COL: [a, b]` is the short form of `COL: {values: [a, b]}`.
        if isinstance(value, dict):
            return {k: {"values": v} if isinstance(v, list | tuple) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _columns_distinct(self) -> DataSection:
        both = sorted(set(self.numeric) & set(self.categorical))
        if both:
            raise ValueError(f"columns declared both numeric and categorical: {both}")
        unknown = [c for c in self.audit_only if c not in self.numeric and c not in self.categorical]
        if unknown:
            raise ValueError(
                f"audit_only names undeclared columns {unknown}: declare them under numeric or categorical"
            )
        also = sorted(set(self.ignored) & (set(self.columns) | set(self.metadata_columns)))
        if also:
            raise ValueError(f"ignored names columns that are also declared: {also}")
        if self.features == ():
            raise ValueError("no model input left: every declared column is audit_only")
        return self

    @property
    def columns(self) -> tuple[str, ...]:
        """Every declared column, model input or not."""
        return (*self.numeric, *self.categorical)

    @property
    def numeric_features(self) -> tuple[str, ...]:
        return tuple(c for c in self.numeric if c not in self.audit_only)

    @property
    def categorical_features(self) -> tuple[str, ...]:
        return tuple(c for c in self.categorical if c not in self.audit_only)

    @property
    def features(self) -> tuple[str, ...]:
        """The model's inputs, in the order the model reads them."""
        return (*self.numeric_features, *self.categorical_features)
