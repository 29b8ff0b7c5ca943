"""Micro-batching: rows from concurrent requests scored together on a dedicated predict thread."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.core.config import DataSection
from pipeline.delivery.compiled import ONNX, serving_path
from pipeline.delivery.serve.inputs import to_frame
from pipeline.delivery.serve.models import (
    ERR_NO_MODEL,
    LoadedModelLike,
    ModelManager,
    Routing,
    ServeError,
    assign_role,
)

logger = logging.getLogger(__name__)


def compiled_only(routing: Routing) -> bool:
    """Whether every model that may score a batch runs on onnxruntime."""
    return all(serving_path(m) == ONNX for m in (routing.champion, routing.challenger) if m is not None)


def limit_threads(threads: int) -> None:
    """Cap OpenMP/BLAS threads for the calling thread (OpenMP's setting is per thread). Under
    contention a 1-row HistGradientBoosting predict with idle-spinning threads slows tenfold.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)


@dataclass(frozen=True)
class Outcome:
    score: float
    version: str
    role: str


@dataclass
class Item:
    """One queued row and the future its request awaits."""

    row: dict[str, Any]
    association_id: str
    flags: list[str]
    future: asyncio.Future[Outcome]
    role: str = "champion"


class Batcher:
    """Queues rows from concurrent requests and scores each model's share in one
    predict_proba call on a dedicated thread, so the event loop keeps accepting requests.
    It waits (up to max_wait) for more rows only when the previous batch held several:
    a lone request is scored at once.
    """

    def __init__(
        self,
        *,
        manager: ModelManager,
        data: DataSection,
        max_batch: int,
        max_wait_s: float,
        predict_threads: int,
        on_shadow: Any,
        on_batch: Any,
    ) -> None:
        self.manager, self.data = manager, data
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self.on_shadow, self.on_batch = on_shadow, on_batch
        self.predict_threads = predict_threads
        self._items: deque[Item] = deque()
        self._wakeup = asyncio.Event()
        self._expect = 1
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="predict", initializer=limit_threads, initargs=(predict_threads,)
        )

    async def submit(self, *, row: dict[str, Any], association_id: str, flags: list[str]) -> Outcome:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._items.append(Item(row, association_id, flags, future))
        self._wakeup.set()
        return await future

    async def _gather(self) -> None:
        loop = asyncio.get_running_loop()
        target = min(self._expect, self.max_batch)
        deadline = loop.time() + self.max_wait_s
        while len(self._items) < target:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        limit_threads(self.predict_threads)
        while True:
            if not self._items:
                self._wakeup.clear()
                await self._wakeup.wait()
            if self._expect > 1 and self.max_wait_s > 0:
                await self._gather()
            batch = [self._items.popleft() for _ in range(min(len(self._items), self.max_batch))]
            self._expect = len(batch)
            routing = self.manager.routing
            if routing is None:
                for item in batch:
                    item.future.set_exception(ServeError(ERR_NO_MODEL))
                continue
            for item in batch:
                item.role = assign_role(
                    association_id=item.association_id,
                    state=routing.state,
                    has_challenger=routing.challenger is not None,
                )
            if (len(batch) == 1 and not self._items) or compiled_only(routing):
                # A lone row scores faster inline than through a thread hand-off; with nothing
                # else queued there is no parsing to overlap with it. A compiled model scores a
                # whole batch in about a millisecond: a hand-off would cost more than it overlaps.
                results = self._score_answers(routing, batch)
            else:
                results = await loop.run_in_executor(self._executor, self._score_answers, routing, batch)
            for item, result in zip(batch, results, strict=True):
                if not item.future.done():
                    if isinstance(result, Exception):
                        item.future.set_exception(result)
                    else:
                        item.future.set_result(result)
            self.on_batch(len(batch))
            if routing.state.strategy == "shadow" and routing.challenger is not None:
                # Scored after the answers are released: the shadow never delays a caller.
                shadow = await loop.run_in_executor(self._executor, self._score_shadow, routing.challenger, batch)
                self.on_shadow(batch, shadow, routing.challenger)

    def _predict(self, model: LoadedModelLike, items: Sequence[Item]) -> list[float] | Exception:
        try:
            proba = model.model.predict_proba(to_frame(rows=[i.row for i in items], data=self.data))
            scores = [float(s) for s in np.asarray(proba)[:, 1]]
        except Exception as exc:  # the callers get a 500 each; the service keeps serving
            logger.exception("model %s failed on a batch of %d", model.version, len(items))
            return exc
        if not all(math.isfinite(s) for s in scores):
            return ServeError(f"model {model.version} returned a non-finite score")
        return scores

    def _score_answers(self, routing: Routing, batch: Sequence[Item]) -> list[Outcome | Exception]:
        out: list[Outcome | Exception] = [ServeError("not scored")] * len(batch)
        for role, model in (("champion", routing.champion), ("challenger", routing.challenger)):
            picked = [i for i, item in enumerate(batch) if item.role == role]
            if not picked or model is None:
                continue
            scores = self._predict(model, [batch[i] for i in picked])
            for n, i in enumerate(picked):
                out[i] = scores if isinstance(scores, Exception) else Outcome(scores[n], model.version, role)
        return out

    def _score_shadow(self, model: LoadedModelLike, batch: Sequence[Item]) -> tuple[list[float] | Exception, float]:
        started = time.perf_counter()
        scores = self._predict(model, batch)
        return scores, (time.perf_counter() - started) * 1000

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
