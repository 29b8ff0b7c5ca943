"""The label store in the SQLite log: the table appears in old logs on open, both duplicate rules,
retries, matching, the newest-label join and its retention clamp, pruning, all-or-nothing writes,
concurrent writers, and the checks every way in shares.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core import predlog
from pipeline.core.config import BaseSection, ConfigError, Label, LabelsSection, load_params
from tests.conftest import DEMO_PARAMS, demo_params_text
from tests.labels_support import (
    NOW,
    label,
    log_predictions,
    matching_scenario,
    newest,
    newest_within_retention_scenario,
    refuse_scenario,
    retention_scenario,
    version_scenario,
    write,
)
from tests.predlog_support import DAY

pytestmark = pytest.mark.unit

# The log's schema before the label store existed.
OLD_DDL = (
    "CREATE TABLE predictions (association_id TEXT NOT NULL, ts REAL NOT NULL, env TEXT NOT NULL, "
    "model_name TEXT NOT NULL, model_version TEXT NOT NULL, role TEXT NOT NULL, inputs TEXT NOT NULL, "
    "score REAL, latency_ms REAL NOT NULL, flags TEXT NOT NULL, fallback INTEGER NOT NULL, error TEXT)",
    "CREATE INDEX predictions_env_ts ON predictions (env, ts)",
)


@pytest.fixture
def url(tmp_path: Path) -> str:
    path = tmp_path / "log.db"
    predlog.open_store(str(path)).close()
    return str(path)


def _rows(path: str | Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_an_old_log_gets_the_labels_table_on_open_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    with conn:
        for statement in OLD_DDL:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO predictions VALUES ('a', 1.0, 'production', 'm', '1', 'champion', '{}', 0.5, 1.0, '[]', 0, NULL)"
        )
    conn.close()
    for _ in range(2):  # opening twice is harmless
        predlog.open_store(str(path)).close()
    columns = [r[1] for r in _rows(path, f"PRAGMA table_info({predlog.LABELS_TABLE})")]
    assert columns == list(predlog.LABEL_COLUMNS)
    indexes = [r[0] for r in _rows(path, "SELECT name FROM sqlite_master WHERE type = 'index'")]
    assert "predictions_association_id" in indexes
    assert _rows(path, "SELECT association_id FROM predictions") == [("a",)]


def test_refuse_rule(url: str) -> None:
    refuse_scenario(url)
    assert _rows(url, "SELECT COUNT(*) FROM labels") == [(2,)]


def test_version_rule(url: str) -> None:
    version_scenario(url)
    assert _rows(url, "SELECT version, label, source FROM labels ORDER BY version") == [
        (1, 1, "feedback"),
        (2, 0, "import:fix.csv"),
        (3, 1, "import:fix2.csv"),
    ]


def test_matched_and_unmatched_ids(url: str) -> None:
    matching_scenario(url)


def test_retention_clamps_readers_and_prune_deletes_old_labels(url: str) -> None:
    retention_scenario(url)
    assert sorted(str(r[0]) for r in _rows(url, "SELECT association_id FROM labels")) == ["fresh", "old_prediction"]


def test_readers_fall_back_to_the_newest_label_within_the_retention(url: str) -> None:
    newest_within_retention_scenario(url)


def test_labelled_predictions_window_environment_and_roles(url: str) -> None:
    log_predictions(url, {"a": 1.0, "b": 3.0, "c": 5.0})
    log_predictions(url, {"a": 1.0}, role="shadow")
    log_predictions(url, {"s": 1.0}, env="staging")
    write(url, [label("a", 1), label("b", 0), label("s", 1)], "refuse")
    joined = predlog.labelled_predictions(url, environment="production", now=NOW)
    # Unlabelled "c" is left out; both model rows of request "a" carry its label.
    assert sorted(zip(joined["association_id"].map(str), joined["role"].map(str), joined["label"], strict=True)) == [
        ("a", "champion", 1),
        ("a", "shadow", 1),
        ("b", "champion", 0),
    ]
    window = predlog.labelled_predictions(url, since=NOW - 4 * DAY, until=NOW - 2 * DAY, now=NOW)
    assert window["association_id"].tolist() == ["b"]
    assert str(joined["observed_at"].dt.tz) == "UTC"
    assert joined["ts"].is_monotonic_increasing
    empty = predlog.labelled_predictions(url, environment="nowhere", now=NOW)
    assert empty.empty
    assert {"label", "raw_label", "observed_at", "label_source", "received_at", "label_version"} <= set(empty.columns)


def test_a_failing_batch_writes_nothing(url: str) -> None:
    log_predictions(url, {"a": 1.0})
    # Past the checks every way in makes, the table's own constraint still stops a bad row.
    broken = predlog.LabelRecord("b", 2, "2", NOW, "feedback")
    with pytest.raises(predlog.PredictionLogError, match="cannot write labels"):
        write(url, [label("a", 1), broken], "refuse")
    assert _rows(url, "SELECT COUNT(*) FROM labels") == [(0,)]
    assert write(url, [label("a", 1)], "refuse").inserted == 1


def test_a_hand_made_labels_table_is_named_not_written(url: str) -> None:
    conn = sqlite3.connect(url)
    with conn:
        conn.execute("DROP TABLE labels")
        conn.execute("CREATE TABLE labels (association_id TEXT, employed INTEGER)")
    conn.close()
    with pytest.raises(predlog.PredictionLogError, match=r"predates the label store.*RENAME"):
        write(url, [label("a", 1)], "refuse")
    with pytest.raises(predlog.PredictionLogError, match="predates the label store"):
        predlog.labelled_predictions(url)
    assert _rows(url, "SELECT * FROM labels") == []


def test_writing_to_a_missing_log_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    with pytest.raises(predlog.PredictionLogError, match="prediction log not found"):
        write(str(path), [label("a", 1)], "refuse")
    assert not path.exists()


def test_concurrent_writers_never_store_two_first_labels(url: str) -> None:
    """Each writer plans on what the other stored: one first label per id, the rest refused."""
    ids = [f"id{i}" for i in range(50)]
    barrier = threading.Barrier(2)
    results: list[predlog.LabelWrite] = []

    def send(value: int) -> None:
        barrier.wait()
        results.append(write(url, [label(i, value) for i in ids], "refuse"))

    threads = [threading.Thread(target=send, args=(v,)) for v in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.inserted for r in results) == [0, len(ids)]
    assert sorted(len(r.refused) for r in results) == [0, len(ids)]
    assert _rows(url, "SELECT COUNT(*), COUNT(DISTINCT association_id), MAX(version) FROM labels") == [(50, 50, 1)]


def test_cli_prune_reports_label_rows(url: str) -> None:
    log_predictions(url, {"a": 1.0})
    write(url, [label("a", 1, observed=NOW - 200 * DAY)], "refuse", now=NOW - 200 * DAY)
    # The CLI prunes against the clock: the row is 200 days older than NOW, far past 90 days.
    result = CliRunner().invoke(app, ["log", "prune", "--params", str(DEMO_PARAMS), "--log-url", url])
    assert result.exit_code == 0, result.output
    assert "and 1 label rows" in result.output
    assert _rows(url, "SELECT COUNT(*) FROM labels") == [(0,)]
    assert newest(url) == {}


# --------------------------------------------------------------------------- checks every way in shares


@pytest.mark.parametrize(
    ("positive", "negative", "sent", "expected"),
    [
        (1, 0, 1, 1),
        (1, 0, "0", 0),
        (1, 0, 1.0, 1),
        (1, 0, True, None),  # a boolean is not the number 1
        (1, 0, 2, None),
        (1, 0, None, None),
        (1, 0, float("nan"), None),
        ("yes", "no", "yes", 1),
        ("yes", "no", "no", 0),
        ("yes", "no", "Yes", None),
        (True, False, "TRUE", 1),
        (True, False, False, 0),
    ],
)
def test_raw_labels_map_through_the_two_target_values(
    positive: Label, negative: Label, sent: object, expected: int | None
) -> None:
    base = BaseSection(seed=1, target="y", id_column="id", positive_label=positive, negative_label=negative)
    assert predlog.binary_label(sent, base=base) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("abc-123", None),
        ("", "must not be empty"),
        ("x" * 11, "at most 10"),
        ("a\nb", "U+000A"),
        ("a\x1bb", "U+001B"),
        (7, "must be text"),
    ],
)
def test_association_ids_are_checked(value: object, problem: str | None) -> None:
    found = predlog.id_problem(value, max_chars=10)
    assert found is None if problem is None else (found is not None and problem in found)


def test_observation_times() -> None:
    assert predlog.parse_time("2027-01-15T08:00:00Z") == predlog.parse_time("2027-01-15T09:00:00+01:00")
    # Without a zone a time is UTC.
    assert predlog.parse_time("2027-01-15T08:00:00") == predlog.parse_time("2027-01-15T08:00:00Z")
    for bad in ("yesterday", "15/01/2027", 1_800_000_000):
        with pytest.raises(ValueError, match="ISO 8601"):
            predlog.parse_time(bad)
    assert predlog.time_problem(NOW - DAY, now=NOW, retention_days=90) is None
    assert "future" in (predlog.time_problem(NOW + DAY, now=NOW, retention_days=90) or "")
    assert "retention_days = 90" in (predlog.time_problem(NOW - 91 * DAY, now=NOW, retention_days=90) or "")


# --------------------------------------------------------------------------- params


def _params_with(tmp_path: Path, labels: object) -> Path:
    raw = yaml.safe_load(demo_params_text())
    if labels is None:
        raw.pop("labels")
    else:
        raw["labels"] = labels
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_the_labels_section_is_documented_with_defaults(tmp_path: Path) -> None:
    shipped = load_params(DEMO_PARAMS).labels
    assert shipped == LabelsSection()
    assert shipped.duplicates == "refuse"
    # A params.yaml from before the section existed still loads, with the same defaults.
    assert load_params(_params_with(tmp_path, None)).labels == shipped


@pytest.mark.parametrize(
    ("labels", "needle"),
    [
        ({"duplicates": "overwrite"}, r"labels\.duplicates"),
        ({"max_batch": 0}, r"labels\.max_batch"),
        ({"id_column": "x", "label_column": "x"}, "must name different columns"),
        ({"surprise": 1}, r"labels\.surprise"),
    ],
)
def test_bad_labels_params_name_the_key(tmp_path: Path, labels: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_params(_params_with(tmp_path, labels))
