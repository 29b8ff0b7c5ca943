"""MLflow Model Registry: register the current run's model with its lineage, resolve aliases and
read the deployment state that `pipeline deploy apply` writes.

Serving reads what to serve from here alone (aliases + registered-model tags), never from files.
The shared client lives in `registry_client`, verified download and loading in `artifacts`, what
aliases and deploy tags mean (and the seal of a complete apply) in `registry_state`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.delivery.artifacts import (
    ARTIFACT_HASH_TAG,
    _download,
    tree_sha256,
)
from pipeline.delivery.registry_client import (
    RegistryError,
    _error_code,
    _not_found,
    client,
    request_error,
)
from pipeline.stages.train import MODEL_ARTIFACT

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from pipeline.core.config import Params

__all__ = [
    "DVC_LOCK",
    "DVC_LOCK_TAG",
    "NOT_RUN",
    "REGISTERED_REPORT",
    "RUN_ID_TAG",
    "STATUS_TAGS",
    "actor",
    "file_sha256",
    "lineage_tags",
    "refusals",
    "register",
    "registered_version",
    "report_status",
    "statuses",
    "utc_now",
]

logger = logging.getLogger(__name__)

RUN_ID_TAG = "run.id"
STATUS_TAGS = {"validation": "status.validation", "fairness": "status.fairness", "gate": "status.gate"}
NOT_RUN = "not-run"
REGISTERED_REPORT = "registered.json"
DVC_LOCK = "dvc.lock"
DVC_LOCK_TAG = "dvc.lock.sha256"


# ---- register -------------------------------------------------------------------------------


def report_status(*, path: Path, key: str, required: bool) -> str:
    """One JSON report's boolean field as passed, failed or not-run."""
    from pipeline.core import io

    if not path.is_file():
        if required:
            raise RegistryError(f"{path} not found: run the pipeline (`pipeline run`) before registering")
        return NOT_RUN
    value = io.read_json(path).get(key)
    if not isinstance(value, bool):
        raise RegistryError(f"{path}: field {key!r} must be true or false, found {value!r}")
    return "passed" if value else "failed"


def statuses(*, params: Params) -> dict[str, str]:
    reports = params.paths.reports
    return {
        "validation": report_status(path=reports / "validation" / "validation.json", key="success", required=True),
        "fairness": report_status(path=reports / "fairness.json", key="passed", required=True),
        "gate": report_status(path=reports / "gate.json", key="passed", required=False),
    }


def refusals(status: dict[str, str]) -> list[str]:
    return [f"{check} {value}" for check, value in status.items() if value == "failed"]


def actor() -> str:
    """Who acts: the GitHub actor in a workflow, otherwise the git user."""
    import subprocess

    if os.environ.get("GITHUB_ACTOR"):
        return os.environ["GITHUB_ACTOR"]
    try:
        out = subprocess.run(["git", "config", "user.email"], capture_output=True, text=True, check=False).stdout
    except OSError:
        out = ""
    return out.strip() or os.environ.get("USER", "unknown")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "missing"


def lineage_tags(*, run: dict[str, Any], params_path: Path, status: dict[str, str]) -> dict[str, str]:
    from pipeline.core.tracking import git_commit

    commit, dirty = git_commit()
    # serving.path (onnx|sklearn): the train stage's compilation verdict travels to the version.
    tags = {k: str(v) for k, v in run.items() if k.startswith(("data.", "params.", "env.", "serving."))}
    tags.update(
        {
            "git.commit": commit,
            "git.dirty": str(dirty).lower(),
            "train.git.commit": str(run.get("git.commit", "unknown")),
            "params.file.sha256": file_sha256(params_path),
            "env.uv_lock.sha256": str(run.get("env.uv_lock.sha256") or file_sha256(Path("uv.lock"))),
            DVC_LOCK_TAG: file_sha256(Path(DVC_LOCK)),
            RUN_ID_TAG: str(run["run_id"]),
            "registered.by": actor(),
            "registered.at": utc_now(),
        }
    )
    tags.update({STATUS_TAGS[check]: value for check, value in status.items()})
    return tags


