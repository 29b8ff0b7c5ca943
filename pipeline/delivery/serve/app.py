"""The scoring service: champion/challenger routing resolved from registry aliases, input
validation from params, micro-batched scoring, humility flags, Prometheus metrics and a
prediction log written off the request path.

Shape of a request: POST /predict {"association_id": "...", "features": {"AGEP": 42, ...}}.
The association id is optional (one is generated); it keys the sticky canary split and the
later join with labels.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

from pipeline.core.config import DataSection, HumilitySection, Params

if TYPE_CHECKING:
    from pipeline.core.predlog import LogRecord, LogWriter

logger = logging.getLogger(__name__)

STRATEGIES = ("none", "shadow", "canary")
ERR_NO_MODEL = "no model is loaded yet: see /ready for the reason"
ERR_EMPTY_BODY = "empty request body: send a JSON object with a `features` object"
ERR_TOO_LARGE = "request body larger than {limit} bytes"
FLAG_RANGE = "out_of_training_range:{column}"
FLAG_CATEGORY = "unseen_category:{column}"
FLAG_UNCERTAIN = "uncertain_score"


class ServeError(ValueError):
    """The service cannot start: no usable model source or configuration."""


# --------------------------------------------------------------------------- model source contract


class LoadedModelLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def run_id(self) -> str | None: ...
    @property
    def model(self) -> Any: ...
    @property
    def signature_columns(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class ServingState:
    """What the registry says should serve in one environment."""

    champion: str | None
    challenger: str | None = None
    strategy: str = "none"
    traffic_share: float = 0.0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ServeError(f"strategy must be one of {STRATEGIES}, not {self.strategy!r}")
        if not 0 <= self.traffic_share <= 1:
            raise ServeError(f"traffic_share must lie in [0, 1], not {self.traffic_share}")


class ModelSource(Protocol):
    def current_state(self) -> ServingState: ...

    def load(self, version: str) -> LoadedModelLike: ...


@dataclass(frozen=True)
class LocalModel:
    name: str
    version: str
    run_id: str | None
    model: Any
    signature_columns: list[str]


def state_from_registry(state: Any) -> ServingState:
    """Adapt the registry's DeploymentState (champion/challenger may carry a _version suffix)."""

    def pick(*names: str) -> Any:
        for name in names:
            if hasattr(state, name):
                return getattr(state, name)
        return None

    champion, challenger = pick("champion", "champion_version"), pick("challenger", "challenger_version")
    return ServingState(
        champion=None if champion is None else str(champion),
        challenger=None if challenger is None else str(challenger),
        strategy=str(pick("strategy") or "none"),
        traffic_share=float(pick("traffic_share") or 0.0),
    )


class RegistrySource:
    """Production wiring: aliases `<env>-champion` / `<env>-challenger` of the registered model."""

    def __init__(self, *, params: Params, env: str) -> None:
        from pipeline.core.tracking import connect

        self.name = params.tracking.registered_model
        self.env = env
        connect(params.tracking)

    def current_state(self) -> ServingState:
        from pipeline.delivery import registry

        return state_from_registry(registry.deployment_state(name=self.name, env=self.env))

    def load(self, version: str) -> LoadedModelLike:
        from pipeline.delivery import registry

        loaded: LoadedModelLike = registry.load_model_version(name=self.name, version=version)
        return loaded


class FileSource:
    """One model file as the only champion: local runs and benchmarks without a registry."""

    def __init__(self, *, path: Path, name: str, features: Sequence[str]) -> None:
        self.path, self.name, self.features = path, name, list(features)

    def current_state(self) -> ServingState:
        return ServingState(champion="local")

    def load(self, version: str) -> LoadedModelLike:
        from pipeline.core import io

        return LocalModel(self.name, version, None, io.load_model(self.path), self.features)


# --------------------------------------------------------------------------- pure core


