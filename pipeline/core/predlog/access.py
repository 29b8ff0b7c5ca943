"""Opening the log by URL, reading a window of it, and pruning it to its retention.

The log holds people's raw inputs, so no reader sees past the retention: a read's window is
clamped to now - retention, using the retention the caller passes and the one the last prune
recorded in the store (the stricter wins), so a reader without params at hand is clamped too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from pipeline.core.predlog.labels import LabelRecord, LabelWrite
from pipeline.core.predlog.postgres import PostgresStore
from pipeline.core.predlog.records import LOG_URL_ENV, PredictionLogError
from pipeline.core.predlog.sqlite import SqliteStore
from pipeline.core.redact import redact

LogStore = SqliteStore | PostgresStore
DAY_SECONDS = 86_400
_POSTGRES_PREFIXES = ("postgresql://", "postgres://", "postgresql+psycopg2://")
ERR_UNSUPPORTED = "unsupported prediction log URL {url!r}: use a file path, sqlite:/// or postgresql://"
ERR_NOT_FOUND = "{url}: prediction log not found; has the service run with this log?"
ERR_RETENTION = "retention must be a whole number of days of at least 1, not {days!r}"


def resolve_url(*, configured: Path | str, override: str | None = None) -> str:
    """The log's location: an explicit override, then PREDICTION_LOG_URL, then params' path."""
    return override or os.environ.get(LOG_URL_ENV) or str(configured)


def _is_postgres(url: str) -> bool:
    return url.startswith(_POSTGRES_PREFIXES)


def _sqlite_path(url: str) -> Path:
    if "://" in url and not url.startswith("sqlite:///"):
        # The URL comes from a secret (PREDICTION_LOG_URL) and may carry the database password.
        raise PredictionLogError(ERR_UNSUPPORTED.format(url=redact(url)))
    return Path(url.removeprefix("sqlite:///"))


def open_store(url: str) -> LogStore:
    """`postgresql://...` opens PostgreSQL; `sqlite:///path` or a plain path opens SQLite."""
    if _is_postgres(url):
        return PostgresStore(url)
    return SqliteStore(_sqlite_path(url))


def _open_existing(url: str) -> LogStore:
    # Reading or pruning a log that is not there must not leave an empty one behind.
    if not _is_postgres(url) and not _sqlite_path(url).is_file():
        raise PredictionLogError(ERR_NOT_FOUND.format(url=redact(url)))
    return open_store(url)


def cutoff(*, retention_days: int, now: float) -> float:
    """Epoch seconds before which a row is older than the retention."""
    if isinstance(retention_days, bool) or not isinstance(retention_days, int) or retention_days < 1:
        raise PredictionLogError(ERR_RETENTION.format(days=retention_days))
    return now - retention_days * DAY_SECONDS


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def read_log(
    *,
    url: str,
    env: str | None = None,
    start: float | None = None,
    end: float | None = None,
    retention_days: int | None = None,
    now: float | None = None,
) -> pd.DataFrame:
    """Rows in [start, end) (epoch seconds) as a DataFrame, oldest first; `timestamp` is UTC.

    `start` is raised to now - retention (`retention_days`, or what the last prune recorded,
    whichever is stricter), so a window never reaches rows that should already be gone.
    """
    store = _open_existing(url)
    try:
        floor = _floor(store, retention_days, now)
        if floor is not None:
            start = floor if start is None else max(start, floor)
        return store.read(env=env, start=start, end=end)
    finally:
        store.close()


def _floor(store: LogStore, retention_days: int | None, now: float | None) -> float | None:
    """The time before which nothing is read: the stricter of the caller's and the store's retention."""
    known = [days for days in (retention_days, store.recorded_retention()) if days is not None]
    if not known:
        return None
    return cutoff(retention_days=min(known), now=time.time() if now is None else now)


def _seconds(moment: float | datetime | None) -> float | None:
    return moment.timestamp() if isinstance(moment, datetime) else moment


def labelled_predictions(
    store: LogStore | str,
    since: float | datetime | None = None,
    until: float | datetime | None = None,
    environment: str | None = None,
    *,
    retention_days: int | None = None,
    now: float | None = None,
) -> pd.DataFrame:
    """Logged predictions in [since, until) that carry a label, each with its id's newest label
    (`label` 0/1, `raw_label`, `observed_at`, `label_source`, `received_at`, `label_version`).

    `store` is an open store or a log URL. Clamped like `read_log`: neither a prediction nor a
    label older than the retention is read (a newer label version past it falls back to the
    newest one within it). Every model's row of a request (champion, challenger, shadow) is kept.
    """
    opened = _open_existing(store) if isinstance(store, str) else store
    try:
        floor = _floor(opened, retention_days, now)
        start = _seconds(since)
        if floor is not None:
            start = floor if start is None else max(start, floor)
        return opened.read_labelled(env=environment, start=start, end=_seconds(until), label_floor=floor)
    finally:
        if isinstance(store, str):
            opened.close()


def label_count(
    store: LogStore | str,
    since: float | datetime | None = None,
    *,
    retention_days: int | None = None,
    now: float | None = None,
) -> int:
    """How many ids hold a label received since `since`, whether or not a logged prediction
    carries the id; clamped to the retention like `labelled_predictions`.
    """
    opened = _open_existing(store) if isinstance(store, str) else store
    try:
        return opened.count_labels(since=_seconds(since), label_floor=_floor(opened, retention_days, now))
    finally:
        if isinstance(store, str):
            opened.close()


def write_labels(*, url: str, records: Sequence[LabelRecord], duplicates: str, now: float | None = None) -> LabelWrite:
    """Store `records` (all or none) in the log at `url`, which must exist already."""
    store = _open_existing(url)
    try:
        return store.write_labels(records, duplicates=duplicates, received_at=time.time() if now is None else now)
    finally:
        store.close()


@dataclass(frozen=True)
class PruneResult:
    """What `prune` removed (or, dry, would remove): rows older than `cutoff` (epoch seconds)."""

    cutoff: float
    retention_days: int
    predictions: int
    labels: int
    dry_run: bool
    note: str | None = None


def prune(*, url: str, retention_days: int, dry_run: bool = False, now: float | None = None) -> PruneResult:
    """Delete the predictions older than now - retention_days, and the labels observed or received
    before then; dry: only count them.

    A real prune also records the retention in the store, which every later read clamps to.
    """
    moment = time.time() if now is None else now
    limit = cutoff(retention_days=retention_days, now=moment)
    store = _open_existing(url)
    try:
        counts = store.prune(cutoff=limit, retention_days=retention_days, now=moment, dry_run=dry_run)
    finally:
        store.close()
    return PruneResult(
        cutoff=limit,
        retention_days=retention_days,
        predictions=counts.predictions,
        labels=counts.labels,
        dry_run=dry_run,
        note=counts.note,
    )
