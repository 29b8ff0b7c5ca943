"""The Dask engine of `pipeline score`, client side: connect to the scheduler (--scheduler, else
DASK_SCHEDULER_ADDRESS, else a local cluster of one single-threaded worker process per core),
ship the verified model to every worker, map `workers.score_span` over the input's spans read
with `dask.dataframe.from_map`, and gather the per-part counts (and prediction-log rows, which
this process appends to the store as each span finishes).

Workers write their parts straight into the partial folder, so with a remote cluster --output
must be a path that every worker and this machine see (a shared file system): the commit is a
rename in it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.config import Params
from pipeline.core.redact import redact
from pipeline.delivery.score import output as out
from pipeline.delivery.score.batch import BatchSpec
from pipeline.delivery.score.inputs import Input, ScoreError, is_url
from pipeline.delivery.score.model import ScoringModel, payload
from pipeline.delivery.score.prediction_log import BatchLog

if TYPE_CHECKING:
    from distributed import Client

logger = logging.getLogger(__name__)

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
# A span is read (whole row groups) and held by one task: this bounds a worker's memory, and the
# spans per worker keep every worker busy until the end.
SPAN_MAX_ROWS = 1_000_000
SPANS_PER_WORKER = 4
ERR_UNREACHABLE = "cannot reach the Dask scheduler at {address} ({via}) within {seconds:g} s: {error}"
ERR_NO_WORKERS = "the Dask scheduler at {address} has no workers (waited {seconds:g} s); nothing was scored"
ERR_LOCAL = "cannot start a local Dask cluster: {error}"
ERR_CLUSTER = "the Dask cluster failed while scoring ({kind}): {error}; nothing was written"


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def machine_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def connect(*, scheduler: str | None, params: Params) -> Iterator[Client]:
    """A client of the named scheduler, or of a local cluster started (and stopped) here."""
    import dask
    import distributed  # noqa: F401 - its import sets its loggers' levels, which are set below

    # Dask's own INFO lines (every worker's start and stop) would bury the run's progress, and a
    # task's failure reaches the user as the one error line the command prints.
    chatter = logging.getLogger("distributed")
    level = chatter.level
    chatter.setLevel(logging.CRITICAL)
    # Dask would turn text columns into its own string type between the read and the scoring;
    # the spans must reach score_batch exactly as read.
    try:
        with (
            dask.config.set({"dataframe.convert-string": False}),
            _client(scheduler=scheduler, params=params) as client,
        ):
            yield client
    finally:
        chatter.setLevel(level)


@contextlib.contextmanager
def _client(*, scheduler: str | None, params: Params) -> Iterator[Client]:
    from distributed import Client, LocalCluster

    seconds = params.score.connect_seconds
    address = scheduler or os.environ.get(SCHEDULER_ENV) or None
    if address is None:
        workers = machine_workers()
        logger.info("starting a local Dask cluster: %d worker processes of one thread", workers)
        try:
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                # Any free port: a fixed one (8787) clashes with another cluster on the machine.
                dashboard_address=":0",
                silence_logs=logging.CRITICAL,
            )
        except Exception as exc:
            raise ScoreError(ERR_LOCAL.format(error=_first_line(exc))) from exc
        with cluster, Client(cluster, set_as_default=False) as client:
            yield client
        return
    via = "--scheduler" if scheduler else SCHEDULER_ENV
    try:
        client = Client(address, timeout=f"{seconds}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        shown = redact(address)
        raise ScoreError(
            ERR_UNREACHABLE.format(address=shown, via=via, seconds=seconds, error=_first_line(exc))
        ) from exc
    try:
        try:
            client.wait_for_workers(1, timeout=seconds)
        except (OSError, TimeoutError) as exc:
            raise ScoreError(ERR_NO_WORKERS.format(address=redact(address), seconds=seconds)) from exc
        logger.info("connected to the Dask scheduler at %s: %d workers", redact(address), len(client.nthreads()))
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def shipped(client: Client, scoring: ScoringModel, params: Params) -> Iterator[str]:
    """The model on every worker (hash checked there), under the returned plugin name."""
    from pipeline.delivery.score.workers import ModelPlugin

    plugin = ModelPlugin(payload(scoring, params))
    try:
        client.register_plugin(plugin, name=plugin.name)
    except ScoreError:
        raise
    except (OSError, TimeoutError) as exc:
        raise ScoreError(ERR_CLUSTER.format(kind=type(exc).__name__, error=_first_line(exc))) from exc
    logger.info("model %s version %s loaded on every worker", scoring.info.name, scoring.info.version)
    try:
        yield plugin.name
    finally:
        with contextlib.suppress(Exception):  # the cluster may be gone; the run's outcome stands
            client.unregister_worker_plugin(plugin.name)


def span_batches(*, rows: int, batch_rows: int, workers: int, row_group_rows: int) -> int:
    """Batches per span: enough spans to keep every worker busy, no span over SPAN_MAX_ROWS (or
    one batch), and, when the files' row groups are large, spans of about one row group, since a
    span decodes every row group it touches.
    """
    cap = max(1, SPAN_MAX_ROWS // batch_rows)
    spread = max(1, math.ceil(math.ceil(rows / batch_rows) / (SPANS_PER_WORKER * max(1, workers))))
    group = math.ceil(row_group_rows / batch_rows)
    return max(1, min(cap, max(spread, group)))


def _row_group_rows(location: str) -> int:
    import pyarrow.parquet as pq

    from pipeline.delivery.score.inputs import _open

    with _open(location) as fh:
        metadata = pq.read_metadata(fh)
    return metadata.row_group(0).num_rows if metadata.num_row_groups else 0


def _absolute(location: str) -> str:
    # Worker processes need not share this process's working directory.
    return location if is_url(location) else str(Path(location).resolve())


def write_parts(
    client: Client,
    *,
    plugin: str,
    params: Params,
    source: Input,
    scoring: ScoringModel,
    partial: Path,
    sink: BatchLog | None,
) -> dict[str, Any]:
    import dask.dataframe as dd

    from pipeline.delivery.score import workers as w

    id_type = source.schema.field(params.base.id_column).type
    rows = tuple(int(n or 0) for n in source.rows)
    total = sum(rows)
    job = w.Job(
        spec=BatchSpec(params=params, info=scoring.info),
        files=tuple(_absolute(f) for f in source.files),
        rows=rows,
        schema=source.schema,
        prediction_schema=out.prediction_schema(params, id_type),
        reject_schema=out.reject_schema(params, id_type),
        batch_rows=params.score.batch_rows,
        span_batches=span_batches(
            rows=total,
            batch_rows=params.score.batch_rows,
            workers=sum(client.nthreads().values()),
            row_group_rows=_row_group_rows(source.files[0]) if total else 0,
        ),
        partial=str(partial.resolve()),
        plugin=plugin,
        log=sink is not None,
    )
    spans = job.spans()
    logger.info("%d rows in %d spans of up to %d rows", total, len(spans), job.span_rows)
    frames = dd.from_map(w.read_span, spans, job=job, meta=job.meta(), enforce_metadata=False, label="read-span")
    scored = frames.map_partitions(w.score_span, job=job, meta=w.RESULT, enforce_metadata=False)
    started = time.perf_counter()
    results = _gather(client, scored.to_delayed(), sink=sink, spans=len(spans))
    counts = {k: sum(int(r[k]) for r in results) for k in ("read", "scored", "rejected")}
    parts: dict[str, list[str]] = {
        out.PREDICTIONS: [out.PART.format(index=r["part"]) for r in results],
        out.REJECTS: [out.PART.format(index=r["part"]) for r in results if r["rejected"]],
    }
    return out.totals(**counts, parts=parts, seconds=time.perf_counter() - started)


def _gather(client: Client, parts: list[Any], *, sink: BatchLog | None, spans: int) -> list[dict[str, Any]]:
    """Every part's counts, in part order; log rows appended as their span finishes."""
    from distributed import as_completed
    from distributed.client import FutureCancelledError

    started = time.perf_counter()
    futures = client.compute(parts)
    results: list[dict[str, Any]] = []
    read = 0
    try:
        for done, (_, frame) in enumerate(as_completed(futures, loop=client.loop, with_results=True), start=1):
            for row in frame.to_dict("records"):
                if sink is not None and row["log"] is not None:
                    sink.append(row["log"])
                results.append({**row, "log": None})
                read += int(row["read"])
            elapsed = time.perf_counter() - started
            logger.info(
                "span %d of %d done; %d rows so far, %.0f rows/s", done, spans, read, read / elapsed if elapsed else 0.0
            )
    except ScoreError:
        raise
    except (OSError, TimeoutError, FutureCancelledError) as exc:
        raise ScoreError(ERR_CLUSTER.format(kind=type(exc).__name__, error=_first_line(exc))) from exc
    except Exception as exc:
        # A worker killed mid-span (out of memory) surfaces as KilledWorker, not an OSError.
        if type(exc).__name__ != "KilledWorker":
            raise
        raise ScoreError(ERR_CLUSTER.format(kind="KilledWorker", error=_first_line(exc))) from exc
    finally:
        client.cancel([f for f in futures if not f.done()])
    return sorted(results, key=lambda r: int(r["part"]))
