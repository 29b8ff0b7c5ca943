"""The embedded store: one SQLite file in WAL mode, one connection per thread.

A file deleted or replaced under a running service would swallow every later row: the open
connection keeps writing into the unlinked inode. Each write batch therefore first compares the
file on disk with the one this thread opened, and reopens (recreating the table) when they differ.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import astuple
from pathlib import Path

import pandas as pd

from pipeline.core.predlog.labels import LabelRecord, LabelWrite
from pipeline.core.predlog.labels_sql import (
    INSERT_SQL,
    LABEL_COLUMNS,
    LABELS_DDL,
    check_columns,
    count_sql,
    labelled_frame,
    labelled_sql,
    plan_write,
)
from pipeline.core.predlog.records import (
    COLUMNS,
    LABELS_TABLE,
    RETENTION_TABLE,
    TABLE,
    LogRecord,
    PredictionLogError,
    PruneCounts,
    frame,
    prune_rows,
    recorded_retention,
    select_sql,
    where,
)

logger = logging.getLogger(__name__)

ERR_OPEN = "{path}: cannot open the prediction log: {exc}"
ERR_READ = "{path}: cannot read the prediction log: {exc}"
ERR_WRITE = "{path}: cannot write the prediction log: {exc}"
ERR_LOCKED = "{path}: the prediction log is locked by another process (waited {seconds:g} s): {exc}"
ERR_PRUNE = "{path}: cannot prune the prediction log: {exc}"
ERR_LABELS = "{path}: cannot write labels to the prediction log: {exc}"
WARN_REOPENED = (
    "prediction log %s was %s while the service ran: reopened it with a new, empty table; "
    "rows written since the previous batch went to the old file"
)
BUSY_TIMEOUT_SECONDS = 30.0
_DDL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (association_id TEXT NOT NULL, ts REAL NOT NULL, env TEXT NOT NULL, "
    "model_name TEXT NOT NULL, model_version TEXT NOT NULL, role TEXT NOT NULL, inputs TEXT NOT NULL, "
    "score REAL, latency_ms REAL NOT NULL, flags TEXT NOT NULL, fallback INTEGER NOT NULL, error TEXT)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_env_ts ON {TABLE} (env, ts)",
    *LABELS_DDL,
)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        # Times a deleted or replaced file was reopened, by any thread.
        self.reopens = 0
        self._reopen_lock = threading.Lock()
        # sqlite3 objects must not cross threads; each thread also remembers which file it opened.
        self._local = threading.local()
        self._conn()

    def _fail(self, template: str, exc: Exception) -> PredictionLogError:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            template = ERR_LOCKED
        return PredictionLogError(template.format(path=self.path, exc=exc, seconds=BUSY_TIMEOUT_SECONDS))

    def _open(self) -> sqlite3.Connection:
        conn = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS)
            # WAL lets the canary and drift readers run while the service writes.
            conn.execute("PRAGMA journal_mode=WAL")
            with conn:
                for statement in _DDL:
                    conn.execute(statement)
            identity = _identity(self.path)
        except (sqlite3.Error, OSError) as exc:
            if conn is not None:
                conn.close()
            raise self._fail(ERR_OPEN, exc) from exc
        self._local.conn, self._local.identity = conn, identity
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        return self._open() if conn is None else conn

    def _current_conn(self) -> sqlite3.Connection:
        """This thread's connection, reopened first when the file is no longer the one it opened."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            return self._open()
        on_disk = _identity(self.path)
        if on_disk == self._local.identity:
            return conn
        # Counted before reopening: if the reopen fails, the batch is dropped (and counted) and
        # the next batch opens the file afresh, so this is the only moment the loss is visible.
        with self._reopen_lock:
            self.reopens += 1
        logger.warning(WARN_REOPENED, self.path, "deleted" if on_disk is None else "replaced")
        self.close()
        return self._open()

    def write(self, rows: Sequence[LogRecord]) -> None:
        marks = ", ".join("?" * len(COLUMNS))
        conn = self._current_conn()
        try:
            with conn:
                conn.executemany(f"INSERT INTO {TABLE} VALUES ({marks})", [astuple(r) for r in rows])
        except sqlite3.Error as exc:
            raise self._fail(ERR_WRITE, exc) from exc

    def read(self, *, env: str | None, start: float | None, end: float | None) -> pd.DataFrame:
        where_sql, args = where(env, start, end, "?")
        try:
            cursor = self._conn().execute(select_sql(where_sql), args)
            return frame(cursor.fetchall())
        except sqlite3.Error as exc:
            raise self._fail(ERR_READ, exc) from exc

    def write_labels(self, records: Sequence[LabelRecord], *, duplicates: str, received_at: float) -> LabelWrite:
        """All of `records` or none, in one transaction that holds the write lock from the start:
        two writers never plan against the same stored labels.
        """
        conn = self._current_conn()
        try:
            check_columns(self._columns(LABELS_TABLE))
            conn.execute("BEGIN IMMEDIATE")
            try:
                inserts, outcome = plan_write(
                    conn.cursor(), mark="?", records=records, duplicates=duplicates, received_at=received_at
                )
                marks = ", ".join("?" * len(LABEL_COLUMNS))
                conn.executemany(f"{INSERT_SQL}({marks})", inserts)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
        except sqlite3.Error as exc:
            raise self._fail(ERR_LABELS, exc) from exc
        return outcome

    def read_labelled(
        self, *, env: str | None, start: float | None, end: float | None, label_floor: float | None
    ) -> pd.DataFrame:
        sql, args = labelled_sql(mark="?", env=env, start=start, end=end, label_floor=label_floor)
        try:
            check_columns(self._columns(LABELS_TABLE))
            return labelled_frame(self._conn().execute(sql, args).fetchall())
        except sqlite3.Error as exc:
            raise self._fail(ERR_READ, exc) from exc

    def count_labels(self, *, since: float | None, label_floor: float | None) -> int:
        sql, args = count_sql(mark="?", since=since, label_floor=label_floor)
        try:
            check_columns(self._columns(LABELS_TABLE))
            return int(self._conn().execute(sql, args).fetchone()[0])
        except sqlite3.Error as exc:
            raise self._fail(ERR_READ, exc) from exc

    def _columns(self, table: str) -> set[str]:
        return {row[0] for row in self._conn().execute("SELECT name FROM pragma_table_info(?)", (table,))}

    def recorded_retention(self) -> int | None:
        try:
            cur = self._conn().cursor()
            return recorded_retention(cur, columns=self._columns(RETENTION_TABLE))
        except sqlite3.Error as exc:
            raise self._fail(ERR_READ, exc) from exc

    def prune(self, *, cutoff: float, retention_days: int, now: float, dry_run: bool) -> PruneCounts:
        conn = self._conn()
        try:
            label_columns = self._columns(LABELS_TABLE)
            # A plain DELETE leaves the rows' bytes in free pages and in the WAL: zero them, then
            # fold the WAL into the file and truncate it, so the deleted personal data is gone.
            conn.execute(f"PRAGMA secure_delete={'OFF' if dry_run else 'ON'}")
            with conn:
                counts = prune_rows(
                    conn.cursor(),
                    mark="?",
                    label_columns=label_columns,
                    cutoff=cutoff,
                    retention_days=retention_days,
                    now=now,
                    dry_run=dry_run,
                )
            if not dry_run:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise self._fail(ERR_PRUNE, exc) from exc
        return counts

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
