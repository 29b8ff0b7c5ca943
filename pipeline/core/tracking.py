"""MLflow set-up in one place: telemetry off before import, the embedded store by default."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.config import TrackingSection

if TYPE_CHECKING:
    import types

TRACKING_ENV = "MLFLOW_TRACKING_URI"


def mlflow_module() -> types.ModuleType:
    """Import mlflow only after its telemetry switch is set (it reads the variable at import)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import mlflow

    return mlflow


def tracking_uri(section: TrackingSection) -> str:
    return os.environ.get(TRACKING_ENV) or section.uri


def connect(section: TrackingSection) -> types.ModuleType:
    """Point mlflow at the team server (MLFLOW_TRACKING_URI) or the embedded sqlite store,
    and make sure the experiment exists with artifacts where params.yaml says.
    """
    mlflow = mlflow_module()
    uri = tracking_uri(section)
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
