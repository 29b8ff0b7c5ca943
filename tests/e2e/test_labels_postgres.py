"""The label store on the team database: the same scenarios as on SQLite (both duplicate rules,
matching, the newest-label join, retention and prune), the table added to an old log on open,
concurrent writers serialised by the table lock, and `pipeline labels import` into PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core import predlog
from tests.conftest import DEMO_PARAMS
from tests.labels_support import (
    label,
    log_predictions,
    matching_scenario,
    newest_within_retention_scenario,
    refuse_scenario,
    retention_scenario,
    version_scenario,
    write,
)
from tests.predlog_support import log_row, postgres_database

pytestmark = pytest.mark.e2e


@pytest.fixture
def log_url(postgres_url: str) -> Iterator[str]:
    with postgres_database(postgres_url, prefix="labels") as url:
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


SCENARIOS = [refuse_scenario, version_scenario, matching_scenario, retention_scenario, newest_within_retention_scenario]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_label_store_scenarios_on_postgres(log_url: str, scenario: Callable[[str], None]) -> None:
    scenario(log_url)


def test_an_old_postgres_log_gets_the_labels_table_on_open(log_url: str) -> None:
    _query(
        log_url,
        "CREATE TABLE predictions (association_id TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, env TEXT NOT NULL, "
        "model_name TEXT NOT NULL, model_version TEXT NOT NULL, role TEXT NOT NULL, inputs TEXT NOT NULL, "
        "score DOUBLE PRECISION, latency_ms DOUBLE PRECISION NOT NULL, flags TEXT NOT NULL, "
        "fallback BOOLEAN NOT NULL, error TEXT)",
    )
    _query(
        log_url,
        "INSERT INTO predictions VALUES ('a', 1, 'production', 'm', '1', 'champion', '{}', 0.5, 1, '[]', false, NULL)",
    )
    for _ in range(2):
        predlog.open_store(log_url).close()
    columns = _query(
        log_url, "SELECT column_name, ordinal_position FROM information_schema.columns WHERE table_name = 'labels'"
    )
    assert [c for c, _ in sorted(columns, key=lambda c: int(str(c[1])))] == list(predlog.LABEL_COLUMNS)
    assert _query(log_url, "SELECT association_id FROM predictions") == [("a",)]


def test_concurrent_writers_are_serialised_by_the_lock(log_url: str) -> None:
    ids = [f"id{i}" for i in range(50)]
    barrier = threading.Barrier(2)
    results: list[predlog.LabelWrite] = []

    def send(value: int) -> None:
        barrier.wait()
        results.append(write(log_url, [label(i, value) for i in ids], "refuse"))

    threads = [threading.Thread(target=send, args=(v,)) for v in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.inserted for r in results) == [0, len(ids)]
    assert sorted(len(r.refused) for r in results) == [0, len(ids)]
    assert _query(log_url, "SELECT COUNT(*), COUNT(DISTINCT association_id), MAX(version) FROM labels") == [(50, 50, 1)]


def test_a_failing_batch_writes_nothing_on_postgres(log_url: str) -> None:
    log_predictions(log_url, {"a": 1.0})
    with pytest.raises(predlog.PredictionLogError, match="cannot write labels"):
        write(log_url, [label("a", 1), predlog.LabelRecord("b", 2, "2", time.time(), "feedback")], "refuse")
    assert _query(log_url, "SELECT COUNT(*) FROM labels") == [(0,)]


def test_cli_import_into_postgres(log_url: str, tmp_path: Path) -> None:
    store = predlog.open_store(log_url)
    try:
        store.write([log_row("a", time.time() - 60)])
    finally:
        store.close()
    file = tmp_path / "labels.csv"
    file.write_text("association_id,label\na,1\nb,0\n", encoding="utf-8")
    base = ["labels", "import", str(file), "--params", str(DEMO_PARAMS), "--log-url", log_url]
    result = CliRunner().invoke(app, base)
    assert result.exit_code == 0, result.output
    assert "2 rows, 2 inserted, 0 already stored, 0 refused duplicates" in result.output
    assert "1 ids matched a logged prediction, 1 unmatched (kept)" in result.output
    assert _query(log_url, "SELECT association_id, label, source FROM labels") == [
        ("a", 1, "import:labels.csv"),
        ("b", 0, "import:labels.csv"),
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("association_id,label\nc,1\nd,maybe\n", encoding="utf-8")
    refused = CliRunner().invoke(
        app, ["labels", "import", str(bad), "--params", str(DEMO_PARAMS), "--log-url", log_url]
    )
    assert refused.exit_code == 2
    assert len(_query(log_url, "SELECT * FROM labels")) == 2
