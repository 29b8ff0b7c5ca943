"""The MLflow registry client the delivery modules share: fail-fast HTTP settings, the error they
raise, and how MLflow's error codes are read.

Kept apart from `registry` so that `artifacts` can use it while `registry` builds on both.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from pipeline.core.config import Params

# Fail-fast defaults for commands: MLflow's own (7 retries, backoff 2, timeout 120 s) make an
# unreachable server look like a hang for about four minutes. setdefault: the caller's values win.
FAIL_FAST_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    # Downloads print a tqdm bar per file on stderr; our commands report what matters themselves.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}

ERR_UNKNOWN_VERSION = "model {name} version {version} does not exist in the registry at {uri}"


class RegistryError(ValueError):
    """The registry refused a request, or holds something we will not serve."""


def fail_fast() -> None:
    for key, value in FAIL_FAST_ENV.items():
        os.environ.setdefault(key, value)


def client(*, params: Params | None = None) -> MlflowClient:
    """A registry client with fail-fast HTTP settings; with params, tracking is pointed at the
    configured store first (MLFLOW_TRACKING_URI wins, as everywhere).
    """
    from pipeline.core.tracking import connect, mlflow_module

    fail_fast()
    if params is not None:
        connect(params.tracking)
    mlflow = mlflow_module()
    return mlflow.MlflowClient()


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "error_code", ""))


def _not_found(exc: Exception) -> bool:
    # MLflow answers an unknown alias with INVALID_PARAMETER_VALUE, an unknown version or model
    # with RESOURCE_DOES_NOT_EXIST.
    return _error_code(exc) in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}


def _model_version(mlflow_client: MlflowClient, *, name: str, version: str) -> Any:
    try:
        return mlflow_client.get_model_version(name, str(version))
    except Exception as exc:
        if _not_found(exc):
            raise RegistryError(
                ERR_UNKNOWN_VERSION.format(name=name, version=version, uri=mlflow_client.tracking_uri)
            ) from exc
        raise RegistryError(f"registry request for {name} version {version} failed: {exc}") from exc