def _logged_model_id(mlflow_client: MlflowClient, *, run_id: str) -> str:
    try:
        run = mlflow_client.get_run(run_id)
    except Exception as exc:
        if _not_found(exc):
            raise RegistryError(
                f"MLflow run {run_id} (reports/run.json) is not in the tracking store at "
                f"{mlflow_client.tracking_uri}: train against this store first"
            ) from exc
        raise request_error(exc, what=f"run {run_id}", uri=mlflow_client.tracking_uri) from exc
    models = mlflow_client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{MODEL_ARTIFACT}'",
    )
    if not models:
        raise RegistryError(f"MLflow run {run_id} logged no model named {MODEL_ARTIFACT!r}")
    return str(models[0].model_id)


def _already_registered(mlflow_client: MlflowClient, *, name: str, run_id: str) -> Any | None:
    """The version of this run, or of the same dvc.lock (same data, code and params hashes: a
    workflow that reproduced the pipeline on a fresh runner must not register a twin).
    """
    try:
        versions = list(mlflow_client.search_model_versions(f"name = '{name}'"))
    except Exception as exc:
        raise request_error(exc, what=name, uri=mlflow_client.tracking_uri) from exc
    lock = file_sha256(Path(DVC_LOCK))
    for mv in sorted(versions, key=lambda v: int(v.version)):
        same_lock = lock != "missing" and (mv.tags or {}).get(DVC_LOCK_TAG) == lock
        if mv.run_id == run_id or same_lock:
            return mv
    return None


def register(*, params: Params, params_path: Path) -> str:
    """Register the model of reports/run.json with lineage tags; returns its version.

    Refuses (registering nothing) when validation or fairness failed or the gate report says
    failed. Registering the same run again returns the existing version.
    """
    from pipeline.core import io

    status = statuses(params=params)
    refused = refusals(status)
    if refused:
        raise RegistryError(f"refusing to register: {', '.join(refused)} (see {params.paths.reports}/)")
    run = io.read_json(params.paths.reports / "run.json")
    run_id = run.get("run_id") if isinstance(run, dict) else None
    if not run_id:
        raise RegistryError(f"{params.paths.reports}/run.json has no run_id: run `pipeline train` first")
    name = params.tracking.registered_model
    mlflow_client = client(params=params)
    existing = _already_registered(mlflow_client, name=name, run_id=run_id)
    if existing is not None:
        logger.info("this model is already registered as %s version %s", name, existing.version)
        _write_registered(params=params, name=name, version=str(existing.version), run_id=str(existing.run_id))
        return str(existing.version)
    model_id = _logged_model_id(mlflow_client, run_id=run_id)
    tags = lineage_tags(run=run, params_path=params_path, status=status)
    try:
        mlflow_client.create_registered_model(name)
    except Exception as exc:
        if _error_code(exc) != "RESOURCE_ALREADY_EXISTS":
            raise request_error(exc, what=f"creating registered model {name}", uri=mlflow_client.tracking_uri) from exc
    mv = mlflow_client.create_model_version(
        name=name, source=f"models:/{model_id}", run_id=run_id, tags=tags, model_id=model_id
    )
    version = str(mv.version)
    try:
        with tempfile.TemporaryDirectory(prefix="register-") as tmp:
            digest = tree_sha256(_download(mlflow_client, name=name, version=version, dst=Path(tmp)))
    except Exception:
        # A version without its hash could never be deployed: remove it rather than leave debris.
        mlflow_client.delete_model_version(name, version)
        raise
    mlflow_client.set_model_version_tag(name, version, ARTIFACT_HASH_TAG, digest)
    logger.info("registered %s version %s (run %s, artifact %s)", name, version, run_id, digest[:12])
    _write_registered(params=params, name=name, version=version, run_id=run_id)
    return version


def _write_registered(*, params: Params, name: str, version: str, run_id: str) -> None:
    # Read by `pipeline deploy propose --version registered` in the next workflow step.
    from pipeline.core import io

    io.write_json({"name": name, "version": version, "run_id": run_id}, params.paths.reports / REGISTERED_REPORT)


def registered_version(*, params: Params) -> str:
    from pipeline.core import io

    data = io.read_json(params.paths.reports / REGISTERED_REPORT)
    if not isinstance(data, dict) or "version" not in data:
        raise RegistryError(f"{params.paths.reports}/{REGISTERED_REPORT} has no version: run `pipeline register`")
    return str(data["version"])
