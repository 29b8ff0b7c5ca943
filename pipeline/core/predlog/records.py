"""What one row of the prediction log is, and what every store shares: the table's columns, the
window filter and the frame a read returns.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

LOG_URL_ENV = "PREDICTION_LOG_URL"
TABLE = "predictions"
# Labels arriving later, keyed by association id (labels.py): personal data too, pruned by their
# own times. Tables made by hand before the store had one are pruned by their ts, else with the
# predictions they label.
LABELS_TABLE = "labels"
# What the last prune recorded, so every reader clamps its window even without params at hand.
RETENTION_TABLE = "prediction_log_retention"
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
# DOUBLE PRECISION is valid in both SQLite (REAL affinity) and PostgreSQL.
RETENTION_DDL = (
    f"CREATE TABLE IF NOT EXISTS {RETENTION_TABLE} (retention_days INTEGER NOT NULL, "
    "cutoff DOUBLE PRECISION NOT NULL, pruned_at DOUBLE PRECISION NOT NULL)"
)

ERR_ROLE = "role must be one of {roles}, not {role!r}"
NOTE_LABELS_KEPT = f"table {LABELS_TABLE!r} has neither a ts nor an association_id column: its rows were not pruned"


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
        raise PredictionLogError(ERR_ROLE.format(roles=ROLES, role=role))
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


class Store(Protocol):
    """What the background writer needs from a store."""

    def write(self, rows: Sequence[LogRecord]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class PruneCounts:
    """Rows a prune deleted (or, dry, would delete); `note` says what it could not prune."""

    predictions: int
    labels: int
    note: str | None = None


def where(env: str | None, start: float | None, end: float | None, mark: str) -> tuple[str, list[Any]]:
    clauses, args = [], []
    for clause, value in (("env = {m}", env), ("ts >= {m}", start), ("ts < {m}", end)):
        if value is not None:
            clauses.append(clause.format(m=mark))
            args.append(value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def frame(rows: Iterable[Sequence[Any]], extra: Sequence[str] = ()) -> pd.DataFrame:
    """Rows of COLUMNS (then `extra`, typed by the caller) as a frame, oldest first."""
    out = pd.DataFrame(list(rows), columns=[*COLUMNS, *extra])
    out["score"] = pd.to_numeric(out["score"], errors="coerce").astype("float64")
    out["latency_ms"] = out["latency_ms"].astype("float64")
    out["fallback"] = out["fallback"].astype(bool)
    out["ts"] = out["ts"].astype("float64")
    out["timestamp"] = pd.to_datetime(out["ts"], unit="s", utc=True)
    return out.sort_values("ts", kind="stable").reset_index(drop=True)


def select_sql(where_sql: str) -> str:
    return f"SELECT {', '.join(COLUMNS)} FROM {TABLE}{where_sql}"


def recorded_retention(cur: Any, *, columns: set[str]) -> int | None:
    """The retention the last prune recorded in this store (`columns`: the retention table's)."""
    if "retention_days" not in columns:
        return None
    cur.execute(f"SELECT MIN(retention_days) FROM {RETENTION_TABLE}")
    row = cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


def prune_rows(
    cur: Any,
    *,
    mark: str,
    label_columns: set[str],
    cutoff: float,
    retention_days: int,
    now: float,
    dry_run: bool,
) -> PruneCounts:
    """Delete (or count, dry) the rows older than `cutoff` on a DB-API cursor inside one transaction.

    Labels go first: when they are matched by association id, the predictions must still be there.
    """
    note = None
    labels_where: str | None = None
    labels_args = [cutoff]
    if {"observed_at", "received_at"} <= label_columns:
        # The label store's own table: a label goes once either time is past the retention.
        labels_where = f"observed_at < {mark} OR received_at < {mark}"
        labels_args = [cutoff, cutoff]
    elif "ts" in label_columns:
        labels_where = f"ts < {mark}"
    elif "association_id" in label_columns:
        labels_where = f"association_id IN (SELECT association_id FROM {TABLE} WHERE ts < {mark})"
    elif label_columns:
        note = NOTE_LABELS_KEPT
    labels = 0
    if labels_where is not None:
        labels = _delete(cur, table=LABELS_TABLE, where_sql=labels_where, args=labels_args, dry_run=dry_run)
    predictions = _delete(cur, table=TABLE, where_sql=f"ts < {mark}", args=[cutoff], dry_run=dry_run)
    if not dry_run:
        cur.execute(RETENTION_DDL)
        cur.execute(f"DELETE FROM {RETENTION_TABLE}")
        cur.execute(
            f"INSERT INTO {RETENTION_TABLE} (retention_days, cutoff, pruned_at) VALUES ({mark}, {mark}, {mark})",
            [retention_days, cutoff, now],
        )
    return PruneCounts(predictions=predictions, labels=labels, note=note)


def _delete(cur: Any, *, table: str, where_sql: str, args: list[Any], dry_run: bool) -> int:
    if dry_run:
        cur.execute(f"SELECT COUNT(*) FROM {table} WHERE {where_sql}", args)
        return int(cur.fetchone()[0])
    cur.execute(f"DELETE FROM {table} WHERE {where_sql}", args)
    return int(cur.rowcount)