def bucket(association_id: str) -> float:
    """A uniform number in [0, 1) fixed by the id: the same caller always lands on the same side."""
    digest = hashlib.blake2b(association_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def assign_role(*, association_id: str, state: ServingState, has_challenger: bool) -> str:
    if state.strategy == "canary" and has_challenger and bucket(association_id) < state.traffic_share:
        return "challenger"
    return "champion"


@dataclass(frozen=True)
class TrainingProfile:
    """What the model saw in training: numeric ranges and the categories present."""

    numeric: Mapping[str, tuple[float, float]]
    categorical: Mapping[str, frozenset[str]]


def training_profile(*, frame: pd.DataFrame, data: DataSection) -> TrainingProfile:
    numeric = {c: (float(frame[c].min()), float(frame[c].max())) for c in data.numeric}
    categorical = {c: frozenset(frame[c].dropna().astype(str).unique()) for c in data.categorical}
    return TrainingProfile(numeric=numeric, categorical=categorical)


def input_flags(*, row: Mapping[str, Any], profile: TrainingProfile) -> list[str]:
    flags = [FLAG_RANGE.format(column=c) for c, (low, high) in profile.numeric.items() if not low <= row[c] <= high]
    flags += [FLAG_CATEGORY.format(column=c) for c, seen in profile.categorical.items() if row[c] not in seen]
    return flags


def score_flags(*, score: float, humility: HumilitySection) -> list[str]:
    low, high = humility.uncertain_band
    return [FLAG_UNCERTAIN] if low <= score <= high else []


def answer(*, score: float, flags: Sequence[str], threshold: float, humility: HumilitySection) -> tuple[int, bool]:
    """(label, fallback used): a flagged prediction takes the fallback label when one is set."""
    if flags and humility.fallback_label is not None:
        return int(humility.fallback_label), True
    return int(score >= threshold), False


def _code(value: Any) -> Any:
    # JSON clients often send codes as numbers; 16 and "16" mean the same ACS code.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def request_model(*, data: DataSection, max_id_chars: int) -> type[BaseModel]:
    """The request schema from params: numeric ranges and category code lists, nothing extra."""
    forbid = ConfigDict(extra="forbid")
    fields: dict[str, Any] = {}
    for column, bounds in data.numeric.items():
        fields[column] = (Annotated[float, Field(ge=bounds.min, le=bounds.max, allow_inf_nan=False, strict=True)], ...)
    for column, codes in data.categorical.items():
        fields[column] = (Annotated[Literal[codes], BeforeValidator(_code)], ...)
    features = create_model("Features", __config__=forbid, **fields)
    model: type[BaseModel] = create_model(
        "PredictRequest",
        __config__=forbid,
        association_id=(str | None, Field(default=None, min_length=1, max_length=max_id_chars)),
        features=(features, ...),
    )
    return model


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False)
    ]


def to_frame(*, rows: Sequence[Mapping[str, Any]], data: DataSection) -> pd.DataFrame:
    columns: dict[str, Any] = {c: np.fromiter((r[c] for r in rows), np.float64, len(rows)) for c in data.numeric}
    columns.update({c: pd.array([r[c] for r in rows], dtype="str") for c in data.categorical})
    return pd.DataFrame(columns)


# --------------------------------------------------------------------------- loaded models


@dataclass(frozen=True)
class Routing:
    """An immutable snapshot: swapping the reference is the atomic alias change."""

    state: ServingState
    champion: LoadedModelLike
    challenger: LoadedModelLike | None


class ModelManager:
    """Holds the routing snapshot; `refresh` re-reads the source and swaps only when every
    model of the new state loaded and passed its checks, so a failure never unloads anything.
    """

    def __init__(self, *, source: ModelSource, data: DataSection, probe: pd.DataFrame) -> None:
        self.source, self.data, self.probe = source, data, probe
        self.routing: Routing | None = None
        self.problem: str | None = "models not loaded yet"
        self.reloads = {"swapped": 0, "unchanged": 0, "failed": 0}
        self._cache: dict[str, LoadedModelLike] = {}
        self._lock = threading.Lock()

    def _checked(self, version: str) -> LoadedModelLike:
        if version in self._cache:
            return self._cache[version]
        loaded = self.source.load(version)
        missing = sorted(set(self.data.features) - set(loaded.signature_columns))
        extra = sorted(set(loaded.signature_columns) - set(self.data.features))
        if missing or extra:
            raise ServeError(f"signature does not match params data features (missing {missing}, extra {extra})")
        proba = np.asarray(loaded.model.predict_proba(self.probe))
        if proba.shape != (len(self.probe), 2) or not np.all((proba >= 0) & (proba <= 1)):
            raise ServeError(f"predict_proba on a probe row returned {proba.shape}, not probabilities")
        self._cache[version] = loaded
        return loaded

    def refresh(self) -> bool:
        """True when the served state matches the source after this call."""
        with self._lock:
            try:
                state = self.source.current_state()
            except Exception as exc:  # any registry outage: keep serving what is loaded
                self.problem = f"registry unreachable, keeping loaded models: {exc}"
                self.reloads["failed"] += 1
                logger.warning("%s", self.problem)
                return False
            if self.routing is not None and self.routing.state == state:
                self.problem = None
                self.reloads["unchanged"] += 1
                return True
            if state.champion is None:
                self.problem = "the registry names no champion for this environment"
                self.reloads["failed"] += 1
                return False
            wanted = [state.champion] + ([state.challenger] if state.challenger and state.strategy != "none" else [])
            try:
                models = [self._checked(v) for v in wanted]
            except Exception as exc:  # a corrupt artifact must never replace a working one
                failed = next(v for v in wanted if v not in self._cache)
                self.problem = f"refused model version {failed}, keeping the loaded models: {exc}"
                self.reloads["failed"] += 1
                logger.error("%s", self.problem)
                return False
            self.routing = Routing(state, models[0], models[1] if len(models) > 1 else None)
            self._cache = {v: self._cache[v] for v in wanted}
            self.problem = None
            self.reloads["swapped"] += 1
            logger.info("serving %s", state)
            return True


