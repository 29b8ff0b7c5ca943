"""Retention on the team store: the same prune, dry run and read clamp on PostgreSQL as on
SQLite, labels included, through the library and through `pipeline log prune`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core import predlog
from tests.conftest import DEMO_PARAMS
from tests.predlog_support import AGES, DAY, KEPT, postgres_database, write_ages

pytestmark = pytest.mark.e2e

NOW = 1_800_000_000.0


@pytest.fixture
def log_url(postgres_url: str) -> Iterator[str]:
    """An empty database of its own per test, on the session's cluster."""
    with postgres_database(postgres_url, prefix="prune") as url:
        yield url


def _query(url: str, sql: str) -> list[tuple[object, ...]]:
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql)
            return sorted(cur.fetchall(), key=repr) if cur.description else []
    finally:
        conn.close()


def _snapshot(url: str) -> dict[str, list[tuple[object, ...]]]:
    tables = [
        r[0] for r in _query(url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
    ]
    return {str(t): _query(url, f"SELECT * FROM {t}") for t in tables}


def test_prune_dry_run_and_clamp_on_postgres(log_url: str) -> None:
    write_ages(log_url, now=NOW, ages=AGES)
    # A table made by hand before the label store had its own (which opening the log creates).
    _query(log_url, "DROP TABLE labels")
    _query(log_url, "CREATE TABLE labels (association_id TEXT, employed INTEGER)")
    _query(log_url, "INSERT INTO labels VALUES ('recent', 1), ('stale', 0), ('ancient', 1)")
    before = _snapshot(log_url)

    dry = predlog.prune(url=log_url, retention_days=90, now=NOW, dry_run=True)
    assert (dry.predictions, dry.labels) == (2, 2)
    assert _snapshot(log_url) == before

    done = predlog.prune(url=log_url, retention_days=90, now=NOW)
    assert (done.predictions, done.labels) == (2, 2)
    assert [r[0] for r in _query(log_url, "SELECT association_id FROM predictions ORDER BY association_id")] == sorted(
        KEPT
    )
    assert _query(log_url, "SELECT association_id FROM labels") == [("recent",)]

    # The recorded retention clamps a reader that passes none: 20 days on, only "fresh" is young enough.
    later = predlog.read_log(url=log_url, now=NOW + 20 * DAY)
    assert later["association_id"].tolist() == ["fresh"]
    assert predlog.read_log(url=log_url, retention_days=1, now=NOW)["association_id"].tolist() == ["fresh"]


def test_cli_prune_on_postgres(log_url: str) -> None:
    write_ages(log_url, now=time.time(), ages={"new": 1.0, "old": 200.0})
    base = ["log", "prune", "--params", str(DEMO_PARAMS), "--log-url", log_url]
    dry = CliRunner().invoke(app, [*base, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would remove 1 prediction rows" in dry.output
    assert len(_query(log_url, "SELECT * FROM predictions")) == 2
    real = CliRunner().invoke(app, base)
    assert real.exit_code == 0, real.output
    assert "removed 1 prediction rows" in real.output
    assert _query(log_url, "SELECT association_id FROM predictions") == [("new",)]
