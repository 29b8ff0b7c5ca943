"""The prediction log: one row per scored request and model (association id, time, env, model
version, role, inputs, score, flags), label-free. SQLite by default, PostgreSQL for teams.

The inputs are people's personal data: rows older than params serve.log.retention_days are
deleted by `pipeline log prune` (`prune`) and never read (`read_log` clamps its window).

Rows are written off the request path (`LogWriter`): a bounded queue drained in batches by a
background thread; every row it loses is counted, and a deleted SQLite file is reopened.
"""

from pipeline.core.predlog.access import (
    DAY_SECONDS,
    LogStore,
    PruneResult,
    cutoff,
    iso,
    open_store,
    prune,
    read_log,
    resolve_url,
)
from pipeline.core.predlog.postgres import PostgresStore
from pipeline.core.predlog.records import (
    COLUMNS,
    LABELS_TABLE,
    LOG_URL_ENV,
    RETENTION_TABLE,
    ROLES,
    TABLE,
    LogRecord,
    PredictionLogError,
    PruneCounts,
    Store,
    record,
)
from pipeline.core.predlog.sqlite import SqliteStore
from pipeline.core.predlog.writer import LogWriter, WriterStats

__all__ = [
    "COLUMNS",
    "DAY_SECONDS",
    "LABELS_TABLE",
    "LOG_URL_ENV",
    "RETENTION_TABLE",
    "ROLES",
    "TABLE",
    "LogRecord",
    "LogStore",
    "LogWriter",
    "PostgresStore",
    "PredictionLogError",
    "PruneCounts",
    "PruneResult",
    "SqliteStore",
    "Store",
    "WriterStats",
    "cutoff",
    "iso",
    "open_store",
    "prune",
    "read_log",
    "record",
    "resolve_url",
]
