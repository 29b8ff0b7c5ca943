"""`pipeline preflight`: the first step of each workflow job checks that what the job needs is set
and reachable, and stops in one line naming the secret or variable to set.

A runner is a fresh machine per job: an MLflow store, a DVC cache or a prediction log in the
checkout is thrown away with it. So the embedded sqlite store (params tracking.uri) stands in for
the team's server only when the run says it is a demo (`--demo`, or the repository variable
DEMO_RUN mapped into the job's env), and preflight says so; otherwise a missing secret stops the
job before any work, instead of registering into a file nobody will see again.
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline.core.config import Params
from pipeline.core.redact import redact

DEMO_ENV = "DEMO_RUN"
TRACKING_ENV = "MLFLOW_TRACKING_URI"
USERNAME_ENV, PASSWORD_ENV, TOKEN_ENV = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"
LOG_ENV = "PREDICTION_LOG_URL"
BATCH_ENV = "DRIFT_CURRENT"
TRUE = frozenset({"1", "true", "yes", "on"})
# No retries and a short timeout: a preflight that waits minutes for a dead server defeats itself.
FAIL_FAST = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
LOG_TIMEOUT_SECONDS = 5

# What each job of each workflow needs. Jobs not listed (lint, tests, smoke, report) need no state.
NEEDS: dict[str, dict[str, tuple[str, ...]]] = {
    "ci": {"pipeline": ("dvc",), "gate": ("tracking", "dvc")},
    "cd": {"release": ("tracking", "dvc"), "production": ("tracking",), "analyze": ("tracking", "log")},
    "drift": {"check": ("tracking", "dvc", "log"), "pr": ("token",), "alert": ("token",)},
}
DEFAULT_JOB = {"ci": "gate", "cd": "release", "drift": "check"}
# The drift workflow's two GitHub tokens: a PR opened with GITHUB_TOKEN would trigger no CI.
TOKENS = {("drift", "pr"): "RETRAIN_TOKEN", ("drift", "alert"): "GITHUB_TOKEN"}

DEMO_HINT = f"or mark the run as a demo (repository variable {DEMO_ENV}=true; its state is thrown away with the runner)"
ERR_NO_TRACKING = (
    f"{TRACKING_ENV} is not set: add the repository secret {TRACKING_ENV} (the team's MLflow server, "
    f"https://...) {DEMO_HINT}"
)
ERR_LOCAL_TRACKING = (
    f"{TRACKING_ENV} names a store inside this checkout ({{uri}}), which is thrown away with the runner: "
    f"point it at the team's MLflow server {DEMO_HINT}"
)
ERR_MISSING_STORE = f"{TRACKING_ENV} names {{uri}}, which does not exist on this runner"
ERR_LOGIN = (
    f"the MLflow server at {{uri}} asks for a login: add the secrets {USERNAME_ENV} and {PASSWORD_ENV} "
    "(or MLFLOW_TRACKING_TOKEN)"
)
ERR_BAD_LOGIN = f"the MLflow server at {{uri}} refused the login in {USERNAME_ENV} / {PASSWORD_ENV}: check both secrets"
ERR_DENIED = f"the MLflow server at {{uri}} denies the account in {USERNAME_ENV} ({{detail}}): grant it READ"
ERR_UNREACHABLE = f"cannot reach the MLflow server at {{uri}} ({{detail}}): check the secret {TRACKING_ENV}"
ERR_NO_REMOTE = (
    "no DVC remote: set the repository variable DVC_REMOTE_URL (s3://, gs://, azure:// or a folder) or "
    f"commit one in .dvc/config (`dvc remote add -d storage <url>`), {DEMO_HINT}"
)
ERR_NO_LOG = f"{LOG_ENV} is not set: add the secret {LOG_ENV} (postgresql://... of the service's prediction log)"
ERR_LOG_UNREACHABLE = f"cannot reach the prediction log {{url}} ({{detail}}): check the secret {LOG_ENV}"
ERR_LOG_MISSING = f"{LOG_ENV} names {{url}}, which is not on this runner: use the service's PostgreSQL log"
ERR_WORKFLOW = "unknown workflow {workflow!r}: one of {choices}"
ERR_JOB = "workflow {workflow} has no job {job!r} that preflight knows: one of {choices}"


class PreflightError(RuntimeError):
    """Something a job needs is missing or unreachable; the message is one line naming it."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(redact(message).split()))