# --------------------------------------------------------------------------- micro-batching


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
class _Item:
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
        self._items: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._expect = 1
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="predict", initializer=limit_threads, initargs=(predict_threads,)
        )

    async def submit(self, *, row: dict[str, Any], association_id: str, flags: list[str]) -> Outcome:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._items.append(_Item(row, association_id, flags, future))
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
            if len(batch) == 1 and not self._items:
                # A lone row scores faster inline than through a thread hand-off; with nothing
                # else queued there is no parsing to overlap with it.
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

    def _predict(self, model: LoadedModelLike, items: Sequence[_Item]) -> list[float] | Exception:
        try:
            proba = model.model.predict_proba(to_frame(rows=[i.row for i in items], data=self.data))
            scores = [float(s) for s in np.asarray(proba)[:, 1]]
        except Exception as exc:  # the callers get a 500 each; the service keeps serving
            logger.exception("model %s failed on a batch of %d", model.version, len(items))
            return exc
        if not all(math.isfinite(s) for s in scores):
            return ServeError(f"model {model.version} returned a non-finite score")
        return scores

    def _score_answers(self, routing: Routing, batch: Sequence[_Item]) -> list[Outcome | Exception]:
        out: list[Outcome | Exception] = [ServeError("not scored")] * len(batch)
        for role, model in (("champion", routing.champion), ("challenger", routing.challenger)):
            picked = [i for i, item in enumerate(batch) if item.role == role]
            if not picked or model is None:
                continue
            scores = self._predict(model, [batch[i] for i in picked])
            for n, i in enumerate(picked):
                out[i] = scores if isinstance(scores, Exception) else Outcome(scores[n], model.version, role)
        return out

    def _score_shadow(self, model: LoadedModelLike, batch: Sequence[_Item]) -> tuple[list[float] | Exception, float]:
        started = time.perf_counter()
        scores = self._predict(model, batch)
        return scores, (time.perf_counter() - started) * 1000

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


# --------------------------------------------------------------------------- metrics


