"""Cheap registry workspaces for the deploy tests: a temporary git repo with params.yaml, passing
reports and small sklearn pipelines logged the way train.py logs them (no full pipeline run).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from pipeline.core import io
from pipeline.core.config import Params, load_params
from pipeline.delivery import manifest as manifests
from pipeline.delivery import registry, registry_client
from pipeline.stages.train import MODEL_ARTIFACT, build_pipeline, model_requirements

REPO_ROOT = Path(__file__).resolve().parents[1]
# The demo project as shipped (see tests/conftest.py): also in a fork retargeted to its own table.
DEMO_PARAMS = REPO_ROOT / "tests" / "fixtures" / "demo" / "params.yaml"

with warnings.catch_warnings():
    # mlflow.pyfunc warns once, at its own import, about type hints inside mlflow itself.
    warnings.filterwarnings("ignore", message=".*Any type hint is inferred as AnyType", category=UserWarning)
    from pipeline.core.tracking import mlflow_module

    mlflow_module()
    import mlflow.pyfunc
    import mlflow.sklearn  # noqa: F401


@dataclass(frozen=True)
class Workspace:
    root: Path
    params_path: Path
    params: Params


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def make_workspace(root: Path) -> Workspace:
    """Call with the working directory already at root: params paths are relative."""
    shutil.copy2(DEMO_PARAMS, root / "params.yaml")
    # Read-only shipped data, for the commands that read params data.raw (service smoke, serve).
    (root / "data").symlink_to(REPO_ROOT / "data", target_is_directory=True)
    params = load_params(root / "params.yaml")
    reports = root / params.paths.reports
    io.write_json({"success": True}, reports / "validation" / "validation.json")
    io.write_json({"passed": True}, reports / "fairness.json")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "deployer@example.invalid")
    git(root, "config", "user.name", "deployer")
    (root / ".gitignore").write_text("mlflow.db\nmlartifacts/\nreports/\ndata\nlogs/\n", encoding="utf-8")
    git(root, "add", "params.yaml", ".gitignore")
    git(root, "commit", "-qm", "workspace")
    return Workspace(root=root, params_path=root / "params.yaml", params=params)


def log_model(ws: Workspace, *, rows: int, offset: int) -> str:
    """Fit a small pipeline on `rows` raw rows starting at `offset`, log it like train.py does and
    write reports/run.json; returns the run id.
    """
    from pipeline.core.tracking import connect

    params = ws.params
    frame = pd.read_parquet(REPO_ROOT / params.data.raw).iloc[offset : offset + rows]
    features = list(params.data.features)
    spec = params.train.estimators["logistic_regression"]
    model = build_pipeline(data=params.data, spec=spec, seed=params.base.seed)
    model.fit(frame[features], frame[params.base.target])
    connect(params.tracking)
    import mlflow.sklearn
    from mlflow.models import infer_signature

    example = frame[features].head(5)
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT,
            serialization_format="skops",
            skops_trusted_types=io.SKOPS_TRUSTED_TYPES,
            signature=infer_signature(example, model.predict_proba(example)[:, 1]),
            pip_requirements=model_requirements(),
        )
    run_info = {
        "run_id": run.info.run_id,
        "git.commit": git(ws.root, "rev-parse", "HEAD"),
        "data.raw.md5": io.file_md5(REPO_ROOT / params.data.raw),
        "data.train.md5": f"rows-{offset}-{rows}",
        "params.sha256": "0" * 16,
    }
    io.write_json(run_info, ws.root / params.paths.reports / "run.json")
    return str(run.info.run_id)


def register_new(ws: Workspace, *, rows: int, offset: int) -> str:
    log_model(ws, rows=rows, offset=offset)
    return registry.register(params=ws.params, params_path=ws.params_path)


@contextlib.contextmanager
def two_versions(root: Path, *, rows: int) -> Iterator[Workspace]:
    """Versions 1 and 2 registered in an embedded store under root, the working directory."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        ws = make_workspace(root)
        assert register_new(ws, rows=rows, offset=0) == "1"
        assert register_new(ws, rows=rows, offset=rows) == "2"
        yield ws


def write_manifest(ws: Workspace, env: str, **fields: object) -> Path:
    body = {"model": ws.params.tracking.registered_model, **fields}
    path = ws.root / manifests.manifest_path(params=ws.params, env=env)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body), encoding="utf-8")  # JSON is YAML: the loader sees no difference
    return path


def commit_manifest(ws: Workspace, env: str, message: str, **fields: object) -> str:
    path = write_manifest(ws, env, **fields)
    git(ws.root, "add", str(path.relative_to(ws.root)))
    git(ws.root, "commit", "-q", "--allow-empty", "-m", message)
    return git(ws.root, "rev-parse", "HEAD")


def reset_deployments(ws: Workspace) -> None:
    """Remove every alias and deploy tag, so each test starts from an undeployed registry."""
    client = registry_client.client(params=ws.params)
    name = ws.params.tracking.registered_model
    model = client.get_registered_model(name)
    for alias in model.aliases or {}:
        client.delete_registered_model_alias(name, alias)
    for key in model.tags or {}:
        if key.startswith("deploy."):
            client.delete_registered_model_tag(name, key)
