"""`pipeline preflight`: each missing secret stops the job in one line naming it (exit 2), a demo
run says it uses the embedded store instead, an unreachable or login-guarded tracking server is
named in seconds, and no credential is ever printed.
"""

from __future__ import annotations

import base64
import http.server
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.ci import preflight
from pipeline.cli import app
from pipeline.core import dvc_remote
from pipeline.core.config import Params
from pipeline.core.runner import tool, tool_env
from tests.conftest import DEMO_PARAMS

pytestmark = pytest.mark.unit

SECRET = "s3cret-pw"
VARIABLES = (
    preflight.DEMO_ENV,
    preflight.TRACKING_ENV,
    preflight.USERNAME_ENV,
    preflight.PASSWORD_ENV,
    preflight.TOKEN_ENV,
    preflight.LOG_ENV,
    preflight.BATCH_ENV,
    dvc_remote.ENV_URL,
    "RETRAIN_TOKEN",
    "GITHUB_TOKEN",
    *preflight.FAIL_FAST,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # set-then-delete records each variable, so whatever the code under test sets is undone too.
    for name in VARIABLES:
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty git + DVC project as the working directory (no remote configured)."""
    root = tmp_path / "project"
    root.mkdir()
    for cmd in (["git", "init", "-q"], [tool("dvc"), "init", "-q"]):
        subprocess.run(cmd, cwd=root, env=tool_env(), check=True)
    monkeypatch.chdir(root)
    return root


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Tracking(http.server.BaseHTTPRequestHandler):
    """A tracking server stand-in: 200 with an empty answer, or 401 unless the login matches."""

    login: str | None = None

    def _answer(self) -> None:
        expected = None if self.login is None else "Basic " + base64.b64encode(self.login.encode()).decode()
        status = 200 if expected is None or self.headers.get("Authorization") == expected else 401
        body = b"{}" if status == 200 else b"You are not authenticated."
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def _serve(login: str | None) -> Iterator[str]:
    handler = type("Handler", (_Tracking,), {"login": login})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def open_server() -> Iterator[str]:
    yield from _serve(None)


@pytest.fixture
def guarded_server() -> Iterator[str]:
    yield from _serve(f"ci:{SECRET}")


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["preflight", *args, "--params", str(DEMO_PARAMS)])
    return result.exit_code, result.stdout, result.stderr


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# ---- the tracking server ----------------------------------------------------------------------


def test_without_the_tracking_secret_the_job_stops_naming_it(project: Path) -> None:
    code, _, stderr = invoke("--workflow", "cd", "--job", "production")
    assert code == 2
    line = _one_error_line(stderr)
    assert "MLFLOW_TRACKING_URI is not set" in line
    assert "DEMO_RUN=true" in line


@pytest.mark.parametrize("how", ["variable", "flag"])
def test_a_demo_run_uses_the_embedded_store_and_says_so(
    project: Path, params: Params, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "variable":
        monkeypatch.setenv(preflight.DEMO_ENV, "true")
    code, stdout, _ = invoke("--workflow", "cd", "--job", "release", *(["--demo"] if how == "flag" else []))
    assert code == 0, stdout
    assert "(demo run)" in stdout
    assert f"demo run on the embedded store {params.tracking.uri}" in stdout
    assert "no DVC remote: demo run" in stdout


def test_demo_run_is_only_what_the_variable_says(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, expected in (("true", True), ("TRUE", True), ("1", True), ("false", False), ("", False)):
        monkeypatch.setenv(preflight.DEMO_ENV, value)
        assert preflight.demo_mode() is expected, value


def test_an_unreachable_server_fails_fast_without_the_password(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.core.tracking import mlflow_module

    mlflow_module()  # the import is not what is timed
    monkeypatch.setenv(preflight.TRACKING_ENV, f"http://ci:{SECRET}@127.0.0.1:{closed_port()}")
    started = time.monotonic()
    code, _, stderr = invoke("--workflow", "cd", "--job", "production")
    assert time.monotonic() - started < 10
    assert code == 2
    line = _one_error_line(stderr)
    assert "cannot reach the MLflow server at http://***@127.0.0.1" in line
    assert "MLFLOW_TRACKING_URI" in line
    assert SECRET not in stderr


def test_a_server_that_answers_passes(project: Path, open_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(preflight.TRACKING_ENV, open_server)
    code, stdout, stderr = invoke("--workflow", "cd", "--job", "production")
    assert code == 0, stderr
    assert f"MLFLOW_TRACKING_URI: {open_server} answers" in stdout


def test_a_server_that_asks_for_a_login_names_both_secrets(
    project: Path, guarded_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(preflight.TRACKING_ENV, guarded_server)
    code, _, stderr = invoke("--workflow", "cd", "--job", "production")
    assert code == 2
    line = _one_error_line(stderr)
    assert "asks for a login" in line
    assert "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in line


def test_a_wrong_login_is_refused_and_the_right_one_passes(
    project: Path, guarded_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(preflight.TRACKING_ENV, guarded_server)
    monkeypatch.setenv(preflight.USERNAME_ENV, "ci")
    monkeypatch.setenv(preflight.PASSWORD_ENV, "wrong")
    code, _, stderr = invoke("--workflow", "cd", "--job", "production")
    assert code == 2
    assert "refused the login" in _one_error_line(stderr)
    monkeypatch.setenv(preflight.PASSWORD_ENV, SECRET)
    code, stdout, stderr = invoke("--workflow", "cd", "--job", "production")
    assert code == 0, stderr
    assert "(logged in)" in stdout
    assert SECRET not in stdout + stderr


def test_a_login_in_the_uri_is_used_and_never_printed(
    project: Path, guarded_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(preflight.TRACKING_ENV, guarded_server.replace("http://", f"http://ci:{SECRET}@"))
    code, stdout, stderr = invoke("--workflow", "cd", "--job", "production")
    assert code == 0, stderr
    assert "http://***@127.0.0.1" in stdout
    assert SECRET not in stdout + stderr


def test_a_store_inside_the_checkout_is_no_team_server(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(preflight.TRACKING_ENV, "sqlite:///mlflow.db")
    code, _, stderr = invoke("--workflow", "cd", "--job", "production")
    assert code == 2
    line = _one_error_line(stderr)
    assert "inside this checkout" in line
    assert "MLFLOW_TRACKING_URI" in line
    monkeypatch.setenv(preflight.DEMO_ENV, "true")
    assert invoke("--workflow", "cd", "--job", "production")[0] == 0


# ---- the DVC remote ---------------------------------------------------------------------------


def test_without_a_dvc_remote_the_job_stops_naming_the_variable(project: Path) -> None:
    code, _, stderr = invoke("--workflow", "ci", "--job", "pipeline")
    assert code == 2
    line = _one_error_line(stderr)
    assert "DVC_REMOTE_URL" in line
    assert "no DVC remote" in line


def test_a_folder_remote_that_is_not_there_is_named(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(dvc_remote.ENV_URL, str(project.parent / "nowhere"))
    code, stdout, stderr = invoke("--workflow", "ci", "--job", "pipeline")
    assert code == 2, stdout
    assert "does not exist" in _one_error_line(stderr)


def test_the_pipeline_job_needs_the_remote_but_no_tracking_server(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    monkeypatch.setenv(dvc_remote.ENV_URL, str(store))
    code, stdout, stderr = invoke("--workflow", "ci", "--job", "pipeline")
    assert code == 0, stderr
    assert "DVC remote storage" in stdout
    assert "MLFLOW_TRACKING_URI" not in stdout


# ---- the prediction log and the tokens --------------------------------------------------------


def test_the_analysis_needs_the_prediction_log(
    project: Path, open_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(preflight.TRACKING_ENV, open_server)
    code, _, stderr = invoke("--workflow", "cd", "--job", "analyze")
    assert code == 2
    line = _one_error_line(stderr)
    assert "PREDICTION_LOG_URL is not set" in line
    # Only the drift check can read a named batch file instead.
    assert "DRIFT_CURRENT" not in line


def test_the_drift_check_takes_a_named_batch_file_instead_of_the_log(
    project: Path, tmp_path: Path, open_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    monkeypatch.setenv(dvc_remote.ENV_URL, str(store))
    monkeypatch.setenv(preflight.TRACKING_ENV, open_server)
    code, _, stderr = invoke("--workflow", "drift", "--job", "check")
    assert code == 2
    assert "PREDICTION_LOG_URL" in _one_error_line(stderr)
    assert "DRIFT_CURRENT" in stderr
    monkeypatch.setenv(preflight.BATCH_ENV, "data/production/2018_features.parquet")
    code, stdout, stderr = invoke("--workflow", "drift", "--job", "check")
    assert code == 0, stderr
    assert "the batch is the file in DRIFT_CURRENT" in stdout


def test_an_unreachable_prediction_log_is_one_line_without_the_password(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(preflight.DEMO_ENV, "true")
    monkeypatch.setenv(preflight.LOG_ENV, f"postgresql://serve:{SECRET}@127.0.0.1:{closed_port()}/predictions")
    code, _, stderr = invoke("--workflow", "cd", "--job", "analyze")
    assert code == 2
    line = _one_error_line(stderr)
    assert "cannot reach the prediction log postgresql://***@127.0.0.1" in line
    assert "PREDICTION_LOG_URL" in line
    assert SECRET not in stderr


def test_a_log_file_that_is_not_on_the_runner_is_named(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(preflight.DEMO_ENV, "true")
    monkeypatch.setenv(preflight.LOG_ENV, "sqlite:///logs/predictions.db")
    code, _, stderr = invoke("--workflow", "cd", "--job", "analyze")
    assert code == 2
    assert "not on this runner" in _one_error_line(stderr)
    (project / "logs").mkdir()
    (project / "logs" / "predictions.db").write_bytes(b"")
    assert invoke("--workflow", "cd", "--job", "analyze")[0] == 0


@pytest.mark.parametrize(("job", "token"), [("pr", "RETRAIN_TOKEN"), ("alert", "GITHUB_TOKEN")])
def test_the_drift_pr_and_alert_steps_name_their_token(
    project: Path, monkeypatch: pytest.MonkeyPatch, job: str, token: str
) -> None:
    code, _, stderr = invoke("--workflow", "drift", "--job", job)
    assert code == 2
    assert f"the environment variable {token} is empty" in _one_error_line(stderr)
    monkeypatch.setenv(token, "ghs_value")
    code, stdout, stderr = invoke("--workflow", "drift", "--job", job)
    assert code == 0, stderr
    assert f"{token} is set" in stdout
    assert "ghs_value" not in stdout


def test_the_drift_check_itself_needs_no_github_token() -> None:
    assert "token" not in preflight.NEEDS["drift"]["check"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--workflow", "nightly"), "unknown workflow 'nightly'"),
        (("--workflow", "cd", "--job", "lint"), "no job 'lint'"),
    ],
)
def test_an_unknown_workflow_or_job_is_refused(project: Path, args: tuple[str, ...], needle: str) -> None:
    code, _, stderr = invoke(*args)
    assert code == 2
    assert needle in _one_error_line(stderr)


def test_every_workflow_has_a_default_job_it_knows() -> None:
    for workflow, job in preflight.DEFAULT_JOB.items():
        assert job in preflight.NEEDS[workflow]
    assert json.dumps(preflight.NEEDS)  # plain data: docs/workflows.md describes the same table


# ---- `pipeline remote pull|push`: the jobs' DVC steps ------------------------------------------


def test_remote_steps_need_a_remote_unless_the_run_is_a_demo(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for action in ("pull", "push"):
        result = CliRunner().invoke(app, ["remote", action])
        assert result.exit_code == 2
        assert "DVC_REMOTE_URL" in _one_error_line(result.stderr)
    monkeypatch.setenv(preflight.DEMO_ENV, "true")
    result = CliRunner().invoke(app, ["remote", "pull"])
    assert result.exit_code == 0
    assert "no DVC remote (demo run): nothing to pull" in result.stdout


def test_remote_push_then_pull_restores_outputs_and_skips_what_the_remote_lacks(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    monkeypatch.setenv(dvc_remote.ENV_URL, str(store))
    (project / "table.csv").write_text("id,y\n1,0\n", encoding="utf-8")
    subprocess.run([tool("dvc"), "add", "-q", "table.csv"], cwd=project, env=tool_env(), check=True)
    pushed = CliRunner().invoke(app, ["remote", "push"])
    assert pushed.exit_code == 0, pushed.stderr
    assert "pushed to DVC remote storage" in pushed.stdout
    # A fresh runner: no workspace copy, an empty cache.
    (project / "table.csv").unlink()
    subprocess.run([tool("dvc"), "cache", "dir", str(tmp_path / "cache")], cwd=project, env=tool_env(), check=True)
    pulled = CliRunner().invoke(app, ["remote", "pull"])
    assert pulled.exit_code == 0, pulled.stderr
    assert (project / "table.csv").read_text(encoding="utf-8") == "id,y\n1,0\n"
    # An output nobody pushed: the pipeline rebuilds it, unless --strict asks for every object.
    (project / "other.csv").write_text("id,y\n2,1\n", encoding="utf-8")
    subprocess.run([tool("dvc"), "add", "-q", "other.csv"], cwd=project, env=tool_env(), check=True)
    (project / "other.csv").unlink()
    subprocess.run([tool("dvc"), "cache", "dir", str(tmp_path / "cache2")], cwd=project, env=tool_env(), check=True)
    assert CliRunner().invoke(app, ["remote", "pull"]).exit_code == 0
    strict = CliRunner().invoke(app, ["remote", "pull", "--strict"])
    assert strict.exit_code == 2
    assert "dvc pull from 'storage' failed" in _one_error_line(strict.stderr)
