"""Which model scores: a registered version (by alias or number), downloaded and checked against
its artifact.sha256 tag the way serving loads one, or a local skops file.

For a cluster the verified bytes travel as a `ModelPayload`: each worker hashes them again and
loads the model only when the hash is the one the client verified (`load_payload`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.config import Params
from pipeline.delivery.score.batch import ModelInfo
from pipeline.delivery.score.inputs import CHUNK_BYTES, ScoreError

logger = logging.getLogger(__name__)

MODEL_SUFFIXES = frozenset({".skops"})
FILE_VERSION = "file"
ERR_NO_ALIAS = "model {name} has no alias {alias!r} in the registry at {uri} (its aliases: {known})"
ERR_TAG_MOVED = (
    "model {name} version {version}: its artifact.sha256 tag changed while the artifact was being "
    "verified ({before} -> {after}); nothing was scored"
)


ERR_PAYLOAD_HASH = (
    "model {name} version {version}: the copy {where} hashes to {actual}, not the verified {expected}; "
    "nothing was scored"
)


@dataclass(frozen=True)
class ScoringModel:
    info: ModelInfo
    model: Any
    source: str  # "registry" | "file"
    # The model file, for a model named by its file.
    path: Path | None = None


@dataclass(frozen=True)
class ModelPayload:
    """A verified model's bytes: the registered artifact's files (relative path -> content), or
    the one model file. Picklable, a few MB, sent once to each worker.
    """

    info: ModelInfo
    source: str  # "registry" | "file"
    files: Mapping[str, bytes] = field(repr=False)


def looks_like_file(ref: str) -> bool:
    # Registry aliases hold no slash or dot; a bare number is always a version, even if a file
    # of that name happens to sit in the working directory.
    if ref.isdigit():
        return False
    path = Path(ref)
    return path.suffix.lower() in MODEL_SUFFIXES or "/" in ref or os.sep in ref or path.is_file()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_features(columns: Sequence[str], params: Params, *, what: str) -> None:
    """The model must read exactly params data.features, as the service requires."""
    missing = sorted(set(params.data.features) - set(columns))
    extra = sorted(set(columns) - set(params.data.features))
    if missing or extra:
        raise ScoreError(f"{what} does not read params data.features: it lacks {missing} and reads {extra} besides")


def from_file(path: Path, params: Params) -> ScoringModel:
    from pipeline.core.io import load_model

    model = load_model(path)
    columns = getattr(model, "feature_names_in_", None)
    if columns is not None:
        check_features([str(c) for c in columns], params, what=f"model file {path}")
    if not hasattr(model, "predict_proba"):
        raise ScoreError(f"model file {path} holds a {type(model).__name__}, which has no predict_proba")
    info = ModelInfo(name=path.name, version=FILE_VERSION, sha256=file_sha256(path))
    return ScoringModel(info=info, model=model, source="file", path=path)


def _aliases(mlflow_client: Any, name: str) -> dict[str, str]:
    from pipeline.delivery.registry_client import _not_found, request_error

    try:
        model = mlflow_client.get_registered_model(name)
    except Exception as exc:
        if _not_found(exc):
            raise ScoreError(
                f"registered model {name} does not exist in the registry at {mlflow_client.tracking_uri}"
            ) from exc
        raise request_error(exc, what=name, uri=mlflow_client.tracking_uri) from exc
    return {str(k): str(v) for k, v in (model.aliases or {}).items()}


def resolve_version(ref: str, params: Params, mlflow_client: Any) -> str:
    """A version number as it is; an alias through the registry. A bare role (`champion`,
    `challenger`) that is not itself an alias means that role in params gate.champion_env.
    """
    from pipeline.delivery.registry_state import ROLES, alias

    name = params.tracking.registered_model
    if ref.isdigit():
        return str(int(ref))
    aliases = _aliases(mlflow_client, name)
    if ref in aliases:
        return aliases[ref]
    if ref in ROLES:
        full = alias(env=params.gate.champion_env, role=ref)
        if full in aliases:
            logger.info("%s means %s (params gate.champion_env)", ref, full)
            return aliases[full]
    known = ", ".join(sorted(aliases)) or "none"
    raise ScoreError(ERR_NO_ALIAS.format(name=name, alias=ref, uri=mlflow_client.tracking_uri, known=known))


def from_registry(ref: str, params: Params) -> ScoringModel:
    from mlflow.exceptions import MlflowException

    from pipeline.delivery import registry_client

    mlflow_client = registry_client.client(params=params)
    name = params.tracking.registered_model
    try:
        return _verified(ref, params, mlflow_client)
    except MlflowException as exc:  # what the wrappers below do not already turn into one line
        raise registry_client.request_error(exc, what=f"{name} {ref}", uri=mlflow_client.tracking_uri) from exc


def _verified(ref: str, params: Params, mlflow_client: Any) -> ScoringModel:
    from pipeline.delivery import artifacts, registry_client

    name = params.tracking.registered_model
    version = resolve_version(ref, params, mlflow_client)

    def tag() -> str | None:
        mv = registry_client._model_version(mlflow_client, name=name, version=version)
        return (mv.tags or {}).get(artifacts.ARTIFACT_HASH_TAG)

    # load_model_version checks the content against the tag it reads; reading the tag before and
    # after makes the hash written beside every score the one that was verified.
    before = tag()
    loaded = artifacts.load_model_version(name=name, version=version)
    after = tag()
    if before != after or after is None:
        raise ScoreError(ERR_TAG_MOVED.format(name=name, version=version, before=before, after=after))
    check_features(loaded.signature_columns, params, what=f"model {name} version {version}")
    logger.info("scoring with %s version %s (artifact sha256 %s)", name, loaded.version, after[:12])
    info = ModelInfo(name=name, version=str(loaded.version), sha256=after)
    return ScoringModel(info=info, model=loaded.model, source="registry")


def resolve(ref: str, params: Params) -> ScoringModel:
    """`ref` is a version number when all digits, a model file when it ends in .skops, holds a
    path separator or names a file, else an alias of params tracking.registered_model.
    """
    if looks_like_file(ref):
        return from_file(Path(ref), params)
    return from_registry(ref, params)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _hash(payload: ModelPayload, root: Path) -> str:
    """The artifact's tree hash of the files as written under root, or the model file's sha256."""
    from pipeline.delivery.artifacts import tree_sha256

    if payload.source == "registry":
        return tree_sha256(root)
    (content,) = payload.files.values()
    return hashlib.sha256(content).hexdigest()


def _check(payload: ModelPayload, root: Path, *, where: str) -> None:
    actual = _hash(payload, root)
    if actual != payload.info.sha256:
        info = payload.info
        raise ScoreError(
            ERR_PAYLOAD_HASH.format(
                name=info.name, version=info.version, where=where, actual=actual, expected=info.sha256
            )
        )


def payload(scoring: ScoringModel, params: Params) -> ModelPayload:
    """The verified model's bytes, hashed again here: what leaves for the workers is what was verified."""
    from pipeline.delivery import artifacts, registry_client

    info = scoring.info
    with tempfile.TemporaryDirectory(prefix="score-model-") as tmp:
        root = Path(tmp)
        if scoring.source == "file" and scoring.path is not None:
            files = {scoring.path.name: scoring.path.read_bytes()}
        else:
            mlflow_client = registry_client.client(params=params)
            local = artifacts._download(mlflow_client, name=info.name, version=info.version, dst=root)
            files = _tree(local)
            root = local
        shipped = ModelPayload(info=info, source=scoring.source, files=files)
        _check(shipped, root, where="read for the workers")
    return shipped