def demo_mode(*, flag: bool = False) -> bool:
    """True when the command was given --demo or the job's env says DEMO_RUN=true."""
    return flag or os.environ.get(DEMO_ENV, "").strip().lower() in TRUE


def needs(*, workflow: str, job: str | None) -> tuple[str, tuple[str, ...]]:
    """(job, what it needs); refuses an unknown workflow or job."""
    if workflow not in NEEDS:
        raise PreflightError(ERR_WORKFLOW.format(workflow=workflow, choices=", ".join(NEEDS)))
    chosen = job or DEFAULT_JOB[workflow]
    if chosen not in NEEDS[workflow]:
        raise PreflightError(ERR_JOB.format(workflow=workflow, job=chosen, choices=", ".join(NEEDS[workflow])))
    return chosen, NEEDS[workflow][chosen]


def _local_store(uri: str) -> Path | None:
    """The path of a store on this machine (sqlite file, file: folder, bare path); None for a server."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme.split("+")[0] == "sqlite":
        return Path(urllib.parse.unquote(uri.partition(":///")[2].split("?", 1)[0]))
    if parts.scheme == "file":
        return Path(urllib.parse.unquote(parts.path))
    if uri.split(":", maxsplit=1)[0] in {"databricks", "databricks-uc", "uc"}:
        return None
    return Path(uri) if not parts.scheme else None


def _inside(path: Path, root: Path) -> bool:
    return not path.is_absolute() or path.resolve().is_relative_to(root.resolve())


@contextlib.contextmanager
def _fail_fast() -> Iterator[None]:
    # The caller's own values win; ours are gone again afterwards.
    saved = {key: os.environ.get(key) for key in FAIL_FAST}
    for key, value in FAIL_FAST.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, before in saved.items():
            if before is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = before


def _has_login(uri: str) -> bool:
    userinfo = urllib.parse.urlsplit(uri).netloc.rpartition("@")[0]
    return bool(userinfo or os.environ.get(USERNAME_ENV) or os.environ.get(TOKEN_ENV))


def _short(exc: Exception) -> str:
    """The cause of a failed request in a few words, not urllib3's nested retry story."""
    text = " ".join(str(exc).split())
    for needle in ("Connection refused", "timed out", "Name or service not known", "No route to host"):
        if needle.lower() in text.lower():
            return needle.lower()
    return text[:200]


def probe_tracking(uri: str) -> None:
    """One cheap authenticated request to the tracking server, no retries; raises PreflightError."""
    from pipeline.core.tracking import mlflow_module, move_credentials

    shown = redact(uri)
    login = _has_login(uri)
    mlflow = mlflow_module()
    with _fail_fast():
        try:
            mlflow.MlflowClient(tracking_uri=move_credentials(uri=uri)).search_experiments(max_results=1)
        except Exception as exc:  # MLflow raises its own type, requests' or a driver's: all are "unusable"
            code = str(getattr(exc, "error_code", ""))
            if code == "UNAUTHENTICATED":
                raise PreflightError((ERR_BAD_LOGIN if login else ERR_LOGIN).format(uri=shown)) from exc
            if code == "PERMISSION_DENIED":
                raise PreflightError(ERR_DENIED.format(uri=shown, detail=_short(exc))) from exc
            raise PreflightError(ERR_UNREACHABLE.format(uri=shown, detail=_short(exc))) from exc


