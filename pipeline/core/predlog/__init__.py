"""The prediction log: one row per scored request and model (association id, time, env, model
version, role, inputs, score, flags), and the labels that arrive later by association id (`labels`,
read back joined with `labelled_predictions`). SQLite by default, PostgreSQL for teams.

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
    label_count,
    labelled_predictions,
    open_store,
    prune,
    read_log,
    resolve_url,
    write_labels,
)
from pipeline.core.predlog.labels import (
    DUPLICATE_RULES,
    FEEDBACK_SOURCE,
    LabelRecord,
    LabelWrite,
    Refusal,
    binary_label,
    id_problem,
    import_source,
    label_problem,
    parse_time,
    raw_text,
    time_problem,
)
from pipeline.core.predlog.labels_sql import LABEL_COLUMNS
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
    "DUPLICATE_RULES",
    "FEEDBACK_SOURCE",
    "LABELS_TABLE",
    "LABEL_COLUMNS",
    "LOG_URL_ENV",
    "RETENTION_TABLE",
    "ROLES",
    "TABLE",
    "LabelRecord",
    "LabelWrite",
    "LogRecord",
    "LogStore",
    "LogWriter",
    "PostgresStore",
    "PredictionLogError",
    "PruneCounts",
    "PruneResult",
    "Refusal",
    "SqliteStore",
    "Store",
    "WriterStats",
    "binary_label",
    "cutoff",
    "id_problem",
    "import_source",
    "iso",
    "label_count",
    "label_problem",
    "labelled_predictions",
    "open_store",
    "parse_time",
    "prune",
    "raw_text",
    "read_log",
    "record",
    "resolve_url",
    "time_problem",
    "write_labels",
]
