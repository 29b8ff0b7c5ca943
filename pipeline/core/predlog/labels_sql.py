"""The labels table in SQL both stores speak (SQLite and PostgreSQL, through a DB-API cursor and
the driver's parameter mark): its schema, the look-ups a write plans with, and the join readers use.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from pipeline.core.predlog.labels import LabelRecord, LabelWrite, Row, Stored, plan
from pipeline.core.predlog.records import COLUMNS, LABELS_TABLE, TABLE, PredictionLogError, frame

LABEL_COLUMNS = ("association_id", "version", "label", "raw_label", "observed_at", "source", "received_at")
# How the joined frame names them: `source` and `version` alone would read as the prediction's.
JOINED_LABEL_COLUMNS = ("label", "raw_label", "observed_at", "label_source", "received_at", "label_version")
LABELS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {LABELS_TABLE} (association_id TEXT NOT NULL, version INTEGER NOT NULL, "
    "label INTEGER NOT NULL CHECK (label IN (0, 1)), raw_label TEXT NOT NULL, "
    "observed_at DOUBLE PRECISION NOT NULL, source TEXT NOT NULL, received_at DOUBLE PRECISION NOT NULL, "
    "PRIMARY KEY (association_id, version))",
    # Matching labels to predictions looks predictions up by id; without it every write scans the log.
    f"CREATE INDEX IF NOT EXISTS {TABLE}_association_id ON {TABLE} (association_id)",
)
# Ids per IN (...) query: far below SQLite's oldest limit of 999 parameters.
CHUNK = 500
ERR_OLD_TABLE = (
    "table {table!r} in the prediction log has columns {found}, not the label store's {expected}: "
    "it predates the label store; rename it (ALTER TABLE {table} RENAME TO {table}_old) and retry"
)
INSERT_SQL = f"INSERT INTO {LABELS_TABLE} ({', '.join(LABEL_COLUMNS)}) VALUES "


def check_columns(columns: set[str]) -> None:
    """A labels table made by hand before the store had one cannot take labels: say so, by name."""
    if not set(LABEL_COLUMNS) <= columns:
        raise PredictionLogError(
            ERR_OLD_TABLE.format(table=LABELS_TABLE, found=sorted(columns), expected=list(LABEL_COLUMNS))
        )


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def _stored(cur: Any, mark: str, ids: Sequence[str]) -> dict[str, list[Stored]]:
    stored: dict[str, list[Stored]] = {}
    for chunk in _chunks(ids):
        marks = ", ".join([mark] * len(chunk))
        cur.execute(
            f"SELECT association_id, version, label, source FROM {LABELS_TABLE} WHERE association_id IN ({marks})",
            list(chunk),
        )
        for association_id, version, label, source in cur.fetchall():
            stored.setdefault(association_id, []).append((int(version), int(label), str(source)))
    return stored


def _logged(cur: Any, mark: str, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(ids):
        marks = ", ".join([mark] * len(chunk))
        cur.execute(f"SELECT DISTINCT association_id FROM {TABLE} WHERE association_id IN ({marks})", list(chunk))
        found.update(row[0] for row in cur.fetchall())
    return found


def plan_write(
    cur: Any, *, mark: str, records: Sequence[LabelRecord], duplicates: Any, received_at: float
) -> tuple[list[Row], LabelWrite]:
    """Look up what the batch's ids already hold, then plan; run inside the write's transaction,
    after the lock that keeps two writers from planning on the same state.
    """
    ids = list(dict.fromkeys(r.association_id for r in records))
    return plan(
        records,
        stored=_stored(cur, mark, ids),
        logged=_logged(cur, mark, ids),
        duplicates=duplicates,
        received_at=received_at,
    )


def labelled_sql(
    *, mark: str, env: str | None, start: float | None, end: float | None, label_floor: float | None
) -> tuple[str, list[Any]]:
    """Logged predictions joined with their id's newest label. A label older than `label_floor`
    (observed or received) is out of the retention: it is skipped as if already pruned.
    """
    fresh, fresh_args = "", []
    if label_floor is not None:
        fresh = f" AND m.observed_at >= {mark} AND m.received_at >= {mark}"
        fresh_args = [label_floor, label_floor]
    clauses, args = [], []
    for clause, value in (("p.env = {m}", env), ("p.ts >= {m}", start), ("p.ts < {m}", end)):
        if value is not None:
            clauses.append(clause.format(m=mark))
            args.append(value)
    picked = ", ".join(f"p.{c}" for c in COLUMNS) + ", l.label, l.raw_label, l.observed_at, l.source, "
    picked += "l.received_at, l.version"
    sql = (
        f"SELECT {picked} FROM {TABLE} p JOIN {LABELS_TABLE} l ON l.association_id = p.association_id "
        f"WHERE l.version = (SELECT MAX(m.version) FROM {LABELS_TABLE} m "
        f"WHERE m.association_id = p.association_id{fresh})"
    )
    sql += "".join(f" AND {c}" for c in clauses)
    return sql, [*fresh_args, *args]


def count_sql(*, mark: str, since: float | None, label_floor: float | None) -> tuple[str, list[Any]]:
    """How many ids hold a label received since `since`, matched or not; labels older than
    `label_floor` (observed or received) are out of the retention and not counted.
    """
    clauses, args = [], []
    for clause, value in (("received_at", since), ("observed_at", label_floor), ("received_at", label_floor)):
        if value is not None:
            clauses.append(f"{clause} >= {mark}")
            args.append(value)
    where_sql = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return f"SELECT COUNT(DISTINCT association_id) FROM {LABELS_TABLE}{where_sql}", args


def labelled_frame(rows: Iterable[Sequence[Any]]) -> pd.DataFrame:
    """The prediction columns as `read_log` returns them, then the label's; times as UTC datetimes."""
    out = frame(rows, extra=JOINED_LABEL_COLUMNS)
    out["label"] = out["label"].astype("int64")
    out["label_version"] = out["label_version"].astype("int64")
    out["raw_label"] = out["raw_label"].astype(str)
    out["label_source"] = out["label_source"].astype(str)
    for column in ("observed_at", "received_at"):
        out[column] = pd.to_datetime(out[column].astype("float64"), unit="s", utc=True)
    return out
