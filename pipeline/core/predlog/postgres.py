"""The team store: a PostgreSQL table, one connection per thread, opened on first use."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import astuple
from typing import Any

import pandas as pd

from pipeline.core.predlog.labels import LabelRecord, LabelWrite
from pipeline.core.predlog.labels_sql import (
    INSERT_SQL,
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
from pipeline.core.redact import redact

ERR_CREATE = "cannot create the prediction log table: {exc}"
ERR_CONNECT = "cannot connect to the prediction log database: {exc}"
ERR_READ = "cannot read the prediction log: {exc}"
ERR_PRUNE = "cannot prune the prediction log: {exc}"
ERR_LABELS = "cannot write labels to the prediction log: {exc}"
CONNECT_TIMEOUT_SECONDS = 10
_DDL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (association_id TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, "
    "env TEXT NOT NULL, model_name TEXT NOT NULL, model_version TEXT NOT NULL, role TEXT NOT NULL, "
    "inputs TEXT NOT NULL, score DOUBLE PRECISION, latency_ms DOUBLE PRECISION NOT NULL, flags TEXT NOT NULL, "
    "fallback BOOLEAN NOT NULL, error TEXT)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_env_ts ON {TABLE} (env, ts)",
    *LABELS_DDL,
)
_COLUMNS_SQL = (
    "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = %s"
)


def _error(template: str, exc: Exception) -> PredictionLogError:
    # libpq quotes the connection string in some errors (its password must not reach a log)
    # and adds hint lines: the operator gets one line.
    return PredictionLogError(template.format(exc=" ".join(redact(str(exc)).split())))


class PostgresStore:
    def __init__(self, url: str) -> None:
        # SQLAlchemy-style URLs name the driver; libpq does not understand that part.
        self.url = url.replace("postgresql+psycopg2://", "postgresql://", 1)
        import psycopg2

        self._local = threading.local()
        conn = self._conn()
        try:
            with conn, conn.cursor() as cur:
                for statement in _DDL:
                    cur.execute(statement)
        except psycopg2.errors.UniqueViolation:
            # IF NOT EXISTS is not atomic in PostgreSQL: another process created the table meanwhile.
            pass
        except psycopg2.Error as exc:
            raise _error(ERR_CREATE, exc) from exc
        finally:
            # The opening thread may never use the store again (the service writes from its own
            # thread): an idle connection held for the process's life would count against the server.
            self.close()

    def _conn(self) -> Any:
        import psycopg2

        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            try:
                conn = psycopg2.connect(self.url, connect_timeout=CONNECT_TIMEOUT_SECONDS)
            except psycopg2.Error as exc:
                raise _error(ERR_CONNECT, exc) from exc
            self._local.conn = conn
        return conn

    def write(self, rows: Sequence[LogRecord]) -> None:
        from psycopg2.extras import execute_values

        conn = self._conn()
        with conn, conn.cursor() as cur:
            execute_values(cur, f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES %s", [astuple(r) for r in rows])

    def read(self, *, env: str | None, start: float | None, end: float | None) -> pd.DataFrame:
        import psycopg2

        where_sql, args = where(env, start, end, "%s")
        conn = self._conn()
        try:
            with conn, conn.cursor() as cur:
                cur.execute(select_sql(where_sql), args)
                rows = cur.fetchall()
        except psycopg2.Error as exc:
            raise _error(ERR_READ, exc) from exc
        return frame(rows)

    def _columns(self, cur: Any, table: str) -> set[str]:
        cur.execute(_COLUMNS_SQL, (table,))
        return {row[0] for row in cur.fetchall()}

    def write_labels(self, records: Sequence[LabelRecord], *, duplicates: str, received_at: float) -> LabelWrite:
        """All of `records` or none, in one transaction. The lock lets readers and the prediction
        writer go on but queues a second label writer, which must plan on what the first stored.
        """
        import psycopg2
        from psycopg2.extras import execute_values

        conn = self._conn()
        try:
            with conn, conn.cursor() as cur:
                check_columns(self._columns(cur, LABELS_TABLE))
                cur.execute(f"LOCK TABLE {LABELS_TABLE} IN SHARE ROW EXCLUSIVE MODE")
                inserts, outcome = plan_write(
                    cur, mark="%s", records=records, duplicates=duplicates, received_at=received_at
                )
                if inserts:
                    execute_values(cur, f"{INSERT_SQL}%s", inserts, page_size=1000)
        except psycopg2.Error as exc:
            raise _error(ERR_LABELS, exc) from exc
        return outcome

    def read_labelled(
        self, *, env: str | None, start: float | None, end: float | None, label_floor: float | None
    ) -> pd.DataFrame:
        import psycopg2

        sql, args = labelled_sql(mark="%s", env=env, start=start, end=end, label_floor=label_floor)
        conn = self._conn()
        try:
            with conn, conn.cursor() as cur:
                check_columns(self._columns(cur, LABELS_TABLE))
                cur.execute(sql, args)
                rows = cur.fetchall()
        except psycopg2.Error as exc:
            raise _error(ERR_READ, exc) from exc
        return labelled_frame(rows)

    def count_labels(self, *, since: float | None, label_floor: float | None) -> int:
        import psycopg2

        sql, args = count_sql(mark="%s", since=since, label_floor=label_floor)
        conn = self._conn()
        try:
            with conn, conn.cursor() as cur:
                check_columns(self._columns(cur, LABELS_TABLE))
                cur.execute(sql, args)
                return int(cur.fetchone()[0])
        except psycopg2.Error as exc:
            raise _error(ERR_READ, exc) from exc

    def recorded_retention(self) -> int | None:
        import psycopg2

        conn = self._conn()
        try:
            with conn, conn.cursor() as cur:
                cur.execute(_COLUMNS_SQL, (RETENTION_TABLE,))
                return recorded_retention(cur, columns={row[0] for row in cur.fetchall()})
        except psycopg2.Error as exc:
            raise _error(ERR_READ, exc) from exc

    def prune(self, *, cutoff: float, retention_days: int, now: float, dry_run: bool) -> PruneCounts:
        import psycopg2

        conn = self._conn()
        try:
            with conn, conn.cursor() as cur:
                label_columns = self._columns(cur, LABELS_TABLE)
                return prune_rows(
                    cur,
                    mark="%s",
                    label_columns=label_columns,
                    cutoff=cutoff,
                    retention_days=retention_days,
                    now=now,
                    dry_run=dry_run,
                )
        except psycopg2.Error as exc:
            raise _error(ERR_PRUNE, exc) from exc

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
