"""Content integrity of registered versions: the hash `pipeline register` tags each version's
artifact with, and downloading, verifying and loading a version against that tag and, when the
deploy manifest in git pins one, against that pin.

Serving and deploy only ever use a version whose artifact still hashes to its tag (and its pin),
and only load files inside the verified artifact.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.delivery.registry_client import RegistryError, _model_version, client, one_line

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from sklearn.pipeline import Pipeline

ARTIFACT_HASH_TAG = "artifact.sha256"

ERR_NO_HASH = (
    "model {name} version {version} has no artifact.sha256 tag: it was not registered by "
    "`pipeline register`, so its content cannot be verified"
)
ERR_HASH_MISMATCH = (
    "model {name} version {version}: the artifact's content hash {actual} no longer matches the "
    "registered {expected}; the stored model was changed or damaged"
)
ERR_PIN_MISMATCH = (
    "model {name} version {version}: the artifact hashes to {actual}, but the deploy manifest in git "
    "pins {pinned}; the registry copy was replaced (its tag says {tagged})"
)
ERR_PATH_ESCAPE = (
    "model {name} version {version}: MLmodel flavor {flavor} names {key}: {path!r}, which leaves the "
    "verified artifact directory; refusing to load it"
)
# Flavor settings that name files of the artifact; whatever they name must lie inside it.
PATH_KEYS = frozenset({"pickled_model", "model_path", "data", "path", "code"})


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    run_id: str
    model: Pipeline
    signature_columns: list[str]
    # The train stage's ONNX file when the artifact carries one (covered by the same hash).
    compiled: bytes | None = None


def tree_sha256(root: Path) -> str:
    """One hash over every file below root (relative path + content), independent of walk order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).hexdigest().encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _download(mlflow_client: MlflowClient, *, name: str, version: str, dst: Path) -> Path:
    from pipeline.core.tracking import mlflow_module

    mlflow = mlflow_module()
    # The version's own storage location, not models:/name/version: that route adds a
    # registered_model_meta file to the download, which would change the hash.
    uri = mlflow_client.get_model_version_download_uri(name, version)
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
    except Exception as exc:  # missing files surface as OSError or MlflowException
        raise RegistryError(
            f"model {name} version {version}: cannot download its artifact from {uri}: {one_line(exc)}"
        ) from exc


def verify_version(
    *, name: str, version: str, mlflow_client: MlflowClient | None = None, pinned: str | None = None
) -> str:
    """Check that a version exists and its artifact still hashes to its tag (and to `pinned`, the
    manifest's pin, when given); returns the hash.
    """
    mlflow_client = mlflow_client or client()
    with tempfile.TemporaryDirectory(prefix="verify-") as tmp:
        mv, _ = _verified_download(mlflow_client, name=name, version=str(version), dst=Path(tmp), pinned=pinned)
    return str(mv.tags[ARTIFACT_HASH_TAG])


def _verified_download(
    mlflow_client: MlflowClient, *, name: str, version: str, dst: Path, pinned: str | None
) -> tuple[Any, Path]:
    mv = _model_version(mlflow_client, name=name, version=version)
    expected = (mv.tags or {}).get(ARTIFACT_HASH_TAG)
    if not expected:
        raise RegistryError(ERR_NO_HASH.format(name=name, version=version))
    local = _download(mlflow_client, name=name, version=version, dst=dst)
    actual = tree_sha256(local)
    # The pin first: whoever can rewrite the artifact can rewrite its tag too, but not git.
    if pinned is not None and actual != pinned:
        raise RegistryError(
            ERR_PIN_MISMATCH.format(name=name, version=version, actual=actual, pinned=pinned, tagged=expected)
        )
    if actual != expected:
        raise RegistryError(ERR_HASH_MISMATCH.format(name=name, version=version, actual=actual, expected=expected))
    return mv, local


def _inside(*, root: Path, name: str, version: str, flavors: dict[str, Any]) -> None:
    """Refuse any file setting of any flavor that resolves outside `root` (`..`, absolute, symlink):
    the hash covers only what lies inside, so a file outside is unverified content.
    """
    top = root.resolve()
    for flavor, config in flavors.items():
        for key, value in (config or {}).items() if isinstance(config, dict) else ():
            if key in PATH_KEYS and isinstance(value, str) and not (root / value).resolve().is_relative_to(top):
                raise RegistryError(
                    ERR_PATH_ESCAPE.format(name=name, version=version, flavor=flavor, key=key, path=value)
                )


def load_model_version(*, name: str, version: str, pinned: str | None = None) -> LoadedModel:
    """Download, verify against artifact.sha256 (and `pinned`, the hash the deploy manifest pins
    for this version, when known) and load one version (for serving).

    Raises RegistryError for an unknown version, a hash mismatch, a model file outside the
    artifact or a damaged artifact.
    """
    import yaml

    from pipeline.core.io import ModelFileError, load_model
    from pipeline.delivery.compiled import onnx_in_artifact

    mlflow_client = client()
    with tempfile.TemporaryDirectory(prefix="model-") as tmp:
        mv, local = _verified_download(mlflow_client, name=name, version=str(version), dst=Path(tmp), pinned=pinned)
        try:
            meta = yaml.safe_load((local / "MLmodel").read_text(encoding="utf-8"))
            _inside(root=local, name=name, version=str(version), flavors=meta["flavors"])
            model_file = local / meta["flavors"]["sklearn"]["pickled_model"]
            model = load_model(model_file)
            columns = _signature_columns(local)
            compiled = onnx_in_artifact(local)
        except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError, ModelFileError) as exc:
            raise RegistryError(f"model {name} version {version}: damaged artifact: {one_line(exc)}") from exc
    return LoadedModel(
        name=name,
        version=str(mv.version),
        run_id=str(mv.run_id or ""),
        model=model,
        signature_columns=columns,
        compiled=compiled,
    )


def _signature_columns(local: Path) -> list[str]:
    from mlflow.models import Model

    signature = Model.load(str(local)).signature
    if signature is None:
        raise KeyError("the model has no input signature")
    return [str(c) for c in signature.inputs.input_names()]
