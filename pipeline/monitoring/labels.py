"""`pipeline labels import FILE`: labels that arrived outside the service (a CSV or parquet export
from the system that learns the truth) into the prediction log's label store.

The file is checked whole before anything is written (the same checks as POST /feedback: ids,
the two target values, observation times within the retention), then written in one transaction:
a bad file leaves the store as it was. Column names come from params labels.*.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipeline.core.predlog.labels import (
    FUTURE_SKEW_SECONDS,
    LabelRecord,
    LabelWrite,
    id_problem,
    import_source,
    parse_time,
    raw_text,
)

if TYPE_CHECKING:
    from pipeline.core.config import Params

EXAMPLES = 5
ERR_NO_ROWS = "{path}: no rows: nothing to import"
ERR_MISSING = "{path}: missing column(s) {missing} (params {keys}); the file has {found}"
ERR_NULLS = "{path}: column {column!r}: {n} empty value(s), in row(s) {rows}"
ERR_IDS = "{path}: column {column!r}: {n} unusable association id(s): {examples}"
ERR_ID_TYPE = "{path}: column {column!r}: association ids must be text or whole numbers, not {dtype}"
ERR_TIME_TYPE = "{path}: column {column!r}: must hold ISO 8601 date-times or timestamps, not {dtype}"
ERR_TIMES = "{path}: column {column!r}: {n} value(s) {why}, e.g. {examples}"


class LabelImportError(ValueError):
    """The labels file cannot be imported; the message names the file and the column."""


@dataclass(frozen=True)
class ImportSummary:
    path: Path
    url: str
    duplicates: str
    outcome: LabelWrite


def _examples(values: Sequence[Any], *, quote: bool = True) -> str:
    shown = [v.item() if hasattr(v, "item") else v for v in list(values)[:EXAMPLES]]
    text = ", ".join(repr(v) if quote else str(v) for v in shown)
    return text + (f" (and {len(values) - EXAMPLES} more)" if len(values) > EXAMPLES else "")


def _no_nulls(values: pd.Series, *, path: Path) -> None:
    empty = values.isna().to_numpy()
    if empty.any():
        # Row numbers as a person counts them: the first data row is 1.
        rows = [i + 1 for i in range(len(values)) if empty[i]]
        shown = _examples(rows, quote=False)
        raise LabelImportError(ERR_NULLS.format(path=path, column=values.name, n=len(rows), rows=shown))


def _ids(frame: pd.DataFrame, *, path: Path, column: str, max_chars: int) -> list[str]:
    values = frame[column]
    if path.suffix.lower() == ".csv":
        # A CSV reader guesses numbers and nulls: "007" would become 7 and an id "NA" a null,
        # and neither would match the logged id any more. Ids are read again as the exact text.
        values = pd.read_csv(path, usecols=[column], dtype=str, keep_default_na=False)[column]
    _no_nulls(values, path=path)
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_float_dtype(values):
        raise LabelImportError(ERR_ID_TYPE.format(path=path, column=column, dtype=values.dtype))
    if pd.api.types.is_integer_dtype(values):
        values = values.astype(str)
    ids = values.tolist()
    bad = [f"{v!r} {why}" for v in ids if (why := id_problem(v, max_chars=max_chars)) is not None]
    if bad:
        shown = _examples(bad, quote=False)
        raise LabelImportError(ERR_IDS.format(path=path, column=column, n=len(bad), examples=shown))
    return ids


def _labels(frame: pd.DataFrame, *, path: Path, column: str, params: Params) -> tuple[list[int], list[str]]:
    from pipeline.core.schema import SchemaError, target_binary

    values = frame[column]
    _no_nulls(values, path=path)
    try:
        binary = target_binary(values, params.base)
    except SchemaError as exc:
        raise LabelImportError(f"{path}: {exc}") from exc
    raw = [raw_text(v.item() if hasattr(v, "item") else v) for v in values.tolist()]
    return [int(v) for v in binary.tolist()], raw


def _observed(frame: pd.DataFrame, *, path: Path, params: Params, now: float) -> list[float]:
    """Epoch seconds per row; an empty cell (or no column) is the import's own time."""
    column = params.labels.observed_at_column
    if column is None:
        return [now] * len(frame)
    values = frame[column]
    if pd.api.types.is_datetime64_any_dtype(values):
        # A timestamp without a zone is UTC, as in POST /feedback.
        stamps = pd.to_datetime(values, utc=True)
        seconds = ((stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).tolist()
    elif pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise LabelImportError(ERR_TIME_TYPE.format(path=path, column=column, dtype=values.dtype))
    else:
        seconds, unreadable = [], []
        for value in values.tolist():
            if value is None or (isinstance(value, float) and pd.isna(value)):
                seconds.append(float("nan"))
                continue
            try:
                seconds.append(parse_time(value))
            except ValueError:
                unreadable.append(value)
        if unreadable:
            why = "are not ISO 8601 date-times (such as 2026-05-01T12:00:00Z)"
            raise LabelImportError(
                ERR_TIMES.format(path=path, column=column, n=len(unreadable), why=why, examples=_examples(unreadable))
            )
    seconds = [now if pd.isna(s) else float(s) for s in seconds]
    _within_retention(seconds, path=path, column=column, now=now, retention_days=params.serve.log.retention_days)
    return seconds


def _within_retention(seconds: list[float], *, path: Path, column: str, now: float, retention_days: int) -> None:
    from pipeline.core.predlog import cutoff, iso

    floor = cutoff(retention_days=retention_days, now=now)
    for why, bad in (
        ("are in the future", [s for s in seconds if s > now + FUTURE_SKEW_SECONDS]),
        (
            f"are older than the log keeps data (params serve.log.retention_days = {retention_days})",
            [s for s in seconds if s < floor],
        ),
    ):
        if bad:
            shown = _examples([iso(s) for s in bad])
            raise LabelImportError(ERR_TIMES.format(path=path, column=column, n=len(bad), why=why, examples=shown))


def read_label_file(path: Path, *, params: Params, now: float) -> list[LabelRecord]:
    """Every row as a label, or LabelImportError / DataFileError naming the file and column."""
    from pipeline.core import io

    path = Path(path)
    frame = io.read_table(path)
    cfg = params.labels
    keys = {"labels.id_column": cfg.id_column, "labels.label_column": cfg.label_column}
    if cfg.observed_at_column is not None:
        keys["labels.observed_at_column"] = cfg.observed_at_column
    missing = {key: column for key, column in keys.items() if column not in frame.columns}
    if missing:
        raise LabelImportError(
            ERR_MISSING.format(
                path=path,
                missing=list(missing.values()),
                keys=", ".join(missing),
                found=[str(c) for c in frame.columns[:20]],
            )
        )
    if frame.empty:
        raise LabelImportError(ERR_NO_ROWS.format(path=path))
    ids = _ids(frame, path=path, column=cfg.id_column, max_chars=params.serve.max_association_id_chars)
    labels, raw = _labels(frame, path=path, column=cfg.label_column, params=params)
    observed = _observed(frame, path=path, params=params, now=now)
    source = import_source(path.name)
    return [
        LabelRecord(association_id=i, label=label, raw_label=r, observed_at=o, source=source)
        for i, label, r, o in zip(ids, labels, raw, observed, strict=True)
    ]


def import_labels(path: Path, *, params: Params, url: str, now: float | None = None) -> ImportSummary:
    """Check the whole file, then store it in one transaction (nothing is written on bad input)."""
    from pipeline.core import predlog

    moment = time.time() if now is None else now
    records = read_label_file(path, params=params, now=moment)
    duplicates = params.labels.duplicates
    outcome = predlog.write_labels(url=url, records=records, duplicates=duplicates, now=moment)
    return ImportSummary(path=Path(path), url=url, duplicates=duplicates, outcome=outcome)


def summary_line(summary: ImportSummary) -> str:
    from pipeline.core.redact import redact

    o = summary.outcome
    return (
        f"{summary.path.name}: {o.rows} rows, {o.inserted} inserted, {o.unchanged} already stored, "
        f"{len(o.refused)} refused duplicates (labels.duplicates: {summary.duplicates}); "
        f"{len(o.matched)} ids matched a logged prediction, {len(o.unmatched)} unmatched (kept) "
        f"in {redact(summary.url)}"
    )


def refused_line(summary: ImportSummary) -> str | None:
    """The refused labels, by id, with what the store holds instead; None when none was refused."""
    refused = summary.outcome.refused
    if not refused:
        return None
    shown = [f"{r.association_id} (sent {r.label}, stored {r.stored_label} from {r.stored_source})" for r in refused]
    return f"refused {len(refused)} label(s) for ids already labelled: {_examples(shown, quote=False)}"
