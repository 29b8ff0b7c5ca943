"""The next training table, pure: which labelled periods the window keeps, the join of one
period's labels, the assembly with the reference, the content-addressed file name and the
one-line params edit that points data.raw at it. Nothing here reads or writes a file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipeline.core import params_edit
from pipeline.core.config import BaseSection, RetrainSection, label_key
from pipeline.core.periods import Period

READY = "ready"
REFUSED = "refused"
# 0: pull-request body written (whatever the gate said: the PR shows it and CI blocks a merge);
# 1: the pipeline rerun failed; 2: bad input (no or unreachable DVC remote too); 3: too few
# labelled rows (the workflow alerts instead).
EXIT_CODES = {READY: 0, "failed": 1, "bad input": 2, REFUSED: 3}

ERR_NO_DIR = "{path}: the production data folder does not exist"
ERR_NO_PERIODS = "{path}: no labelled production period (<period>_features.parquet with <period>_labels.parquet)"
ERR_LABEL_COLUMNS = "{path}: labels need the columns {columns}"
ERR_DUPLICATE = "{path}: {count} repeated {column} values; one label per id"
ERR_LABEL_VALUES = (
    "{path}: {target} must hold base.positive_label / base.negative_label ({positive!r} / {negative!r}), found {values}"
)
ERR_NO_JOIN = "{labels}: no label id matches a row of {features}: the labels belong to other rows"
ERR_MISSING_COLUMNS = "{path}: lacks the columns {columns} of the reference table"
ERR_ID_CLASH = "the new training table repeats {count} ids across its sources (e.g. {examples}); ids must be unique"
ERR_TOO_FEW = "only {rows} labelled production rows in the window ({periods}); retrain.min_labelled_rows is {minimum}"
ERR_DRIFT_REPORT = "{path}: drift report not found; run `pipeline drift` first or leave --drift out"


class RetrainInputError(ValueError):
    """The inputs cannot make a training table: missing, unjoinable or clashing data."""


class RetrainRefused(RuntimeError):
    """Retraining is not possible yet: too few labelled production rows in the window."""


@dataclass(frozen=True)
class Source:
    """One part of the new table, for the pull-request body's "what changed"."""

    name: str
    path: str
    rows: int
    md5: str


@dataclass(frozen=True)
class Plan:
    """What the next training table is made of, before anything is written."""

    frame: pd.DataFrame
    sources: tuple[Source, ...]
    periods: tuple[str, ...]
    skipped: tuple[str, ...]
    labelled_rows: int
    # From the prediction log: the window read and what was left out of it (for the PR body).
    log: Mapping[str, Any] = field(default_factory=dict)


def select_window(*, periods: Sequence[Period], policy: RetrainSection) -> tuple[list[Period], list[Period]]:
    """(kept, skipped): the newest `max_periods` labelled periods by name; unlabelled ones wait."""
    labelled = [p for p in periods if p.labels is not None]
    cut = max(0, len(labelled) - policy.max_periods)
    return labelled[cut:], labelled[:cut]


def labelled_batch(
    *, features: pd.DataFrame, labels: pd.DataFrame, base: BaseSection, names: tuple[str, str]
) -> pd.DataFrame:
    """The rows of one period that have a label, with the label joined by id. A label is one of
    the target's two values (compared as params compare them: 1, 1.0 and "1" are one) and is
    written as params name it, so the new table holds its target the way the reference does.
    """
    id_column, target = base.id_column, base.target
    features_name, labels_name = names
    missing = [c for c in (id_column, target) if c not in labels.columns]
    if missing:
        raise RetrainInputError(ERR_LABEL_COLUMNS.format(path=labels_name, columns=missing))
    for frame, name in ((features, features_name), (labels, labels_name)):
        repeated = int(frame[id_column].duplicated().sum()) if id_column in frame.columns else 0
        if repeated:
            raise RetrainInputError(ERR_DUPLICATE.format(path=name, count=repeated, column=id_column))
    if id_column not in features.columns:
        raise RetrainInputError(ERR_MISSING_COLUMNS.format(path=features_name, columns=[id_column]))
    known = labels.loc[labels[target].notna(), [id_column, target]]
    named = {label_key(base.positive_label): base.positive_label, label_key(base.negative_label): base.negative_label}
    keys = known[target].map(label_key)
    bad = sorted({str(v) for v in known.loc[~keys.isin(named), target].unique()})
    if bad:
        raise RetrainInputError(
            ERR_LABEL_VALUES.format(
                path=labels_name,
                target=target,
                positive=base.positive_label,
                negative=base.negative_label,
                values=bad[:5],
            )
        )
    known = known.assign(**{target: keys.map(named)})
    joined = features.drop(columns=[target], errors="ignore").merge(
        known, on=id_column, how="inner", validate="one_to_one"
    )
    if joined.empty:
        raise RetrainInputError(ERR_NO_JOIN.format(labels=labels_name, features=features_name))
    return joined


def check_unique_ids(frame: pd.DataFrame, id_column: str) -> None:
    clash = frame[id_column][frame[id_column].duplicated()]
    if len(clash):
        examples = ", ".join(str(v) for v in clash.head(3))
        raise RetrainInputError(ERR_ID_CLASH.format(count=len(clash), examples=examples))


def assemble(*, reference: pd.DataFrame, batches: Mapping[str, pd.DataFrame], id_column: str) -> pd.DataFrame:
    """Reference rows then each period's rows, in the reference's columns and dtypes."""
    columns = list(reference.columns)
    parts = [reference]
    for name, batch in batches.items():
        missing = [c for c in columns if c not in batch.columns]
        if missing:
            raise RetrainInputError(ERR_MISSING_COLUMNS.format(path=name, columns=missing))
        parts.append(batch[columns].astype(reference.dtypes.to_dict()))
    combined = pd.concat(parts, ignore_index=True)
    check_unique_ids(combined, id_column)
    return combined


def content_name(frame: pd.DataFrame) -> str:
    """A file name from the table's content: the same rows always map to the same immutable file."""
    digest = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return f"retrain-{hashlib.sha256(digest.tobytes()).hexdigest()[:12]}.parquet"


def set_raw_path(*, text: str, path: str, source: str = "params.yaml") -> str:
    """params.yaml text with `data.raw` set to `path`; every other byte stays as it was."""
    try:
        return params_edit.set_scalar(text=text, key="data.raw", value=path, source=source)
    except params_edit.ParamsEditError as exc:
        # The CLI maps RetrainInputError to "bad input" (exit 2), like every other refusal here.
        raise RetrainInputError(str(exc)) from exc
