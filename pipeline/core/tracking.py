"""MLflow set-up in one place: telemetry off before import, the embedded store by default."""

from __future__ import annotations

import os
import subprocess
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.config import TrackingSection

if TYPE_CHECKING:
    import types

TRACKING_ENV = "MLFLOW_TRACKING_URI"
# MLflow's own basic-auth variables: it sends them with every request but never prints them.
USERNAME_ENV, PASSWORD_ENV = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"


def mlflow_module() -> types.ModuleType:
    """Import mlflow only after its telemetry switch is set (it reads the variable at import)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    if uri := os.environ.get(TRACKING_ENV):
        # A client made without connect() reads the variable itself: it must find no password.
        os.environ[TRACKING_ENV] = move_credentials(uri=uri)
    import mlflow

    return mlflow


def move_credentials(*, uri: str) -> str:
    """`uri` without its user:password@, which moves into MLflow's basic-auth variables.

    MLflow quotes its tracking URI verbatim: in the run links it writes to stdout after every
    run and in every failed request's error. Given the credentials apart, it sends the same
    Authorization header and never has a password in a URL to quote.
    """
    parts = urllib.parse.urlsplit(uri)
    userinfo, at, host = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if parts.scheme not in {"http", "https"} or not at or not colon:
        return uri
    os.environ[USERNAME_ENV] = urllib.parse.unquote(user)
    os.environ[PASSWORD_ENV] = urllib.parse.unquote(password)
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def tracking_uri(section: TrackingSection) -> str:
    return os.environ.get(TRACKING_ENV) or section.uri


def sqlite_path(*, uri: str) -> Path | None:
    """The database file a `sqlite:///` store URI names (relative to the working directory with
    three slashes, absolute with four); None for any other store and for an in-memory one.
    """
    scheme, sep, rest = uri.partition(":///")
    if not sep or scheme.split("+")[0].lower() != "sqlite":
        return None
    database = urllib.parse.unquote(rest.split("?", 1)[0])
    return None if database in {"", ":memory:"} else Path(database)


def connect(section: TrackingSection) -> types.ModuleType:
    """Point mlflow at the team server (MLFLOW_TRACKING_URI) or the embedded sqlite store,
    and make sure the experiment exists with artifacts where params.yaml says.
    """
    mlflow = mlflow_module()
    uri = move_credentials(uri=tracking_uri(section))
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if mlflow.get_experiment_by_name(section.experiment) is None:
        # A remote server chooses its own artifact store; only the embedded one needs a folder.
        location = None if uri.startswith("http") else Path(section.artifact_location).resolve().as_uri()
        mlflow.create_experiment(section.experiment, artifact_location=location)
    mlflow.set_experiment(section.experiment)
    return mlflow


def git_commit() -> tuple[str, bool]:
    """(commit, dirty); ("unknown", True) outside a git checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True
    return commit, bool(status.strip())
