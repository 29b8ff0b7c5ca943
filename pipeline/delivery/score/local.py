"""The local engine of `pipeline score`: the input read batch by batch in this process, each batch
judged and scored on a small pool of threads, the parts written in batch order.

Each scoring thread runs the model single-threaded: HistGradientBoosting's predict opens one
OpenMP region per tree, whose start-up cost on every 100k-row batch outweighs the work on a
busy machine; batches side by side keep the cores busy instead. Memory stays bounded by the
batches in flight (threads + 1) and the reader's read-ahead, whatever the input's size.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.core.config import Params
from pipeline.core.io import plain_dtypes
from pipeline.delivery.score import output as out
from pipeline.delivery.score.batch import BatchSpec, score_batch
from pipeline.delivery.score.inputs import Input
from pipeline.delivery.score.model import ScoringModel
from pipeline.delivery.score.prediction_log import BatchLog, log_rows
from pipeline.delivery.score.reading import batches

logger = logging.getLogger(__name__)

# More threads add batches in flight (memory) for little: the GIL-bound share of a batch (pandas,
# the encoders) runs one thread at a time.
MAX_THREADS = 4

Scored = tuple[pd.DataFrame, pd.DataFrame, float]


def scoring_threads() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, MAX_THREADS))


def _single_threaded() -> None:
    from threadpoolctl import threadpool_limits

    # OpenMP's thread count is per calling thread: it must be set in each scoring thread.
    threadpool_limits(1)


def _timed(frame: pd.DataFrame, model: Any, spec: BatchSpec, first_row: int) -> Scored:
    started = time.perf_counter()
    predictions, rejects = score_batch(frame, model=model, spec=spec, first_row=first_row)
    return predictions, rejects, time.perf_counter() - started


def write_parts(
    *, params: Params, source: Input, scoring: ScoringModel, partial: Path, sink: BatchLog | None
) -> dict[str, Any]:
    spec = BatchSpec(params=params, info=scoring.info)
    id_type = source.schema.field(params.base.id_column).type
    prediction_schema = out.prediction_schema(params, id_type)
    reject_schema = out.reject_schema(params, id_type)
    read = scored = rejected = 0
    parts: dict[str, list[str]] = {out.PREDICTIONS: [], out.REJECTS: []}
    started = time.perf_counter()

    def finish(index: int, frame: pd.DataFrame, first_row: int, future: Future[Scored]) -> None:
        nonlocal read, scored, rejected
        predictions, rejects, seconds = future.result()
        name = out.PART.format(index=index)
        out.write_part(predictions, prediction_schema, partial / out.PREDICTIONS / name)
        parts[out.PREDICTIONS].append(name)
        if len(rejects):
            out.write_part(rejects, reject_schema, partial / out.REJECTS / name)
            parts[out.REJECTS].append(name)
        if sink is not None:
            sink.append(log_rows(frame, predictions, rejects, params=params, first_row=first_row, seconds=seconds))
        read += len(frame)
        scored += len(predictions)
        rejected += len(rejects)
        elapsed = time.perf_counter() - started
        logger.info(
            "batch %d: %d rows, %d rejected; %d rows so far, %.0f rows/s",
            index,
            len(frame),
            len(rejects),
            read,
            read / elapsed if elapsed > 0 else 0.0,
        )

    threads = scoring_threads()
    pool = ThreadPoolExecutor(threads, thread_name_prefix="score", initializer=_single_threaded)
    pending: deque[tuple[int, pd.DataFrame, int, Future[Scored]]] = deque()
    try:
        first_row = 0
        for index, table in enumerate(batches(source, rows=params.score.batch_rows)):
            frame = plain_dtypes(table.to_pandas())
            pending.append((index, frame, first_row, pool.submit(_timed, frame, scoring.model, spec, first_row)))
            first_row += len(frame)
            while len(pending) > threads:
                finish(*pending.popleft())
        while pending:
            finish(*pending.popleft())
    finally:
        # On an error or Ctrl-C: drop the queued batches, wait only for those already running.
        pool.shutdown(wait=True, cancel_futures=True)
    return out.totals(read=read, scored=scored, rejected=rejected, parts=parts, seconds=time.perf_counter() - started)
