"""The ASGI app: request handling, the Service that ties models, batcher, metrics and log together."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from pipeline.core.config import Params
from pipeline.core.redact import redact
from pipeline.delivery.compiled import serving_path
from pipeline.delivery.serve.batching import Batcher, Item
from pipeline.delivery.serve.feedback import Feedback
from pipeline.delivery.serve.http import ERR_BODY_TIMEOUT, ERR_DISCONNECTED, ERR_MEDIA_TYPE, ERR_TOO_LARGE
from pipeline.delivery.serve.http import json_response as _json
from pipeline.delivery.serve.http import read_body as _read_body
from pipeline.delivery.serve.inputs import (
    TrainingProfile,
    answer,
    field_errors,
    input_flags,
    is_json,
    probe_row,
    request_model,
    score_flags,
    to_frame,
)
from pipeline.delivery.serve.metrics import Metrics
from pipeline.delivery.serve.models import ERR_NO_MODEL, LoadedModelLike, ModelManager, ModelSource, ServingState

if TYPE_CHECKING:
    from pipeline.core.predlog import LogRecord, LogWriter

ERR_EMPTY_BODY = "empty request body: send a JSON object with a `features` object"

logger = logging.getLogger(__name__)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


class RegistryWatch:
    """A model source that remembers when reading the serving state last worked and since when
    it fails, so an outage is reported beside readiness instead of as unreadiness.
    """

    def __init__(self, source: ModelSource) -> None:
        self.source = source
        self.last_success: float | None = None
        self.failing_since: float | None = None
        self.error: str | None = None

    def current_state(self) -> ServingState:
        try:
            state = self.source.current_state()
        except Exception as exc:
            if self.failing_since is None:
                self.failing_since = time.time()
            self.error = redact(str(exc))
            raise
        self.last_success, self.failing_since, self.error = time.time(), None, None
        return state

    def load(self, version: str) -> LoadedModelLike:
        return self.source.load(version)

    @property
    def reachable(self) -> bool:
        return self.last_success is not None and self.failing_since is None

    def describe(self) -> str:
        if self.failing_since is not None:
            return f"unreachable since {_iso(self.failing_since)}: {self.error}"
        return "not read yet" if self.last_success is None else "reachable"


@dataclass
class Service:
    """What the endpoints and the lifespan share: models, batcher, metrics and the log writer."""

    params: Params
    env: str
    manager: ModelManager
    profile: TrainingProfile
    writer: LogWriter | None
    watch: RegistryWatch
    metrics: Metrics = field(default_factory=Metrics)
    batcher: Batcher | None = None
    poll: bool = True

    def log(self, rows: Sequence[LogRecord]) -> None:
        if self.writer is not None:
            self.writer.submit(rows)

    def shadow_rows(self, batch: Sequence[Item], result: Any, model: LoadedModelLike) -> None:
        from pipeline.core.predlog import record

        scores, elapsed_ms = result
        humility = self.params.serve.humility
        rows = []
        for n, item in enumerate(batch):
            failed = isinstance(scores, Exception)
            score = None if failed else scores[n]
            flags = item.flags + ([] if score is None else score_flags(score=score, humility=humility))
            rows.append(
                record(
                    association_id=item.association_id,
                    env=self.env,
                    model_name=model.name,
                    model_version=model.version,
                    role="shadow",
                    inputs=item.row,
                    score=score,
                    latency_ms=elapsed_ms,
                    flags=flags,
                    error=str(scores) if failed else None,
                )
            )
            self.metrics.requests.labels(model.version, "shadow", "500" if failed else "200").inc()
        self.log(rows)

    def update_gauges(self) -> None:
        self.metrics.ready.set(0 if self.manager.routing is None else 1)
        self.metrics.current.set(1 if self.manager.problem is None and self.manager.routing else 0)
        self.metrics.registry_reachable.set(1 if self.watch.reachable else 0)
        self.metrics.registry_last_success.set(self.watch.last_success or 0)
        self.metrics.model.clear()
        routing = self.manager.routing
        if routing is not None:
            self.metrics.model.labels("champion", routing.champion.version, serving_path(routing.champion)).set(1)
            if routing.challenger is not None:
                role = "shadow" if routing.state.strategy == "shadow" else "challenger"
                self.metrics.model.labels(role, routing.challenger.version, serving_path(routing.challenger)).set(1)
        if self.writer is not None:
            self.metrics.log_pending.set(self.writer.pending())


def create_app(
    *,
    params: Params,
    env: str,
    source: ModelSource,
    profile: TrainingProfile,
    writer: LogWriter | None,
    poll: bool = True,
) -> FastAPI:
    """The ASGI app. Loading, polling and the batcher start in its lifespan."""
    serve = params.serve
    probe = to_frame(rows=[probe_row(profile=profile)], data=params.data)
    watch = RegistryWatch(source)
    service = Service(
        params=params,
        env=env,
        manager=ModelManager(
            source=watch, data=params.data, probe=probe, compiled=serve.compiled, threads=serve.predict_threads
        ),
        profile=profile,
        writer=writer,
        watch=watch,
        poll=poll,
    )
    if writer is not None:
        service.metrics.watch_log(writer=writer)
    feedback = Feedback(params=params, writer=writer, registry=service.metrics.registry)
    schema = request_model(data=params.data, max_id_chars=serve.max_association_id_chars)
    threshold = params.evaluate.threshold

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")
        batcher = Batcher(
            manager=service.manager,
            data=params.data,
            max_batch=serve.max_batch,
            max_wait_s=serve.max_wait_ms / 1000,
            predict_threads=serve.predict_threads,
            on_shadow=service.shadow_rows,
            on_batch=service.metrics.batch.observe,
        )
        service.batcher = batcher
        tasks = [asyncio.create_task(batcher.run(), name="batcher")]

        async def poller() -> None:
            # Loading runs on its own thread: scoring goes on with the old models meanwhile.
            while True:
                await loop.run_in_executor(loader, service.manager.refresh)
                service.update_gauges()
                await asyncio.sleep(serve.poll_seconds)

        if poll:
            tasks.append(asyncio.create_task(poller(), name="alias-poller"))
        else:
            await loop.run_in_executor(loader, service.manager.refresh)
            service.update_gauges()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            batcher.close()
            loader.shutdown(wait=False, cancel_futures=True)
            await loop.run_in_executor(None, feedback.close)
            if writer is not None:
                await loop.run_in_executor(None, writer.close)

    app = FastAPI(title="pipeline serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service
    app.state.feedback = feedback

    @app.get("/health")
    async def health() -> Response:
        return _json({"status": "alive"})

    @app.get("/ready")
    async def ready() -> Response:
        # What a load balancer asks: can this replica answer? Loaded models answer through a
        # registry outage or a refused new version, so those show beside readiness.
        manager = service.manager
        routing = manager.routing
        problem = manager.problem
        body: dict[str, Any] = {
            "ready": routing is not None,
            "problem": None if problem is None else redact(problem),
            "registry": watch.describe(),
            "registry_last_success": None if watch.last_success is None else _iso(watch.last_success),
            "env": env,
        }
        if routing is not None:
            body.update(
                champion=routing.champion.version,
                challenger=None if routing.challenger is None else routing.challenger.version,
                strategy=routing.state.strategy,
                traffic_share=routing.state.traffic_share,
                # onnx or sklearn per loaded role (params serve.compiled and the version decide).
                serving_path={
                    role: serving_path(model)
                    for role, model in (("champion", routing.champion), ("challenger", routing.challenger))
                    if model is not None
                },
            )
        return _json(body, 200 if body["ready"] else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        service.update_gauges()
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/feedback")
    async def feedback_labels(request: Request) -> Response:
        # Labels arriving later (feedback.py): written on a thread of their own, never through
        # the predict path or its log queue.
        return await feedback.handle(request)

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        from pipeline.core.predlog import record

        started = time.perf_counter()
        errors = service.metrics.errors
        content_type = request.headers.get("content-type")
        if not is_json(content_type=content_type):
            errors.labels("media_type").inc()
            got = "none" if content_type is None else repr(content_type[:100])
            return _json({"detail": ERR_MEDIA_TYPE.format(got=got)}, 415, close=True)
        try:
            # Bounds a client that sends its headers and then stalls (slow-loris).
            async with asyncio.timeout(serve.read_timeout_seconds):
                body = await _read_body(request, serve.max_body_bytes)
        except TimeoutError:
            errors.labels("timeout").inc()
            return _json({"detail": ERR_BODY_TIMEOUT.format(seconds=serve.read_timeout_seconds)}, 408, close=True)
        except ClientDisconnect:
            # Routine on the internet (a client timed out or was killed): counted, not a traceback.
            service.metrics.disconnects.inc()
            logger.debug(ERR_DISCONNECTED)
            return _json({"detail": ERR_DISCONNECTED}, 400, close=True)
        if body is None:
            errors.labels("too_large").inc()
            return _json({"detail": ERR_TOO_LARGE.format(limit=serve.max_body_bytes)}, 413, close=True)
        if not body.strip():
            errors.labels("empty").inc()
            return _json({"detail": ERR_EMPTY_BODY}, 400)
        try:
            parsed = schema.model_validate_json(body)
        except ValidationError as exc:
            problems = field_errors(exc)
            if problems[0]["type"] == "json_invalid":
                errors.labels("malformed").inc()
                return _json({"detail": f"malformed JSON: {problems[0]['message']}"}, 400)
            errors.labels("invalid").inc()
            return _json({"detail": f"invalid input: {len(problems)} field error(s)", "errors": problems}, 422)
        row = parsed.features.model_dump()  # type: ignore[attr-defined]
        association_id = parsed.association_id or uuid.uuid4().hex  # type: ignore[attr-defined]
        flags = input_flags(row=row, profile=profile)
        if service.batcher is None or service.manager.routing is None:
            errors.labels("not_ready").inc()
            return _json({"detail": ERR_NO_MODEL}, 503)
        try:
            outcome = await service.batcher.submit(row=row, association_id=association_id, flags=flags)
        except Exception as exc:  # the model failed on this batch: 500 for it, the service goes on
            errors.labels("model").inc()
            routing = service.manager.routing
            version = routing.champion.version if routing else "none"
            service.metrics.requests.labels(version, "champion", "500").inc()
            latency_ms = (time.perf_counter() - started) * 1000
            if routing is not None:
                service.log(
                    [
                        record(
                            association_id=association_id,
                            env=env,
                            model_name=routing.champion.name,
                            model_version=version,
                            role="champion",
                            inputs=row,
                            score=None,
                            latency_ms=latency_ms,
                            flags=flags,
                            error=str(exc),
                        )
                    ]
                )
            return _json({"detail": f"scoring failed: {exc}", "association_id": association_id}, 500)
        flags += score_flags(score=outcome.score, humility=serve.humility)
        label, fallback = answer(score=outcome.score, flags=flags, threshold=threshold, humility=serve.humility)
        latency_s = time.perf_counter() - started
        service.log(
            [
                record(
                    association_id=association_id,
                    env=env,
                    model_name=service.manager.routing.champion.name,
                    model_version=outcome.version,
                    role=outcome.role,
                    inputs=row,
                    score=outcome.score,
                    latency_ms=latency_s * 1000,
                    flags=flags,
                    fallback=fallback,
                )
            ]
        )
        m = service.metrics
        m.requests.labels(outcome.version, outcome.role, "200").inc()
        m.latency.labels(outcome.version).observe(latency_s)
        for flag in flags:
            m.flags.labels(flag.split(":", 1)[0]).inc()
        return _json(
            {
                "association_id": association_id,
                "score": outcome.score,
                "label": label,
                "model_version": outcome.version,
                "role": outcome.role,
                "flags": flags,
                "fallback": fallback,
            }
        )

    return app