class Metrics:
    """One registry per app, so several apps (tests) never collide on metric names."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "serve_requests",
            "Scored requests by model version, role and HTTP status.",
            ["model_version", "role", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "serve_request_latency_seconds",
            "Time from request to answer, per model version.",
            ["model_version"],
            buckets=(0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.errors = Counter("serve_errors", "Refused or failed requests by kind.", ["kind"], registry=self.registry)
        self.flags = Counter(
            "serve_humility_flags", "Humility flags raised, by rule.", ["rule"], registry=self.registry
        )
        self.batch = Histogram(
            "serve_batch_rows",
            "Rows per predict_proba call.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.model = Gauge(
            "serve_model_info", "Loaded model versions by role.", ["role", "version"], registry=self.registry
        )
        self.ready = Gauge("serve_ready", "1 when the served models match the registry.", registry=self.registry)
        self.log_dropped = Gauge("serve_prediction_log_dropped", "Log rows dropped.", registry=self.registry)
        self.log_pending = Gauge("serve_prediction_log_pending", "Log rows queued.", registry=self.registry)


# --------------------------------------------------------------------------- the app


@dataclass
class Service:
    params: Params
    env: str
    manager: ModelManager
    profile: TrainingProfile
    writer: LogWriter | None
    metrics: Metrics = field(default_factory=Metrics)
    batcher: Batcher | None = None
    poll: bool = True

    def log(self, rows: Sequence[LogRecord]) -> None:
        if self.writer is not None:
            self.writer.submit(rows)

    def shadow_rows(self, batch: Sequence[_Item], result: Any, model: LoadedModelLike) -> None:
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
        self.metrics.ready.set(1 if self.manager.problem is None and self.manager.routing else 0)
        self.metrics.model.clear()
        routing = self.manager.routing
        if routing is not None:
            self.metrics.model.labels("champion", routing.champion.version).set(1)
            if routing.challenger is not None:
                role = "shadow" if routing.state.strategy == "shadow" else "challenger"
                self.metrics.model.labels(role, routing.challenger.version).set(1)
        if self.writer is not None:
            self.metrics.log_dropped.set(self.writer.stats.dropped)
            self.metrics.log_pending.set(self.writer.pending())


def _json(content: Any, status: int = 200) -> Response:
    body = json.dumps(content, separators=(",", ":"), allow_nan=False).encode()
    return Response(body, status_code=status, media_type="application/json")


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it exceeds the limit (checked before and while reading)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


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
    probe = to_frame(rows=[_probe_row(profile)], data=params.data)
    service = Service(
        params=params,
        env=env,
        manager=ModelManager(source=source, data=params.data, probe=probe),
        profile=profile,
        writer=writer,
        poll=poll,
    )
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
            if writer is not None:
                await loop.run_in_executor(None, writer.close)

    app = FastAPI(title="pipeline serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service

    @app.get("/health")
    async def health() -> Response:
        return _json({"status": "alive"})

    @app.get("/ready")
    async def ready() -> Response:
        manager = service.manager
        routing = manager.routing
        body: dict[str, Any] = {
            "ready": manager.problem is None and routing is not None,
            "problem": manager.problem,
            "env": env,
        }
        if routing is not None:
            body.update(
                champion=routing.champion.version,
                challenger=None if routing.challenger is None else routing.challenger.version,
                strategy=routing.state.strategy,
                traffic_share=routing.state.traffic_share,
            )
        return _json(body, 200 if body["ready"] else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        service.update_gauges()
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        from pipeline.core.predlog import record

        started = time.perf_counter()
        errors = service.metrics.errors
        body = await _read_body(request, serve.max_body_bytes)
        if body is None:
            errors.labels("too_large").inc()
            return _json({"detail": ERR_TOO_LARGE.format(limit=serve.max_body_bytes)}, 413)
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


def _probe_row(profile: TrainingProfile) -> dict[str, Any]:
    row: dict[str, Any] = {c: (low + high) / 2 for c, (low, high) in profile.numeric.items()}
    row.update({c: min(seen) if seen else "" for c, seen in profile.categorical.items()})
    return row


# --------------------------------------------------------------------------- process


def load_profile(*, params: Params) -> TrainingProfile:
    """From the training split when prepared, else from the raw data it is cut from."""
    from pipeline.core import io

    path = params.paths.prepared / "train.parquet"
    if not path.is_file():
        logger.warning("%s not found: humility ranges come from %s", path, params.data.raw)
        path = params.data.raw
    return training_profile(frame=io.read_table(path), data=params.data)


def listening_socket(*, host: str, port: int) -> Any:
    """A bound socket with TCP_NODELAY set before listen: Linux copies it to every accepted
    connection, so small answers are never held back by Nagle's algorithm.
    """
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run(
    *,
    params: Params,
    env: str,
    host: str,
    port: int,
    source: ModelSource,
    log_url: str | None = None,
) -> None:
    """Serve until interrupted: one uvicorn worker (more workers lose TCP_NODELAY and, on two
    cores, only compete with the batcher).
    """
    import uvicorn

    from pipeline.core.predlog import LogWriter, open_store, resolve_url

    url = resolve_url(configured=params.serve.log.path, override=log_url)
    log = params.serve.log
    writer = LogWriter(
        store=open_store(url), flush_rows=log.flush_rows, flush_seconds=log.flush_seconds, queue_rows=log.queue_rows
    )
    app = create_app(params=params, env=env, source=source, profile=load_profile(params=params), writer=writer)
    sock = listening_socket(host=host, port=port)
    logger.info("serving env %s on http://%s:%s, prediction log %s", env, host, sock.getsockname()[1], url)
    config = uvicorn.Config(
        app,
        workers=1,
        loop="asyncio",
        http="h11",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=30,
    )
    uvicorn.Server(config).run(sockets=[sock])
