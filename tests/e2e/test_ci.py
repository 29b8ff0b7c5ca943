"""`make ci` in a fresh copy of the template: green on the shipped settings, and a failing gate
with reasons when params are changed to a deliberately weak model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.ci import report
from pipeline.core.config import load_params
from tests.conftest import REPO_ROOT, copy_template, tool_env

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
SAMPLE_ROWS = 6000


@pytest.fixture(scope="module")
def ci_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_template(tmp_path_factory.mktemp("ci"), sample_rows=SAMPLE_ROWS)


def _run(cmd: list[str], repo: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH: the copy's own code, not the editable install's, answers `pipeline`.
    return subprocess.run(
        cmd, cwd=repo, env=tool_env(PYTHONPATH=str(repo)), capture_output=True, text=True, check=False
    )


def _git(repo: Path, *args: str) -> None:
    result = _run(["git", *args], repo)
    assert result.returncode == 0, result.stderr


def test_make_ci_passes_on_a_fresh_clone_and_writes_the_report(ci_repo: Path) -> None:
    # `-o env`: the environment is this test run's; never rebuild it from the copy.
    result = _run(["make", "-o", "env", "ci", f"VENV={BIN.parent}"], ci_repo)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    params = load_params(ci_repo / "params.yaml")
    text = (ci_repo / params.paths.reports / "pr_report.md").read_text(encoding="utf-8")
    assert text.startswith(report.COMMENT_MARKER)
    assert "## Verdict: gate PASSED" in text
    gate = json.loads((ci_repo / params.paths.reports / "gate.json").read_text())
    assert gate["passed"]
    assert not gate["first_model"]
    # A fresh clone has no DVC cache: the base commit's model was rebuilt in a worktree.
    assert gate["champion_source"]["kind"] == "file"
    assert "champion of HEAD" in output
    assert "rebuilt" in output


def test_weak_model_fails_the_gate_with_reasons(ci_repo: Path, tmp_path: Path) -> None:
    _git(ci_repo, "add", "-A")
    _git(ci_repo, "commit", "-qm", "first model")
    raw = yaml.safe_load((ci_repo / "params.yaml").read_text(encoding="utf-8"))
    hgb = next(name for name, spec in raw["train"]["estimators"].items() if spec["kind"] == "hist_gradient_boosting")
    # One tree with one split: a stump, far weaker than the committed model.
    raw["train"]["estimators"][hgb].update(max_iter=1, max_leaf_nodes=2)
    raw["train"]["candidates"] = [hgb]
    (ci_repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    params = load_params(ci_repo / "params.yaml")

    result = _run([sys.executable, "-m", "pipeline", "ci", "--no-lint", "--base", "HEAD"], ci_repo)
    assert result.returncode == 1, (result.stdout + result.stderr)[-4000:]
    assert "ci failed: gate" in result.stderr
    text = (ci_repo / params.paths.reports / "pr_report.md").read_text(encoding="utf-8")
    assert "## Verdict: gate FAILED" in text
    assert f"{params.train.primary_metric} " in text
    assert "below the champion" in text
    assert f"train.estimators.{hgb}.max_leaf_nodes" in text
    gate = json.loads((ci_repo / params.paths.reports / "gate.json").read_text())
    assert not gate["passed"]
    assert gate["reasons"]

    # The same steps one by one, as the workflow runs them; the committed model is cached now.
    out = tmp_path / "champion" / "model.skops"
    fetched = _run([sys.executable, "-m", "pipeline", "champion", "fetch", "--rev", "HEAD", "--out", str(out)], ci_repo)
    assert fetched.returncode == 0, fetched.stderr
    assert json.loads(out.with_name(out.name + ".json").read_text())["source"] == "dvc"
    gated = _run([sys.executable, "-m", "pipeline", "gate", "--champion-model", str(out)], ci_repo)
    assert gated.returncode == 1
    assert "gate FAILED" in gated.stdout
    assert "below the champion" in gated.stdout
    md = tmp_path / "pr_report.md"
    reported = _run([sys.executable, "-m", "pipeline", "report", "--out", str(md), "--base", "HEAD"], ci_repo)
    assert reported.returncode == 0, reported.stderr
    assert "## Verdict: gate FAILED" in md.read_text(encoding="utf-8")
    assert ci_repo != REPO_ROOT
