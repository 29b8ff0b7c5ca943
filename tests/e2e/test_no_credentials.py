"""No command prints, logs or writes a credential. A password is planted where a team's CI
secrets put it (MLFLOW_TRACKING_URI and PREDICTION_LOG_URL, user:password@ in both), the
commands the workflows run are run against a real MLflow server and PostgreSQL, and the
password must appear in none of their output and in no file under the working copy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd
import pytest

from pipeline.core.config import load_params
from pipeline.core.redact import MASK
from pipeline.core.runner import stop_group
from pipeline.delivery.loadgen import wait_until_ok
from tests.conftest import REPO_ROOT, copy_template, tool_env
from tests.conftest_servers import free_port

pytestmark = pytest.mark.e2e

PASSWORD = "Pl4ntedS3cret"
# Its own registered model: the session's MLflow server is shared with the other team tests,
# and the gate must not find a version 1 of production's model there.
MODEL = "no-credentials"
SAMPLE_ROWS = 6000
ENV = "staging"
REQUESTS = 20
READY_SECONDS = 120


@dataclass
class Team:
    repo: Path
    env: dict[str, str]
    tracking_host: str
    outputs: list[tuple[str, str]] = field(default_factory=list)

    def run(
        self, *args: str, expect: int | None = 0, extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`python -m pipeline ARGS` in the working copy; its output is kept for the scan."""
        cmd = [sys.executable, "-m", "pipeline", *args]
        result = subprocess.run(
            cmd, cwd=self.repo, env={**self.env, **(extra or {})}, capture_output=True, text=True, check=False
        )
        self.outputs.append((" ".join(args), result.stdout + result.stderr))
        if expect is not None:
            assert result.returncode == expect, f"{' '.join(args)}: {result.returncode}\n{result.stderr[-3000:]}"
        return result


def _with_password(url: str, user: str) -> str:
    scheme, rest = url.split("://", 1)
    rest = rest.split("@", 1)[-1]  # the fixture's URL may name a user already
    return f"{scheme}://{user}:{PASSWORD}@{rest}"


def _leaks(team: Team) -> list[str]:
    """Every command output and file in the working copy that holds the password (.git is left
    out: none of these commands commits).
    """
    found = [f"output of `{cmd}`" for cmd, text in team.outputs if PASSWORD in text]
    for path in sorted(team.repo.rglob("*")):
        if ".git" in path.relative_to(team.repo).parts or not path.is_file():
            continue
        if PASSWORD.encode() in path.read_bytes():
            found.append(str(path.relative_to(team.repo)))
    return found


