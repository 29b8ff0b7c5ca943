"""No prediction-log row is lost silently: a SQLite file deleted or replaced under the running
writer is reopened (and counted), every lost row is counted in `dropped`, and the counters reach
Prometheus.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from pipeline.core import predlog
from pipeline.delivery.serve.metrics import Metrics

pytestmark = pytest.mark.unit

# How long a test waits for the writer thread to reach a state; never asserted on.
WAIT_SECONDS = 20.0


def _rows(prefix: str, n: int) -> list[predlog.LogRecord]:
    return [
        predlog.record(
            association_id=f"{prefix}-{i}",
            env="production",
            model_name="m",
            model_version="1",
            role="champion",
            inputs={"AGEP": float(i)},
            score=0.5,
            latency_ms=1.0,
        )
        for i in range(n)
    ]


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def _writer(store: predlog.Store, *, queue_rows: int = 1000) -> predlog.LogWriter:
    return predlog.LogWriter(store=store, flush_rows=100, flush_seconds=0.01, queue_rows=queue_rows)


def _ids(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return sorted(r[0] for r in conn.execute(f"SELECT association_id FROM {predlog.TABLE}"))
    finally:
        conn.close()


def test_a_deleted_log_file_is_reopened_and_later_rows_land_in_the_new_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "logs" / "predictions.db"
    writer = _writer(predlog.open_store(str(path)))
    try:
        writer.submit(_rows("before", 5))
        _until(lambda: writer.snapshot().written == 5)
        assert writer.snapshot().written == 5
        # What an operator's `rm -r logs/` does while the service runs.
        for leftover in path.parent.iterdir():
            leftover.unlink()
        path.parent.rmdir()
        with caplog.at_level(logging.WARNING, logger="pipeline.core.predlog"):
            writer.submit(_rows("after", 7))
            _until(lambda: writer.snapshot().written == 12)
    finally:
        writer.close()
    assert path.is_file()
    assert _ids(path) == sorted(f"after-{i}" for i in range(7))
    stats = writer.snapshot()
    assert (stats.written, stats.dropped, stats.reopened) == (12, 0, 1)
    assert any("deleted" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_a_replaced_log_file_is_reopened(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "predictions.db"
    writer = _writer(predlog.open_store(str(path)))
    try:
        writer.submit(_rows("before", 3))
        _until(lambda: writer.snapshot().written == 3)
        # A restored backup (here: an empty database) moved over the live file.
        other = tmp_path / "restored.db"
        sqlite3.connect(other).close()
        os.replace(other, path)
        with caplog.at_level(logging.WARNING, logger="pipeline.core.predlog"):
            writer.submit(_rows("after", 4))
            _until(lambda: writer.snapshot().written == 7)
    finally:
        writer.close()
    assert _ids(path) == sorted(f"after-{i}" for i in range(4))
    assert writer.snapshot().reopened == 1
    assert any("replaced" in r.getMessage() for r in caplog.records)


def test_an_unchanged_file_is_not_reopened(tmp_path: Path) -> None:
    path = tmp_path / "predictions.db"
    writer = _writer(predlog.open_store(str(path)))
    writer.submit(_rows("a", 3))
    _until(lambda: writer.snapshot().written == 3)
    writer.submit(_rows("b", 3))
    writer.close()
    assert (writer.snapshot().written, writer.snapshot().reopened) == (6, 0)
    assert len(_ids(path)) == 6


def test_a_failed_write_counts_every_row_as_dropped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "predictions.db"
    writer = _writer(predlog.open_store(str(path)))
    try:
        writer.submit(_rows("ok", 2))
        _until(lambda: writer.snapshot().written == 2)
        # The table disappears under the writer (a careless migration): inserts now fail.
        conn = sqlite3.connect(path)
        with conn:
            conn.execute(f"DROP TABLE {predlog.TABLE}")
        conn.close()
        with caplog.at_level(logging.WARNING, logger="pipeline.core.predlog"):
            writer.submit(_rows("lost", 9))
            _until(lambda: writer.snapshot().dropped == 9)
    finally:
        writer.close()
    stats = writer.snapshot()
    assert (stats.written, stats.dropped, stats.failed_batches) == (2, 9, 1)
    assert stats.last_error is not None
    assert "no such table" in stats.last_error
    assert any("9 rows not written" in r.getMessage() for r in caplog.records)


class _Failing:
    def __init__(self, message: str) -> None:
        self.message = message

    def write(self, rows: Sequence[predlog.LogRecord]) -> None:
        raise OSError(self.message)

    def close(self) -> None:
        pass


def test_a_write_error_is_counted_and_its_password_kept_out_of_the_log(caplog: pytest.LogCaptureFixture) -> None:
    writer = _writer(_Failing("could not reach postgresql://logger:s3cr3t@db.internal/predictions"))
    with caplog.at_level(logging.WARNING, logger="pipeline.core.predlog"):
        writer.submit(_rows("x", 4))
        writer.close()
    stats = writer.snapshot()
    assert stats.dropped == 4
    assert stats.last_error is not None
    assert "s3cr3t" not in stats.last_error
    assert caplog.records
    assert all("s3cr3t" not in r.getMessage() for r in caplog.records)


def test_rows_submitted_after_close_are_counted_as_dropped(tmp_path: Path) -> None:
    path = tmp_path / "predictions.db"
    writer = _writer(predlog.open_store(str(path)))
    writer.submit(_rows("in", 2))
    writer.close()
    # A request answered while the service shuts down: its row can no longer be written.
    writer.submit(_rows("late", 3))
    stats = writer.snapshot()
    assert (stats.written, stats.dropped) == (2, 3)
    assert len(_ids(path)) == 2


def test_a_full_queue_is_counted_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    class Blocked:
        """Holds the writer thread in its first write until released, so the queue fills."""

        def __init__(self) -> None:
            import threading

            self.entered = threading.Event()
            self.release = threading.Event()

        def write(self, rows: Sequence[predlog.LogRecord]) -> None:
            self.entered.set()
            self.release.wait(WAIT_SECONDS)

        def close(self) -> None:
            pass

    store = Blocked()
    writer = predlog.LogWriter(store=store, flush_rows=1, flush_seconds=0.01, queue_rows=2)
    writer.submit(_rows("first", 1))
    store.entered.wait(WAIT_SECONDS)
    with caplog.at_level(logging.WARNING, logger="pipeline.core.predlog"):
        writer.submit(_rows("more", 10))
        store.release.set()
        writer.close()
    stats = writer.snapshot()
    # One row in the store's hands, two queued, eight with no room.
    assert (stats.written, stats.dropped) == (3, 8)
    assert any("8 rows dropped" in r.getMessage() for r in caplog.records)


def test_writer_counters_are_prometheus_counters(tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    writer = _writer(_Failing("down"))
    writer.submit(_rows("x", 3))
    writer.close()
    writer.submit(_rows("late", 2))
    metrics = Metrics()
    metrics.watch_log(writer=writer)
    text = generate_latest(metrics.registry).decode()
    assert "# TYPE serve_prediction_log_dropped_total counter" in text
    assert "serve_prediction_log_dropped_total 5.0" in text
    assert "serve_prediction_log_written_total 0.0" in text
    assert "serve_prediction_log_reopened_total 0.0" in text