def _write(payload: ModelPayload, root: Path) -> None:
    for relative, content in payload.files.items():
        target = root / relative
        if not target.resolve().is_relative_to(root.resolve()):
            raise ScoreError(f"model {payload.info.name}: file {relative!r} leaves the model folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def load_payload(payload: ModelPayload, *, where: str = "on this worker") -> Any:
    """The model, loaded only after its bytes hash to the verified sha256 (on whichever machine
    this runs), through the same trusted-types check as every other load.
    """
    import yaml

    from pipeline.core.io import ModelFileError, load_model
    from pipeline.delivery import artifacts
    from pipeline.delivery.registry_client import RegistryError

    info = payload.info
    with tempfile.TemporaryDirectory(prefix="score-model-") as tmp:
        root = Path(tmp)
        _write(payload, root)
        _check(payload, root, where=where)
        if payload.source == "file":
            (name,) = payload.files
            return load_model(root / name)
        try:
            meta = yaml.safe_load((root / "MLmodel").read_text(encoding="utf-8"))
            artifacts._inside(root=root, name=info.name, version=info.version, flavors=meta["flavors"])
            return load_model(root / meta["flavors"]["sklearn"]["pickled_model"])
        except (OSError, KeyError, TypeError, yaml.YAMLError, ModelFileError, RegistryError) as exc:
            raise ScoreError(f"model {info.name} version {info.version}: damaged artifact {where}: {exc}") from exc