@pytest.fixture(scope="module")
def team(mlflow_server: str, postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Team:
    repo = copy_template(tmp_path_factory.mktemp("no-credentials"), sample_rows=SAMPLE_ROWS)
    for name in ("params.yaml", "deploy/staging.yaml", "deploy/production.yaml"):
        path = repo / name
        path.write_text(path.read_text(encoding="utf-8").replace("employment-ma", MODEL), encoding="utf-8")
    for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", "own model name"]):
        subprocess.run(cmd, cwd=repo, capture_output=True, check=True)
    env = tool_env(
        # The copy's own code answers `python -m pipeline`, as in the other template tests.
        PYTHONPATH=str(repo),
        MLFLOW_TRACKING_URI=_with_password(mlflow_server, "ci-bot"),
        # Trust authentication: the server accepts any password, so the planted one works.
        PREDICTION_LOG_URL=_with_password(postgres_url, "postgres"),
        GITHUB_STEP_SUMMARY=str(repo / "step_summary.md"),
        GITHUB_OUTPUT=str(repo / "github_output.txt"),
    )
    team = Team(repo=repo, env=env, tracking_host=mlflow_server.split("://", 1)[1])
    # The CD workflow's `make run`: the train stage logs to the server.
    team.run("run")
    return team


def test_the_team_workflow_commands_never_show_the_password(team: Team, tmp_path: Path) -> None:
    params = load_params(team.repo / "params.yaml")
    _, ran = team.outputs[0]
    # MLflow prints a link to every run it logs; the summary names the tracking server.
    assert f"http://{team.tracking_host}/#/experiments/" in ran
    assert f"browse with: http://{MASK}@{team.tracking_host}" in ran

    # The production manifest names version 1, which this fresh server does not hold yet: the
    # gate falls back to the given file and gate.json says why, quoting the registry.
    champion = tmp_path / "champion.skops"
    shutil.copyfile(team.repo / params.paths.model, champion)
    team.run("gate", "--champion-model", str(champion))
    gate = json.loads((team.repo / params.paths.reports / "gate.json").read_text(encoding="utf-8"))
    assert "unavailable" in gate["champion_source"]["note"]
    team.run("report", "--base", "HEAD")
    report = (team.repo / params.paths.reports / "pr_report.md").read_text(encoding="utf-8")
    assert f"(http://{MASK}@{team.tracking_host}/#/runs/" in report

    team.run("register")
    version = str(json.loads((team.repo / params.paths.reports / "registered.json").read_text())["version"])
    team.run("deploy", "propose", "--env", ENV, "--version", "registered")
    team.run("deploy", "plan", "--env", ENV)
    team.run("deploy", "apply", "--env", ENV)
    team.run("lineage", version)
    team.run("lineage", version, "--json")

    _serve_a_few_requests(team, tmp_path=tmp_path, raw=pd.read_parquet(REPO_ROOT / params.data.raw))
    # Too few rows for a verdict, maybe: the check still reads the log through the URL.
    team.run("drift", "--log-url", team.env["PREDICTION_LOG_URL"], "--env", ENV, "--no-plots", expect=None)
    team.run("canary", "analyze", "--env", ENV)

    assert _leaks(team) == []


def _serve_a_few_requests(team: Team, *, tmp_path: Path, raw: pd.DataFrame) -> None:
    params = load_params(team.repo / "params.yaml")
    port = free_port()
    out_path = tmp_path / "serve.out"
    cmd = [sys.executable, "-m", "pipeline", "serve", "--env", ENV, "--port", str(port)]
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=team.repo, env=team.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_ok(url=f"http://127.0.0.1:{port}/ready", timeout=READY_SECONDS, process=proc)
        features = list(params.data.features)
        for row in raw[features].head(REQUESTS).to_dict(orient="records"):
            body = {"features": {k: (float(v) if k in params.data.numeric else str(v)) for k, v in row.items()}}
            assert httpx.post(f"http://127.0.0.1:{port}/predict", json=body, timeout=30).status_code == 200
    finally:
        stop_group(proc)
    text = out_path.read_text(encoding="utf-8", errors="replace")
    team.outputs.append(("serve", text))
    # The start line names the prediction log, with the password masked.
    assert "prediction log postgresql+psycopg2://" + MASK + "@" in text


def test_failing_commands_name_the_url_but_not_the_password(team: Team) -> None:
    dead = f"127.0.0.1:{free_port()}"
    unreachable = {
        "MLFLOW_TRACKING_URI": f"http://ci-bot:{PASSWORD}@{dead}",
        # One attempt: the errors are the point, not MLflow's patience.
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    }
    # An unreachable store is a fault (exit 2), not a refusal.
    refused = team.run("register", expect=2, extra=unreachable)
    assert dead in refused.stderr
    # The gate's fallback note quotes the registry's error into gate.json.
    params = load_params(team.repo / "params.yaml")
    champion = team.repo / params.paths.model
    team.run("gate", "--champion-model", str(champion), extra=unreachable)
    assert dead in (team.repo / params.paths.reports / "gate.json").read_text(encoding="utf-8")
    team.run("report", "--base", "HEAD", extra=unreachable)

    log_db = f"postgresql+psycopg2://postgres:{PASSWORD}@{dead}/mlflow"
    team.run("drift", "--log-url", log_db, "--env", ENV, expect=2)
    unsupported = team.run("drift", "--log-url", f"mysql://root:{PASSWORD}@{dead}/log", "--env", ENV, expect=2)
    assert f"mysql://{MASK}@{dead}" in unsupported.stderr

    assert _leaks(team) == []
