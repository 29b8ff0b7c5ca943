"""The MLflow registry client the delivery modules share: fail-fast HTTP settings, the errors they
raise, how MLflow's error codes are read, and the store checks that turn a missing, locked,
corrupt or unreachable store into one clear line instead of a traceback or a fresh empty store.

Kept apart from `registry` so that `artifacts` can use it while `registry` builds on both.
"""

from __future__ import annotations

import os
import re
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

    def __init__(self, message: str) -> None:
        from pipeline.core.redact import redact

        # Its texts quote the tracking URI and MLflow's own errors, which quote it too; the
        # gate report and the PR page copy them, so the password must go before anyone does.
        super().__init__(redact(message))


class RegistryUnavailable(RegistryError):
    """The store itself cannot be used: missing, locked, corrupt or unreachable (commands exit 2)."""


ERR_STORE_MISSING = (
    "the registry store {uri} does not exist ({path} not found); nothing was created: point params "
    "tracking.uri or MLFLOW_TRACKING_URI at the existing store"
)
ERR_STORE_EMPTY = "the registry store {uri} is an empty file ({path}), not an MLflow database; nothing was written"
ERR_STORE_NOT_MLFLOW = "the registry store {uri} ({path}) holds no MLflow registry tables; nothing was written"
ERR_STORE_LOCKED = (
    "the registry store {uri} is locked by another process holding a write transaction; "
    "retry when that process has finished"
)
ERR_STORE_CORRUPT = "the registry store {uri} is not a readable sqlite database ({detail}); restore it from a backup"
ERR_STORE_UNREACHABLE = "cannot reach the registry at {uri} ({detail}); check the server and MLFLOW_TRACKING_URI"
ERR_REQUEST = "registry request for {what} failed: {detail}"
# How long the store check waits for another process's write transaction (sqlite's own default).
STORE_BUSY_SECONDS = 5.0


def fail_fast() -> None:
    for key, value in FAIL_FAST_ENV.items():
        os.environ.setdefault(key, value)


def one_line(exc: BaseException) -> str:
    """The first line of an error: SQLAlchemy appends the SQL and a link, which a CLI line must not carry."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return first or type(exc).__name__


def _chain(exc: BaseException) -> list[BaseException]:
    links: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in links and len(links) < 20:
        links.append(link)
        link = link.__cause__ or link.__context__
    return links


def _connection_detail(link: BaseException) -> str | None:
    """Why a request never got an answer, when `link` says so (requests wraps urllib3's errors)."""
    import sys

    requests = sys.modules.get("requests")
    if requests is None:
        return None
    if isinstance(link, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(link, requests.exceptions.RetryError):
        return "the server kept answering with errors"
    if isinstance(link, requests.exceptions.ConnectionError):
        errno_text = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(link))
        return errno_text.group(1).strip().lower() if errno_text else "connection failed"
    return None


def store_fault(exc: BaseException, *, uri: str) -> RegistryUnavailable | None:
    """The store-level fault behind `exc` (locked, corrupt, unreachable) as one clear error, or None
    when `exc` is an ordinary answer (unknown model, refused request).
    """
    import sqlite3

    links = _chain(exc)
    for link in links:
        if isinstance(link, sqlite3.OperationalError) and "locked" in str(link).lower():
            return RegistryUnavailable(ERR_STORE_LOCKED.format(uri=uri))
        if isinstance(link, sqlite3.DatabaseError):
            return RegistryUnavailable(ERR_STORE_CORRUPT.format(uri=uri, detail=one_line(link)))
    for link in links:
        detail = _connection_detail(link)
        if detail is not None:
            return RegistryUnavailable(ERR_STORE_UNREACHABLE.format(uri=uri, detail=detail))
    for link in links:
        # A database URI used directly (postgresql://...): the driver could not connect.
        if type(link).__name__ == "OperationalError" and type(link).__module__.startswith("sqlalchemy"):
            return RegistryUnavailable(ERR_STORE_UNREACHABLE.format(uri=uri, detail=one_line(link)))
    return None


def request_error(exc: BaseException, *, what: str, uri: str) -> RegistryError:
    """The error to raise for a failed registry request: the store's fault when there is one."""
    return store_fault(exc, uri=uri) or RegistryError(ERR_REQUEST.format(what=what, detail=one_line(exc)))


def check_store(*, uri: str) -> None:
    """Refuse a sqlite store that is missing, empty, unreadable or not MLflow's, before MLflow
    opens it: MLflow creates a fresh database at any path it is given, so a mistyped path or an
    unmounted volume would otherwise look like a registry with no models.
    """
    import sqlite3

    from pipeline.core.tracking import sqlite_path

    path = sqlite_path(uri=uri)
    if path is None:
        return
    if not path.is_file():
        raise RegistryUnavailable(ERR_STORE_MISSING.format(uri=uri, path=path))
    if path.stat().st_size == 0:
        raise RegistryUnavailable(ERR_STORE_EMPTY.format(uri=uri, path=path))
    try:
        # Read-only: the check itself must never create or change anything.
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=STORE_BUSY_SECONDS)
        try:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'registered_models'"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        corrupt = RegistryUnavailable(ERR_STORE_CORRUPT.format(uri=uri, detail=one_line(exc)))
        raise (store_fault(exc, uri=uri) or corrupt) from exc
    if found is None:
        raise RegistryUnavailable(ERR_STORE_NOT_MLFLOW.format(uri=uri, path=path))


def current_uri() -> str:
    """The store the registry client in this process talks to."""
    from pipeline.core.tracking import mlflow_module

    return str(mlflow_module().get_tracking_uri())


def client(*, params: Params | None = None) -> MlflowClient:
    """A registry client with fail-fast HTTP settings; with params, tracking is pointed at the
    configured store first (MLFLOW_TRACKING_URI wins, as everywhere).
    """
    from pipeline.core.tracking import connect, mlflow_module, tracking_uri

    fail_fast()
    if params is not None:
        uri = tracking_uri(params.tracking)
        check_store(uri=uri)
        try:
            connect(params.tracking)
        except Exception as exc:
            fault = store_fault(exc, uri=uri)
            if fault is None:
                raise
            raise fault from exc
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
        raise request_error(exc, what=f"{name} version {version}", uri=mlflow_client.tracking_uri) from exc
