"""The background writer: rows leave the request path on a bounded queue and one thread writes
them in batches. A full queue drops rows instead of slowing a request (the log serves monitoring,
the answer serves the caller), but no row is lost silently: every lost row is counted in
`dropped` and logged, and the counters are exported as metrics.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.core.predlog.records import LogRecord, Store
from pipeline.core.redact import redact

logger = logging.getLogger(__name__)

WARN_NOT_WRITTEN = "prediction log: %d rows not written (counted as dropped): %s"
WARN_OVERFLOW = "prediction log: %d rows dropped since the last report: the queue of %d rows was full"
WARN_AFTER_CLOSE = "prediction log: %d rows dropped: they arrived after the writer closed"
WARN_STILL_QUEUED = "prediction log: %d rows still queued after %.0f s; they are lost if the process exits now"
# Overflow happens under sustained load: one line a minute says so without flooding the log.
OVERFLOW_REPORT_SECONDS = 60.0


@dataclass
class WriterStats:
    """Rows written, rows lost (queue full, write failed, arrived after close), and how often
    the store reopened a deleted or replaced file.
    """

    written: int = 0
    dropped: int = 0
    reopened: int = 0
    failed_batches: int = 0
    last_error: str | None = None


class LogWriter:
    """A bounded queue drained by one thread every `flush_seconds`, in transactions of up to
    `flush_rows`. `submit` never blocks; `close` flushes what is queued.
    """

    def __init__(self, *, store: Store, flush_rows: int, flush_seconds: float, queue_rows: int) -> None:
        self.store = store
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.stats = WriterStats()
        self._queue: queue.Queue[LogRecord] = queue.Queue(maxsize=queue_rows)
        # Counters move on the request threads and on the writer thread: `+=` is not atomic.
        self._lock = threading.Lock()
        self._closed = False
        self._overflow = 0
        self._overflow_reported = float("-inf")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def submit(self, rows: Iterable[LogRecord]) -> None:
        late = 0
        with self._lock:
            for row in rows:
                if self._closed:
                    late += 1
                    continue
                try:
                    self._queue.put_nowait(row)
                except queue.Full:
                    self._overflow += 1
                    self.stats.dropped += 1
            self.stats.dropped += late
        if late:
            logger.warning(WARN_AFTER_CLOSE, late)

    def pending(self) -> int:
        return self._queue.qsize()

    def snapshot(self) -> WriterStats:
        """A consistent copy of the counters (for metrics)."""
        with self._lock:
            return dataclasses.replace(self.stats)

    def _run(self) -> None:
        # Sleep, then drain: waiting on the queue itself would wake this thread (and take the GIL
        # from the event loop) once per request.
        stopping = False
        while not stopping:
            stopping = self._stop.wait(self.flush_seconds)
            while True:
                batch: list[LogRecord] = []
                while len(batch) < self.flush_rows:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if batch:
                    self._flush(batch)
                if len(batch) < self.flush_rows:
                    break
            self._report_overflow(force=stopping)
        try:
            self.store.close()
        except Exception as exc:  # closing must not hide what was written
            logger.warning("prediction log: closing the store failed: %s", redact(str(exc)))

    def _report_overflow(self, *, force: bool) -> None:
        now = time.monotonic()
        with self._lock:
            if not self._overflow or (not force and now - self._overflow_reported < OVERFLOW_REPORT_SECONDS):
                return
            count, self._overflow, self._overflow_reported = self._overflow, 0, now
        logger.warning(WARN_OVERFLOW, count, self._queue.maxsize)

    def _flush(self, batch: list[LogRecord]) -> None:
        error = None
        try:
            self.store.write(batch)
        except Exception as exc:  # a database outage must not kill the writer thread
            error = redact(str(exc))
        reopened = getattr(self.store, "reopens", 0)
        with self._lock:
            self.stats.reopened = reopened
            if error is None:
                self.stats.written += len(batch)
            else:
                self.stats.failed_batches += 1
                self.stats.dropped += len(batch)
                self.stats.last_error = error
        if error is not None:
            logger.warning(WARN_NOT_WRITTEN, len(batch), error)

    def close(self, *, timeout: float = 30.0) -> None:
        """Write everything queued, then stop the thread; later rows count as dropped."""
        with self._lock:
            self._closed = True
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning(WARN_STILL_QUEUED, self.pending(), timeout)
                return
        # The thread is gone (finished, or died): whatever it left behind will never be written.
        left = 0
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            left += 1
        if left:
            with self._lock:
                self.stats.dropped += left
            logger.warning(WARN_NOT_WRITTEN, left, "the writer thread had stopped")
