"""Which models serve: registry or file sources, the routing snapshot and its checked reloads."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from pipeline.core.config import DataSection, Params

logger = logging.getLogger(__name__)

STRATEGIES = ("none", "shadow", "canary")
ERR_NO_MODEL = "no model is loaded yet: see /ready for the reason"


class ServeError(ValueError):
    """The service cannot start: no usable model source or configuration."""


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
    # ONNX bytes admitted by the train stage; the manager decides whether they serve.
    compiled: bytes | None = None


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
    """Production wiring: aliases `<env>-champion` / `<env>-challenger` of the registered model.

    Only sealed states are served: while an apply is part-way (or was killed part-way) the last
    sealed state read stays current, so no half-moved set of aliases and tags ever routes traffic.
    A version the manifest pinned loads only if its artifact hashes to that pin.
    """

    def __init__(self, *, params: Params, env: str) -> None:
        from pipeline.delivery import registry_client

        self.name = params.tracking.registered_model
        self.env = env
        # Refuses a missing store instead of letting MLflow create an empty one at a wrong path.
        registry_client.client(params=params)
        self._sealed: ServingState | None = None
        self._pins: dict[str, str] = {}
        self._in_change = False

    def current_state(self) -> ServingState:
        from pipeline.delivery import registry_state

        try:
            state, pins = registry_state.read_deployment(name=self.name, env=self.env)
        except registry_state.StateInChange as exc:
            if self._sealed is None:
                raise
            if not self._in_change:
                logger.warning("%s; serving the last complete state until it is sealed", exc)
            self._in_change = True
            return self._sealed
        if self._in_change:
            logger.info("the %s deployment is sealed again", self.env)
        self._in_change = False
        self._sealed, self._pins = state_from_registry(state), pins
        return self._sealed

    def load(self, version: str) -> LoadedModelLike:
        from pipeline.delivery import artifacts

        loaded: LoadedModelLike = artifacts.load_model_version(
            name=self.name, version=version, pinned=self._pins.get(version)
        )
        return loaded


class FileSource:
    """One model file as the only champion: local runs and benchmarks without a registry."""

    def __init__(self, *, path: Path, name: str, features: Sequence[str]) -> None:
        self.path, self.name, self.features = path, name, list(features)

    def current_state(self) -> ServingState:
        return ServingState(champion="local")

    def load(self, version: str) -> LoadedModelLike:
        from pipeline.core import io
        from pipeline.delivery.compiled import onnx_beside

        return LocalModel(self.name, version, None, io.load_model(self.path), self.features, onnx_beside(self.path))


def bucket(association_id: str) -> float:
    """A uniform number in [0, 1) fixed by the id: the same caller always lands on the same side."""
    digest = hashlib.blake2b(association_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def assign_role(*, association_id: str, state: ServingState, has_challenger: bool) -> str:
    if state.strategy == "canary" and has_challenger and bucket(association_id) < state.traffic_share:
        return "challenger"
    return "champion"


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

    def __init__(
        self, *, source: ModelSource, data: DataSection, probe: pd.DataFrame, compiled: str = "auto", threads: int = 1
    ) -> None:
        self.source, self.data, self.probe = source, data, probe
        # params serve.compiled and serve.predict_threads: which path may score, on how many threads.
        self.compiled, self.threads = compiled, threads
        self.routing: Routing | None = None
        self.problem: str | None = "models not loaded yet"
        self.reloads = {"swapped": 0, "unchanged": 0, "failed": 0}
        self._cache: dict[str, LoadedModelLike] = {}
        self._lock = threading.Lock()

    def _checked(self, version: str) -> LoadedModelLike:
        if version in self._cache:
            return self._cache[version]
        from pipeline.delivery.compiled import served

        loaded = self.source.load(version)
        missing = sorted(set(self.data.features) - set(loaded.signature_columns))
        extra = sorted(set(loaded.signature_columns) - set(self.data.features))
        if missing or extra:
            raise ServeError(f"signature does not match params data features (missing {missing}, extra {extra})")
        proba = np.asarray(loaded.model.predict_proba(self.probe))
        if proba.shape != (len(self.probe), 2) or not np.all((proba >= 0) & (proba <= 1)):
            raise ServeError(f"predict_proba on a probe row returned {proba.shape}, not probabilities")
        # Checked on scikit-learn first: the compiled path must then agree with it on the probe.
        serving = served(loaded, mode=self.compiled, data=self.data, probe=self.probe, threads=self.threads)
        logger.info("model version %s scores on %s", version, serving.serving_path)
        self._cache[version] = serving
        return serving

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
