"""Prediction-log rows of known ages and throwaway PostgreSQL databases, shared by the SQLite and
PostgreSQL tests of the log and its labels.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from pipeline.core import predlog

DAY = predlog.DAY_SECONDS
# Ages in days; 90 is exactly the cut-off of a 90-day retention and is kept (ts >= cut-off).
AGES = {"fresh": 0.5, "recent": 89.9, "edge": 90.0, "stale": 90.1, "ancient": 400.0}
KEPT = ["fresh", "recent", "edge"]


def log_row(name: str, ts: float) -> predlog.LogRecord:
    return predlog.record(
        association_id=name,
        env="production",
        model_name="m",
        model_version="1",
        role="champion",
        inputs={"x": 40.0, "group": "2"},
        score=0.5,
        latency_ms=1.0,
        ts=ts,
    )


def write_ages(url: str, *, now: float, ages: dict[str, float]) -> None:
    """One row per name, `ages[name]` days before `now`."""
    store = predlog.open_store(url)
    try:
        store.write([log_row(name, now - age * DAY) for name, age in ages.items()])
    finally:
        store.close()


@contextlib.contextmanager
def postgres_database(server_url: str, prefix: str = "log") -> Iterator[str]:
    """An empty database of its own on the session's PostgreSQL cluster, dropped afterwards."""
    import psycopg2

    server = server_url.replace("postgresql+psycopg2://", "postgresql://", 1)
    name = f"{prefix}_{time.monotonic_ns()}"
    admin = psycopg2.connect(server)
    # CREATE and DROP DATABASE refuse to run inside a transaction.
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        yield server.rsplit("/", 1)[0] + f"/{name}"
        with admin.cursor() as cur:
            # WITH (FORCE): a connection a failed test left open must not keep the database alive.
            cur.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        admin.close()
