"""Retention of the prediction log: prune deletes exactly the rows older than the cut-off (and
their labels), a dry run changes nothing, reads never reach past the retention, and a bad
retention or an unusable store is one clear line.
"""

from __future__ import annotations

import dataclasses
import socket
import sqlite3
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core import predlog
from pipeline.core.config import ConfigError, load_params
from pipeline.core.predlog import sqlite as sqlite_store
from tests.conftest import DEMO_PARAMS, demo_params_text
from tests.predlog_support import AGES, DAY, KEPT, log_row, write_ages

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0


def _log(path: Path, *, now: float = NOW, ages: dict[str, float] = AGES) -> str:
    write_ages(str(path), now=now, ages=ages)
    return str(path)


def _dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every table's rows, straight from the file (read_log would clamp)."""
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        conn.close()


def _ids(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return sorted(r[0] for r in conn.execute(f"SELECT association_id FROM {predlog.TABLE}"))
    finally:
        conn.close()


def test_prune_removes_exactly_the_rows_older_than_the_cutoff(tmp_path: Path) -> None:
    url = _log(tmp_path / "log.db")
    result = predlog.prune(url=url, retention_days=90, now=NOW)
    assert result.predictions == 2
    assert result.cutoff == NOW - 90 * DAY
    assert _ids(tmp_path / "log.db") == sorted(KEPT)


def test_dry_run_counts_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    _log(path)
    before = _dump(path)
    result = predlog.prune(url=str(path), retention_days=90, now=NOW, dry_run=True)
    assert (result.predictions, result.dry_run) == (2, True)
    # Not even the retention is recorded: a dry run must leave the store as it found it.
    assert _dump(path) == before


@pytest.mark.parametrize(
    ("ddl", "rows", "left"),
    [
        # Labels stamped with their own arrival time go by that time.
        (
            "CREATE TABLE labels (association_id TEXT, ts REAL, employed INTEGER)",
            [("fresh", NOW - 1 * DAY, 1), ("stale", NOW - 91 * DAY, 0)],
            ["fresh"],
        ),
        # Labels without a time go with the predictions they label.
        (
            "CREATE TABLE labels (association_id TEXT, employed INTEGER)",
            [("recent", 1), ("stale", 0), ("ancient", 1)],
            ["recent"],
        ),
    ],
)
def test_prune_deletes_the_labels_of_pruned_rows(
    tmp_path: Path, ddl: str, rows: list[tuple[object, ...]], left: list[str]
) -> None:
    path = tmp_path / "log.db"
    _log(path)
    conn = sqlite3.connect(path)
    with conn:
        # A table made by hand before the label store had its own (which opening the log creates).
        conn.execute(f"DROP TABLE {predlog.LABELS_TABLE}")
        conn.execute(ddl)
        conn.executemany(f"INSERT INTO labels VALUES ({', '.join('?' * len(rows[0]))})", rows)
    conn.close()
    result = predlog.prune(url=str(path), retention_days=90, now=NOW)
    assert result.labels == len(rows) - len(left)
    assert [r[0] for r in _dump(path)["labels"]] == left
    assert _ids(path) == sorted(KEPT)


def test_a_labels_table_prune_cannot_match_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    _log(path)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(f"DROP TABLE {predlog.LABELS_TABLE}")
        conn.execute("CREATE TABLE labels (person TEXT, employed INTEGER)")
        conn.execute("INSERT INTO labels VALUES ('x', 1)")
    conn.close()
    result = predlog.prune(url=str(path), retention_days=90, now=NOW)
    assert result.note is not None
    assert "labels" in result.note
    assert _dump(path)["labels"] == [("x", 1)]


def test_read_log_clamps_its_window_to_the_retention(tmp_path: Path) -> None:
    url = _log(tmp_path / "log.db")
    # Asked for everything, or for a window reaching back a year: nothing older than 30 days.
    for start in (None, NOW - 365 * DAY):
        frame = predlog.read_log(url=url, start=start, retention_days=30, now=NOW)
        assert sorted(frame["association_id"]) == ["fresh"]
    # A window already inside the retention is left alone.
    inside = predlog.read_log(url=url, start=NOW - 100 * DAY, end=NOW - 10 * DAY, retention_days=365, now=NOW)
    assert sorted(inside["association_id"]) == ["edge", "recent", "stale"]


def test_a_pruned_store_clamps_readers_that_pass_no_retention(tmp_path: Path) -> None:
    """Drift, canary and sample read without params' retention: the store's record clamps them."""
    url = _log(tmp_path / "log.db")
    predlog.prune(url=url, retention_days=90, now=NOW)
    # 20 days later, before the next prune, "recent" (89.9 days old then) has aged out.
    later = predlog.read_log(url=url, now=NOW + 20 * DAY)
    assert sorted(later["association_id"]) == ["fresh"]
    # The stricter of the caller's and the store's retention wins.
    strict = predlog.read_log(url=url, retention_days=1, now=NOW)
    assert sorted(strict["association_id"]) == ["fresh"]


def _params_with(tmp_path: Path, days: object) -> Path:
    raw = yaml.safe_load(demo_params_text())
    raw["serve"]["log"]["retention_days"] = days
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.mark.parametrize("days", [None, 0, -5, True, 1.5, "90", 40_000])
def test_a_bad_retention_is_a_params_error_naming_the_key(tmp_path: Path, days: object) -> None:
    with pytest.raises(ConfigError, match=r"serve\.log\.retention_days: .*whole number of days"):
        load_params(_params_with(tmp_path, days))


def test_the_default_retention_is_documented_and_positive() -> None:
    assert load_params(DEMO_PARAMS).serve.log.retention_days == 90


def test_cli_prune_prints_count_and_cutoff(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    now = time.time()
    _log(path, now=now, ages={"new": 1.0, "old": 200.0})
    before = _dump(path)
    base = ["log", "prune", "--params", str(DEMO_PARAMS), "--log-url", str(path)]
    dry = CliRunner().invoke(app, [*base, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would remove 1 prediction rows older than" in dry.output
    assert _dump(path) == before
    real = CliRunner().invoke(app, base)
    assert real.exit_code == 0, real.output
    assert "removed 1 prediction rows older than" in real.output
    assert "(retention 90 days)" in real.output
    assert _ids(path) == ["new"]


def test_cli_prune_refuses_a_bad_retention_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    _log(path, now=time.time(), ages={"old": 200.0})
    before = _dump(path)
    bad = _params_with(tmp_path, None)
    result = CliRunner().invoke(app, ["log", "prune", "--params", str(bad), "--log-url", str(path)])
    assert result.exit_code == 2
    assert "serve.log.retention_days" in result.output
    assert "Traceback" not in result.output
    assert _dump(path) == before


def test_cli_prune_of_a_missing_log_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    result = CliRunner().invoke(app, ["log", "prune", "--params", str(DEMO_PARAMS), "--log-url", str(path)])
    assert result.exit_code == 2
    assert "prediction log not found" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not path.exists()


def test_a_locked_log_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "log.db"
    _log(path)
    before = _dump(path)
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_SECONDS", 0.05)
    holder = sqlite3.connect(path)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(predlog.PredictionLogError, match="locked by another process"):
            predlog.prune(url=str(path), retention_days=90, now=NOW)
    finally:
        holder.rollback()
        holder.close()
    assert _dump(path) == before


def test_an_unreachable_postgres_log_is_one_line_without_the_password(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port once the socket is closed: the connection is refused at once.
    url = f"postgresql://logger:s3cr3t@127.0.0.1:{port}/predictions"
    result = CliRunner().invoke(app, ["log", "prune", "--params", str(DEMO_PARAMS), "--log-url", url])
    assert result.exit_code == 2
    assert "cannot connect to the prediction log database" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "s3cr3t" not in result.output


def test_pruned_personal_data_leaves_the_files(tmp_path: Path) -> None:
    """A DELETE alone leaves the rows' bytes in free pages, and, while the service holds the
    log open, the old pages stay in the main file behind the WAL.
    """
    path = tmp_path / "log.db"
    service = predlog.open_store(str(path))
    try:
        old = log_row("gone", NOW - 200 * DAY)
        service.write([dataclasses.replace(old, inputs='{"name":"Erika Mustermann"}'), log_row("kept", NOW)])
        predlog.prune(url=str(path), retention_days=90, now=NOW)
        on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    finally:
        service.close()
    assert b"Erika Mustermann" not in on_disk
    assert _ids(path) == ["kept"]
