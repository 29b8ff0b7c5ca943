"""The prediction log: one row per scored request and model (association id, time, env, model
version, role, inputs, score, flags), label-free. SQLite by default, PostgreSQL for teams.

Rows are written off the request path: the service puts them on a bounded queue and a
background thread flushes them in batches. A full queue drops rows (counted) instead of
slowing a request: the log serves monitoring, the answer serves the caller.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

logger = logging.getLogger(__name__)

LOG_URL_ENV = "PREDICTION_LOG_URL"
TABLE = "predictions"
ROLES = ("champion", "challenger", "shadow")
COLUMNS = (
    "association_id",
    "ts",
    "env",
    "model_name",
    "model_version",
    "role",
    "inputs",
    "score",
    "latency_ms",
    "flags",
    "fallback",
    "error",
)
_POSTGRES_PREFIXES = ("postgresql://", "postgres://", "postgresql+psycopg2://")


class PredictionLogError(ValueError):
    """The prediction log cannot be opened, written or read."""


@dataclass(frozen=True)
class LogRecord:
    """One prediction by one model. `error` is set (and score None) when scoring failed."""

    association_id: str
    ts: float
    env: str
    model_name: str
    model_version: str
    role: str
    inputs: str
    score: float | None
    latency_ms: float
    flags: str = "[]"
    fallback: bool = False
    error: str | None = None


def record(
    *,
    association_id: str,
    env: str,
    model_name: str,
    model_version: str,
    role: str,
    inputs: dict[str, Any],
    score: float | None,
    latency_ms: float,
    flags: Sequence[str] = (),
    fallback: bool = False,
    error: str | None = None,
    ts: float | None = None,
) -> LogRecord:
    if role not in ROLES:
        raise PredictionLogError(f"role must be one of {ROLES}, not {role!r}")
    return LogRecord(
        association_id=association_id,
        ts=time.time() if ts is None else ts,
        env=env,
        model_name=model_name,
        model_version=str(model_version),
        role=role,
        inputs=json.dumps(inputs, sort_keys=True, separators=(",", ":")),
        score=score,
        latency_ms=latency_ms,
        flags=json.dumps(list(flags)),
        fallback=fallback,
        error=error,
    )


# --------------------------------------------------------------------------- stores


class Store(Protocol):
    def write(self, rows: Sequence[LogRecord]) -> None: ...

    def read(self, *, env: str | None, start: float | None, end: float | None) -> pd.DataFrame: ...

    def close(self) -> None: ...


def resolve_url(*, configured: Path | str, override: str | None = None) -> str:
    """The log's location: an explicit override, then PREDICTION_LOG_URL, then params' path."""
    return override or os.environ.get(LOG_URL_ENV) or str(configured)


def _where(env: str | None, start: float | None, end: float | None, mark: str) -> tuple[str, list[Any]]:
    clauses, args = [], []
    for clause, value in (("env = {m}", env), ("ts >= {m}", start), ("ts < {m}", end)):
        if value is not None:
            clauses.append(clause.format(m=mark))
            args.append(value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _frame(rows: Iterable[Sequence[Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=list(COLUMNS))
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce").astype("float64")
    frame["latency_ms"] = frame["latency_ms"].astype("float64")
    frame["fallback"] = frame["fallback"].astype(bool)
    frame["ts"] = frame["ts"].astype("float64")
    frame["timestamp"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


class SqliteStore:
    _DDL = (
        f"CREATE TABLE IF NOT EXISTS {TABLE} (association_id TEXT NOT NULL, ts REAL NOT NULL, env TEXT NOT NULL, "
        "model_name TEXT NOT NULL, model_version TEXT NOT NULL, role TEXT NOT NULL, inputs TEXT NOT NULL, "
        "score REAL, latency_ms REAL NOT NULL, flags TEXT NOT NULL, fallback INTEGER NOT NULL, error TEXT)",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_env_ts ON {TABLE} (env, ts)",
    )

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection per thread: sqlite3 objects must not cross threads.
        self._local = threading.local()
        with self._conn() as conn:
            for statement in self._DDL:
                conn.execute(statement)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30)
                # WAL lets the canary and drift readers run while the service writes.
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.Error as exc:
                raise PredictionLogError(f"{self.path}: cannot open the prediction log: {exc}") from exc
            self._local.conn = conn
        return conn

    def write(self, rows: Sequence[LogRecord]) -> None:
        marks = ", ".join("?" * len(COLUMNS))
        with self._conn() as conn:
            conn.executemany(f"INSERT INTO {TABLE} VALUES ({marks})", [astuple(r) for r in rows])

    def read(self, *, env: str | None, start: float | None, end: float | None) -> pd.DataFrame:
        where, args = _where(env, start, end, "?")
        try:
            cursor = self._conn().execute(f"SELECT {', '.join(COLUMNS)} FROM {TABLE}{where}", args)
        except sqlite3.Error as exc:
            raise PredictionLogError(f"{self.path}: cannot read the prediction log: {exc}") from exc
        return _frame(cursor.fetchall())

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class PostgresStore:
    _DDL = (
        f"CREATE TABLE IF NOT EXISTS {TABLE} (association_id TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, "
        "env TEXT NOT NULL, model_name TEXT NOT NULL, model_version TEXT NOT NULL, role TEXT NOT NULL, "
        "inputs TEXT NOT NULL, score DOUBLE PRECISION, latency_ms DOUBLE PRECISION NOT NULL, flags TEXT NOT NULL, "
        "fallback BOOLEAN NOT NULL, error TEXT)",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_env_ts ON {TABLE} (env, ts)",
    )

    def __init__(self, url: str) -> None:
        # SQLAlchemy-style URLs name the driver; libpq does not understand that part.
        self.url = url.replace("postgresql+psycopg2://", "postgresql://", 1)
        import psycopg2

        self._local = threading.local()
        conn = self._conn()
        try:
            with conn, conn.cursor() as cur:
                for statement in self._DDL:
                    cur.execute(statement)
        except psycopg2.errors.UniqueViolation:
            # IF NOT EXISTS is not atomic in PostgreSQL: another process created the table meanwhile.
            pass
        except psycopg2.Error as exc:
            raise PredictionLogError(f"cannot create the prediction log table: {exc}") from exc
        finally:
            # The opening thread may never use the store again (the service writes from its own
            # thread): an idle connection held for the process's life would count against the server.
            self.close()

    def _conn(self) -> Any:
        import psycopg2

        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            try:
                conn = psycopg2.connect(self.url, connect_timeout=10)
            except psycopg2.Error as exc:
                raise PredictionLogError(f"cannot connect to the prediction log database: {exc}") from exc
            self._local.conn = conn
        return conn

    def write(self, rows: Sequence[LogRecord]) -> None:
        from psycopg2.extras import execute_values

        conn = self._conn()
        with conn, conn.cursor() as cur:
            execute_values(cur, f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES %s", [astuple(r) for r in rows])

    def read(self, *, env: str | None, start: float | None, end: float | None) -> pd.DataFrame:
        import psycopg2

        where, args = _where(env, start, end, "%s")
        conn = self._conn()
        try:
            with conn, conn.cursor() as cur:
                cur.execute(f"SELECT {', '.join(COLUMNS)} FROM {TABLE}{where}", args)
                rows = cur.fetchall()
        except psycopg2.Error as exc:
            raise PredictionLogError(f"cannot read the prediction log: {exc}") from exc
        return _frame(rows)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def open_store(url: str) -> Store:
    """`postgresql://...` opens PostgreSQL; `sqlite:///path` or a plain path opens SQLite."""
    if url.startswith(_POSTGRES_PREFIXES):
        return PostgresStore(url)
    if "://" in url and not url.startswith("sqlite:///"):
        raise PredictionLogError(
            f"unsupported prediction log URL {url!r}: use a file path, sqlite:/// or postgresql://"
        )
    return SqliteStore(Path(url.removeprefix("sqlite:///")))


def read_log(*, url: str, env: str | None = None, start: float | None = None, end: float | None = None) -> pd.DataFrame:
    """Rows in [start, end) (epoch seconds) as a DataFrame, oldest first; `timestamp` is UTC."""
    if not url.startswith(_POSTGRES_PREFIXES) and not Path(url.removeprefix("sqlite:///")).is_file():
        raise PredictionLogError(f"{url}: prediction log not found; has the service run with this log?")
    store = open_store(url)
    try:
        return store.read(env=env, start=start, end=end)
    finally:
        store.close()


# --------------------------------------------------------------------------- background writer


@dataclass
class WriterStats:
    written: int = 0
    dropped: int = 0
    failed_batches: int = 0
    last_error: str | None = field(default=None)


class LogWriter:
    """A bounded queue drained by one thread every `flush_seconds`, in transactions of up to
    `flush_rows`. `submit` never blocks; `close` flushes what is queued.
    """

    def __init__(self, *, store: Store, flush_rows: int, flush_seconds: float, queue_rows: int) -> None:
        self.store = store
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.stats = WriterStats()
        self._queue: queue.Queue[LogRecord] = queue.Queue(maxsize=queue_rows)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def submit(self, rows: Iterable[LogRecord]) -> None:
        for row in rows:
            try:
                self._queue.put_nowait(row)
            except queue.Full:
                self.stats.dropped += 1

    def pending(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        # Sleep, then drain: waiting on the queue itself would wake this thread (and take the GIL
        # from the event loop) once per request.
        stopping = False
        while not stopping:
            stopping = self._stop.wait(self.flush_seconds)
            while True:
                batch: list[LogRecord] = []
                while len(batch) < self.flush_rows:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if batch:
                    self._flush(batch)
                if len(batch) < self.flush_rows:
                    break
        self.store.close()

    def _flush(self, batch: list[LogRecord]) -> None:
        try:
            self.store.write(batch)
            self.stats.written += len(batch)
        except Exception as exc:  # a database outage must not kill the writer thread
            self.stats.failed_batches += 1
            self.stats.dropped += len(batch)
            self.stats.last_error = str(exc)
            logger.warning("prediction log: %d rows not written: %s", len(batch), exc)

    def close(self, *, timeout: float = 30.0) -> None:
        """Write everything queued, then stop the thread."""
        if not self._thread.is_alive():
            return
        self._stop.set()
        self._thread.join(timeout)
