"""Labels that arrive after the prediction, keyed by its association id: what one is, the checks
every way in shares (the service's POST /feedback and `pipeline labels import`), and the rule for
a second label of an id.

A label is stored as 0/1 (the raw value mapped through base.positive_label / negative_label) next
to the raw value, the time it was observed, where it came from and when it arrived. A second,
second label of an id is refused or kept as a new version (params labels.duplicates); a label
whose (id, source, label) is already stored is a retry, never a duplicate, so a late retry cannot
override a newer label either.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from pipeline.core.config import label_key

if TYPE_CHECKING:
    from pipeline.core.config import BaseSection

DUPLICATE_RULES = ("refuse", "version")
FEEDBACK_SOURCE = "feedback"
IMPORT_SOURCE = "import:{name}"
# Clocks of the systems that send labels drift a little; a label from further ahead is a bug.
FUTURE_SKEW_SECONDS = 300.0

ERR_ID_TYPE = "must be text, not {kind}"
ERR_ID_EMPTY = "must not be empty"
ERR_ID_LONG = "has {n} characters; at most {limit} (params serve.max_association_id_chars)"
ERR_ID_CONTROL = "must not contain control characters (found U+{code:04X})"
ERR_LABEL = "must be base.positive_label ({positive!r}) or base.negative_label ({negative!r}), not {value!r}"
ERR_TIME_FORMAT = "must be an ISO 8601 date-time such as 2026-05-01T12:00:00Z, not {value!r}"
ERR_TIME_FUTURE = "{value} is in the future"
ERR_TIME_OLD = "{value} is older than the log keeps data (params serve.log.retention_days = {days})"


def import_source(name: str) -> str:
    return IMPORT_SOURCE.format(name=name)


@dataclass(frozen=True)
class LabelRecord:
    """One label as sent: `label` is 0/1, `raw_label` the value as it came, times in epoch seconds."""

    association_id: str
    label: int
    raw_label: str
    observed_at: float
    source: str


@dataclass(frozen=True)
class Refusal:
    """A label refused because the id already holds a different one (labels.duplicates: refuse)."""

    association_id: str
    label: int
    stored_label: int
    stored_source: str


@dataclass(frozen=True)
class LabelWrite:
    """What one write did: `rows` sent, `inserted` stored, `unchanged` retries (that id, source and
    label are stored already), `refused` duplicates; `matched` / `unmatched` split the distinct ids
    by whether a logged prediction carries them (unmatched labels are kept all the same).
    """

    rows: int
    inserted: int
    unchanged: int
    refused: tuple[Refusal, ...]
    matched: tuple[str, ...]
    unmatched: tuple[str, ...]


# (version, label, source) of each label stored for an id.
Stored = tuple[int, int, str]
Row = tuple[str, int, int, str, float, str, float]


def plan(
    records: Sequence[LabelRecord],
    *,
    stored: Mapping[str, Sequence[Stored]],
    logged: set[str],
    duplicates: Literal["refuse", "version"],
    received_at: float,
) -> tuple[list[Row], LabelWrite]:
    """The rows to insert (in LABEL_COLUMNS order) and the outcome, in the order the labels came:
    a later label of the same batch sees the earlier ones as stored.
    """
    if duplicates not in DUPLICATE_RULES:
        raise ValueError(f"labels.duplicates must be one of {DUPLICATE_RULES}, not {duplicates!r}")
    newest = {i: max(versions) for i, versions in stored.items() if versions}
    seen = {i: {(label, source) for _, label, source in versions} for i, versions in stored.items()}
    inserts: list[Row] = []
    refused: list[Refusal] = []
    unchanged = 0
    for rec in records:
        before = newest.get(rec.association_id)
        if (rec.label, rec.source) in seen.get(rec.association_id, ()):
            unchanged += 1
            continue
        if before is not None and duplicates == "refuse":
            refused.append(Refusal(rec.association_id, rec.label, stored_label=before[1], stored_source=before[2]))
            continue
        version = 1 if before is None else before[0] + 1
        newest[rec.association_id] = (version, rec.label, rec.source)
        seen.setdefault(rec.association_id, set()).add((rec.label, rec.source))
        inserts.append(
            (rec.association_id, version, rec.label, rec.raw_label, rec.observed_at, rec.source, received_at)
        )
    ids = list(dict.fromkeys(r.association_id for r in records))
    outcome = LabelWrite(
        rows=len(records),
        inserted=len(inserts),
        unchanged=unchanged,
        refused=tuple(refused),
        matched=tuple(i for i in ids if i in logged),
        unmatched=tuple(i for i in ids if i not in logged),
    )
    return inserts, outcome


# --------------------------------------------------------------------------- checks shared by every way in


def id_problem(value: object, *, max_chars: int) -> str | None:
    """Why `value` cannot be an association id, or None. The id is echoed into answers, log lines
    and the log itself: a newline or escape sequence in it would forge or garble their records.
    """
    if not isinstance(value, str):
        return ERR_ID_TYPE.format(kind=type(value).__name__)
    if not value:
        return ERR_ID_EMPTY
    if len(value) > max_chars:
        return ERR_ID_LONG.format(n=len(value), limit=max_chars)
    if not value.isprintable():
        bad = next((c for c in value if unicodedata.category(c) == "Cc"), None)
        if bad is not None:
            return ERR_ID_CONTROL.format(code=ord(bad))
    return None


def binary_label(value: object, *, base: BaseSection) -> int | None:
    """1 for base.positive_label, 0 for negative_label (compared by label_key), None otherwise."""
    if value is None or isinstance(value, list | dict) or (isinstance(value, float) and not math.isfinite(value)):
        return None
    key = label_key(value)
    if key == label_key(base.positive_label):
        return 1
    if key == label_key(base.negative_label):
        return 0
    return None


def label_problem(value: object, *, base: BaseSection) -> str:
    return ERR_LABEL.format(positive=base.positive_label, negative=base.negative_label, value=value)


def raw_text(value: object) -> str:
    """The raw label as text: strings as they came, anything else as JSON writes it (true, 1, 1.0)."""
    return value if isinstance(value, str) else json.dumps(value)


def parse_time(value: object) -> float:
    """Epoch seconds from an ISO 8601 date-time (a trailing Z allowed); without a zone it is UTC.
    ValueError names the expected form.
    """
    if not isinstance(value, str):
        raise ValueError(ERR_TIME_FORMAT.format(value=value))
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValueError(ERR_TIME_FORMAT.format(value=value)) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def time_problem(observed_at: float, *, now: float, retention_days: int) -> str | None:
    """A label from the future is a clock or unit error; one older than the retention would be
    personal data the log must already have deleted.
    """
    shown = datetime.fromtimestamp(observed_at, UTC).isoformat(timespec="seconds")
    if observed_at > now + FUTURE_SKEW_SECONDS:
        return ERR_TIME_FUTURE.format(value=shown)
    if observed_at < now - retention_days * 86_400:
        return ERR_TIME_OLD.format(value=shown, days=retention_days)
    return None
