"""Shared fixtures: the demo project's params and data, and a temporary copy of the template.

The template's own tests run on the demo project as shipped (tests/fixtures/demo/ holds its
params.yaml, deploy manifests and model card source), never on the root params.yaml: a team that
retargets the root to its own table keeps a green suite, and tests/project/ judges its data.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path

import pandas as pd
import pytest

from pipeline.core import runner
from pipeline.core.config import Params, load_params
from tests.conftest_servers import mlflow_server, postgres_url  # noqa: F401 - PostgreSQL + mlflow server fixtures

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The demo project's own files; paths inside them stay relative to the repository root, where
# the demo's tables (data/raw/employment_2015.parquet, data/production/) stay in every fork.
DEMO = REPO_ROOT / "tests" / "fixtures" / "demo"
DEMO_PARAMS = DEMO / "params.yaml"
DEMO_FILES = (
    Path("params.yaml"),
    Path("deploy/staging.yaml"),
    Path("deploy/production.yaml"),
    Path("docs/model_card_source.yaml"),
)


def runner_variables(environ: Mapping[str, str]) -> list[str]:
    """What a CI runner leaks into a test run: GitHub's own variables, and a workflow's env that
    would override the Makefile's `VAR ?= default` in every `make` a test starts.
    """
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    overridable = set(re.findall(r"^([A-Z][A-Z0-9_]*) \?=", makefile, flags=re.M))
    return sorted(k for k in environ if k.startswith("GITHUB_") or k in overridable)


@pytest.fixture(autouse=True, scope="session")
def _no_runner_variables() -> Iterator[None]:
    # Tests pin what they need themselves; the same suite must pass on a laptop and on a runner.
    with pytest.MonkeyPatch.context() as patch:
        for key in runner_variables(os.environ):
            patch.delenv(key)
        yield


@cache
def demo_params() -> Params:
    """The demo project's params (frozen, so one shared object is safe)."""
    return load_params(DEMO_PARAMS)


def demo_params_text() -> str:
    return DEMO_PARAMS.read_text(encoding="utf-8")


def demo_data_files(params: Params | None = None) -> list[Path]:
    """The demo's tables the template's tests read, relative to the repository root."""
    params = params or demo_params()
    return sorted({Path(params.data.raw), Path(params.retrain.reference)})


@pytest.fixture(scope="session")
def params() -> Params:
    return demo_params()


@pytest.fixture(scope="session")
def raw_frame(params: Params) -> pd.DataFrame:
    return pd.read_parquet(REPO_ROOT / params.data.raw)


def tool_env(**extra: str) -> dict[str, str]:
    """The environment a stage sees under `make`: the project's tools first, telemetry off."""
    # A developer's team server must not receive the tests' runs.
    env = {k: v for k, v in runner.tool_env().items() if not k.startswith("MLFLOW_TRACKING")}
    env.update(extra)
    return env


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def template_files() -> list[Path]:
    """What a fork gets: tracked files plus new, not ignored ones (so uncommitted work is tested too)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [Path(p) for p in out.split("\0") if p and (REPO_ROOT / p).is_file()]


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def copy_template(dest: Path, *, sample_rows: int) -> Path:
    """A fresh git repository holding the template running the demo project (also in a
    retargeted fork: the demo's files replace the team's), set to a small seeded sample.
    """
    demo_tables = demo_data_files()
    for rel in template_files():
        if rel.parts[0] in {"tests", "benchmarks"} or rel in DEMO_FILES or rel.parts[:2] == ("data", "production"):
            continue
        # A team's own tables (maybe large) are not the demo's: only the demo's are copied.
        if rel.parts[:2] == ("data", "raw") and rel not in demo_tables:
            continue
        _copy(REPO_ROOT / rel, dest / rel)
    for rel in DEMO_FILES:
        _copy(DEMO / rel, dest / rel)
    for rel in demo_tables:
        if not (dest / rel).exists():
            _copy(REPO_ROOT / rel, dest / rel)
    params_file = dest / "params.yaml"
    text = params_file.read_text(encoding="utf-8")
    params_file.write_text(text.replace("sample_rows: 0", f"sample_rows: {sample_rows}", 1), encoding="utf-8")
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.email", "ci@example.invalid"],
        ["git", "config", "user.name", "ci"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "template"],
    ):
        run(cmd, dest)
    return dest


@pytest.fixture(scope="session")
def pipeline_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template in a temporary git repo after one real `dvc repro` on a small sample."""
    repo = copy_template(tmp_path_factory.mktemp("template"), sample_rows=6000)
    run([str(BIN / "dvc"), "repro"], repo)
    return repo


def quick_model_file(params: Params, frame: pd.DataFrame, path: Path, *, rows: int, seed: int) -> Path:
    """The first candidate fitted on a sample and saved: a model of the real kind for tests of
    loading, serving and output, not of quality.
    """
    from pipeline.core import io
    from pipeline.stages.train import build_pipeline

    sample = frame.sample(rows, random_state=seed)
    features = list(params.data.features)
    name = params.train.candidates[0]
    model = build_pipeline(data=params.data, spec=params.train.estimators[name], seed=params.base.seed)
    model.fit(sample[features], sample[params.base.target])
    io.save_model(model, path)
    return path