def check_tracking(*, params: Params, demo: bool, root: Path) -> str:
    uri = os.environ.get(TRACKING_ENV, "").strip()
    if not uri:
        if demo:
            return f"{TRACKING_ENV} not set: demo run on the embedded store {params.tracking.uri}, thrown away with the runner"
        raise PreflightError(ERR_NO_TRACKING)
    local = _local_store(uri)
    if local is not None:
        if _inside(local, root) and not demo:
            raise PreflightError(ERR_LOCAL_TRACKING.format(uri=redact(uri)))
        if not _inside(local, root) and not local.exists():
            raise PreflightError(ERR_MISSING_STORE.format(uri=redact(uri)))
        return f"{TRACKING_ENV}: local store {redact(uri)}" + (" (demo run)" if demo else "")
    probe_tracking(uri)
    return f"{TRACKING_ENV}: {redact(uri)} answers" + (" (logged in)" if _has_login(uri) else "")


def check_dvc(*, demo: bool, root: Path) -> str:
    from pipeline.core import dvc_remote

    try:
        name = dvc_remote.default_remote(root=root)
        if name is None:
            if demo:
                return "no DVC remote: demo run, outputs come from the actions cache or are rebuilt"
            raise PreflightError(ERR_NO_REMOTE)
        dvc_remote.require_remote(root=root)
    except dvc_remote.RemoteError as exc:
        raise PreflightError(str(exc)) from exc
    return f"DVC remote {name}: {dvc_remote.remotes(root=root).get(name, '?')}"


def probe_log(url: str) -> None:
    """Connect to the PostgreSQL log and run SELECT 1 (nothing is created); a file log must exist."""
    shown = redact(url)
    if not url.startswith(("postgresql://", "postgres://", "postgresql+psycopg2://")):
        path = Path(url.removeprefix("sqlite:///"))
        if "://" in url and not url.startswith("sqlite:///"):
            raise PreflightError(f"{LOG_ENV} is not a postgresql:// URL, sqlite:/// URL or path: {shown}")
        if not path.is_file():
            raise PreflightError(ERR_LOG_MISSING.format(url=shown))
        return
    import psycopg2

    try:
        conn = psycopg2.connect(
            url.replace("postgresql+psycopg2://", "postgresql://", 1), connect_timeout=LOG_TIMEOUT_SECONDS
        )
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        finally:
            conn.close()
    except psycopg2.Error as exc:
        # libpq adds hint lines and may quote the connection string: one redacted line.
        detail = " ".join(str(exc).split())[:200]
        raise PreflightError(ERR_LOG_UNREACHABLE.format(url=shown, detail=detail)) from exc


def check_log(*, workflow: str, demo: bool) -> str:
    url = os.environ.get(LOG_ENV, "").strip()
    if url:
        probe_log(url)
        return f"{LOG_ENV}: {redact(url)} answers"
    batch = os.environ.get(BATCH_ENV, "").strip()
    if workflow == "drift" and batch:
        return f"{LOG_ENV} not set: the batch is the file in {BATCH_ENV} ({batch})"
    if demo:
        return f"{LOG_ENV} not set: demo run, batches from params retrain.production_dir"
    hint = f", or name a batch file in the repository variable {BATCH_ENV}" if workflow == "drift" else ""
    raise PreflightError(f"{ERR_NO_LOG}{hint}, {DEMO_HINT}")


def run(
    *,
    workflow: str,
    job: str | None,
    params: Params,
    demo: bool = False,
    root: Path = Path("."),
    require_token: Callable[[str], object] | None = None,
) -> list[str]:
    """One line per thing checked; raises PreflightError at the first that is missing or unreachable.

    `require_token(name)` checks a GitHub token variable (the drift workflow's own check, passed in
    by the command so this wing needs nothing from the one above it).
    """
    chosen, wanted = needs(workflow=workflow, job=job)
    lines = [f"preflight {workflow}/{chosen}" + (" (demo run)" if demo else "")]
    for need in wanted:
        if need == "tracking":
            lines.append(check_tracking(params=params, demo=demo, root=root))
        elif need == "dvc":
            lines.append(check_dvc(demo=demo, root=root))
        elif need == "log":
            lines.append(check_log(workflow=workflow, demo=demo))
        elif need == "token":
            name = TOKENS[(workflow, chosen)]
            if require_token is None:
                raise PreflightError(f"no token check available for {name}")
            require_token(name)
            lines.append(f"{name} is set")
    return lines
