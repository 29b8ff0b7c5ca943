"""The workflows stay thin and tested: every `run:` is one project command that a test exercises,
and actionlint and zizmor (the real tools) find nothing.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from tests.conftest import DEMO_PARAMS, REPO_ROOT

pytestmark = pytest.mark.unit

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.y*ml"))
TESTS = REPO_ROOT / "tests"
BIN = Path(sys.executable).parent
SHELL_SYNTAX = ("&&", "||", ";", "|", ">", "<", "&", "$(", "`", "${{")
# The Makefile's way of calling the project's own tools.
# The project's CLI, on PATH or called by its path in the locked environment.
PIPELINE_CLI = ("pipeline", ".venv/bin/pipeline")
RECIPE_PIPELINE = re.compile(r"^\$\(BIN\)/pipeline\s+(.*)$")
RECIPE_PYTEST = re.compile(r"^\$\(BIN\)/python -m pytest\b")


def _run_steps() -> list[tuple[str, str]]:
    steps = []
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
        for job_name, job in (workflow.get("jobs") or {}).items():
            for step in job.get("steps") or []:
                if "run" in step:
                    steps.append((f"{path.name}:{job_name}", str(step["run"]).strip()))
    return steps


def _makefile_targets() -> dict[str, list[str]]:
    """Target -> recipe lines (only plain `name: deps` rules; variables are skipped)."""
    targets: dict[str, list[str]] = {}
    current: str | None = None
    for line in (REPO_ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        rule = re.match(r"^([A-Za-z0-9_.-]+)\s*:(?![:=])", line)
        if rule:
            current = rule.group(1)
            targets.setdefault(current, [])
        elif line.startswith("\t") and current:
            targets[current].append(line.strip().lstrip("@"))
        elif line.strip() and not line.startswith("#"):
            current = None
    return targets


def _command_path(tokens: list[str]) -> list[str]:
    """The `pipeline` sub-command names at the front of `tokens`, checked against the typer app."""
    # Typer ships its own copy of click: recognise groups by their sub-commands, not by class.
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    for token in tokens:
        if not hasattr(command, "commands") or token.startswith("-"):
            break
        sub = command.commands.get(token)
        if sub is None:
            raise AssertionError(f"`pipeline {' '.join([*path, token])}` is not a command of pipeline.cli.app")
        path.append(token)
        command = sub
    # A group runs on its own only when its callback is the command (`pipeline retrain`).
    if hasattr(command, "commands") and not getattr(command, "invoke_without_command", False):
        raise AssertionError(f"`pipeline {' '.join(path)}` is a group, not a command")
    return path


def _test_sources() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in TESTS.rglob("test_*.py"))


def _exercised(path: list[str], sources: str) -> bool:
    """A test invokes the command: CliRunner `["cmd", ...]` or a subprocess `"pipeline", "cmd"`."""
    q = r"[\"']"
    words = rf"{q}\s*,\s*{q}".join(re.escape(p) for p in path)
    return re.search(rf"(?:\[\s*|pipeline{q}\)?\s*,\s*){q}{words}{q}", sources) is not None


def _check_command(run: str, targets: dict[str, list[str]], sources: str) -> list[str]:
    """Problems with one `run:` value (empty: a single, existing, tested project command)."""
    if "\n" in run:
        return ["spans several lines: make it one command"]
    if any(s in run for s in SHELL_SYNTAX):
        return ["uses shell syntax or an expression: move the logic into the project's CLI"]
    try:
        return _check_tokens(shlex.split(run), targets, sources)
    except AssertionError as exc:  # an unknown command, from _command_path
        return [str(exc)]


def _check_tokens(tokens: list[str], targets: dict[str, list[str]], sources: str) -> list[str]:
    if tokens[0] in PIPELINE_CLI:
        path = _command_path(tokens[1:])
        return [] if _exercised(path, sources) else [f"`pipeline {' '.join(path)}` is not exercised by any test"]
    if tokens[0] == "make":
        names = [t for t in tokens[1:] if "=" not in t and not t.startswith("-")]
        if len(names) != 1:
            return ["must call exactly one make target"]
        return _check_target(names[0], targets, sources)
    return [f"`{tokens[0]}` is neither `make <target>` nor `pipeline <command>`"]


def _check_target(target: str, targets: dict[str, list[str]], sources: str) -> list[str]:
    if target not in targets:
        return [f"make target {target!r} does not exist"]
    if re.search(rf'"make"\s*,[^\]]*"{re.escape(target)}"', sources):
        return []
    problems = []
    for line in targets[target]:
        if RECIPE_PYTEST.match(line):
            continue  # the test suite itself
        match = RECIPE_PIPELINE.match(line)
        if match is None:
            problems.append(f"make {target}: recipe line {line!r} is not a pipeline command")
            continue
        path = _command_path(shlex.split(match.group(1)))
        if not _exercised(path, sources):
            problems.append(f"make {target}: `pipeline {' '.join(path)}` is not exercised by any test")
    return problems


def test_there_are_workflows() -> None:
    assert WORKFLOWS, "no workflow files under .github/workflows"


@pytest.mark.parametrize(("where", "run"), _run_steps(), ids=lambda v: str(v)[:60])
def test_run_step_is_one_tested_project_command(where: str, run: str) -> None:
    problems = _check_command(run, _makefile_targets(), _test_sources())
    assert not problems, f"{where}: `{run}`: {'; '.join(problems)}"


@pytest.mark.parametrize(
    ("run", "problem"),
    [
        ("make lint && make test", "shell syntax"),
        ("echo ${{ github.event.pull_request.title }}", "shell syntax"),
        ("make nope-not-a-target", "does not exist"),
        ("pipeline no-such-command", "is not a command"),
        ("pipeline champion", "is a group"),
        ("python -m pytest", "neither"),
        ("make lint\nmake test", "several lines"),
    ],
)
def test_checker_refuses(run: str, problem: str) -> None:
    problems = _check_command(run, _makefile_targets(), _test_sources())
    assert any(problem in p for p in problems), problems


def _tool(name: str) -> str:
    return str(BIN / name) if (BIN / name).exists() else name


def test_actionlint_finds_nothing() -> None:
    result = subprocess.run(
        [_tool("actionlint"), *map(str, WORKFLOWS)], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing() -> None:
    targets = [*map(str, WORKFLOWS), str(REPO_ROOT / ".github" / "dependabot.yml")]
    result = subprocess.run(
        [_tool("zizmor"), "--offline", "--min-severity", "low", *targets],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_is_not_blind(tmp_path: Path) -> None:
    """The same call does report the classic mistakes, so a clean result means something."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request_target\n"
        "jobs:\n  j:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [_tool("zizmor"), "--offline", "--min-severity", "low", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    for audit in ("dangerous-triggers", "template-injection", "unpinned-uses", "artipacked"):
        assert audit in result.stdout, audit


def test_pipeline_lint_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pipeline lint` on a tiny project: green when clean, names zizmor when a workflow is not."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text('"""A package."""\n', encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text('[tool.mypy]\nfiles = ["pkg"]\n', encoding="utf-8")
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    ci = next(p for p in WORKFLOWS if p.name == "ci.yml")
    (workflows / "ci.yml").write_text(ci.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    clean = CliRunner().invoke(app, ["lint"])
    assert clean.exit_code == 0, clean.output
    (workflows / "bad.yml").write_text(
        "on: push\npermissions: {}\njobs:\n  j:\n    runs-on: ubuntu-24.04\n    timeout-minutes: 5\n"
        "    steps:\n      - uses: actions/checkout@v4\n",
        encoding="utf-8",
    )
    dirty = CliRunner().invoke(app, ["lint"])
    assert dirty.exit_code == 1
    assert "zizmor" in dirty.output


def test_runner_variables_are_kept_from_the_tests() -> None:
    from tests.conftest import runner_variables

    leaked = {
        "GITHUB_ACTOR": "bot",
        "GITHUB_SHA": "0" * 40,
        "BASE": "abc",
        "CHAMPION": "x",
        "PATH": "/bin",
        "CI": "true",
    }
    assert runner_variables(leaked) == ["BASE", "CHAMPION", "GITHUB_ACTOR", "GITHUB_SHA"]
    assert not runner_variables(os.environ)


# ---- structure: what a fresh runner per job needs ---------------------------------------------


def _workflow(name: str) -> dict[str, Any]:
    data = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _runs(job: dict[str, Any]) -> list[str]:
    return [str(step["run"]).strip() for step in job.get("steps") or [] if "run" in step]


def _index(runs: list[str], needle: str) -> int:
    found = [i for i, run in enumerate(runs) if needle in run]
    assert found, f"no step runs {needle!r}: {runs}"
    return found[0]


def _secrets_read(job: dict[str, Any]) -> set[str]:
    text = yaml.safe_dump(job)
    return set(re.findall(r"secrets\.([A-Z0-9_]+)", text))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_env_is_job_scoped(path: Path) -> None:
    """A workflow-wide env reaches every job's `make` (BASE overrode the tests' own Makefile runs)."""
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert "env" not in workflow, f"{path.name}: move env: into the jobs that need it"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_a_job_that_reads_state_secrets_checks_them_first(path: Path) -> None:
    """Preflight is the first project command (after building the environment) of every job that
    reads the tracking server, the DVC remote or the prediction log, and names its own workflow and
    a job preflight knows.
    """
    from pipeline.ci.preflight import NEEDS

    workflow = path.stem
    for name, job in _workflow(path.name)["jobs"].items():
        env = job.get("env") or {}
        state = {"MLFLOW_TRACKING_URI", "DVC_REMOTE_URL", "PREDICTION_LOG_URL"} & set(env)
        runs = [r for r in _runs(job) if r != "make env"]
        if not state:
            continue
        first = shlex.split(runs[0])
        assert first[:2] == [".venv/bin/pipeline", "preflight"], f"{path.name}:{name} starts with {runs[0]!r}"
        assert first[first.index("--workflow") + 1] == workflow
        assert first[first.index("--job") + 1] in NEEDS[workflow], f"{path.name}:{name}: {runs[0]}"


def test_the_drift_check_runs_before_the_token_preflight_and_without_the_token() -> None:
    check = _workflow("drift.yml")["jobs"]["check"]
    runs = _runs(check)
    assert _index(runs, "make drift-check") < _index(runs, "preflight --workflow drift --job pr")
    assert "RETRAIN_TOKEN" not in (check.get("env") or {})
    drift_step = next(s for s in check["steps"] if s.get("id") == "drift")
    assert "RETRAIN_TOKEN" not in yaml.safe_dump(drift_step)


def test_the_retraining_pr_commits_what_retrain_paths_lists() -> None:
    check = _workflow("drift.yml")["jobs"]["check"]
    paths_step = next(s for s in check["steps"] if s.get("id") == "paths")
    assert paths_step["run"] == ".venv/bin/pipeline retrain paths"
    pr = next(s for s in check["steps"] if "create-pull-request" in str(s.get("uses", "")))
    assert pr["with"]["add-paths"] == "${{ steps.paths.outputs.paths }}"


def test_no_production_data_or_too_few_labels_alert_instead_of_failing() -> None:
    jobs = _workflow("drift.yml")["jobs"]
    assert "needs.check.outputs.retrain == 'refused'" in jobs["alert"]["if"]
    assert "needs.check.outputs.verdict == 'no data'" in jobs["alert"]["if"]
    assert jobs["check"]["outputs"]["verdict"] == "${{ steps.drift.outputs.verdict }}"
    assert "make drift-alert" in _runs(jobs["alert"])


def test_cd_decides_from_paths_and_orders_its_environments() -> None:
    text = (REPO_ROOT / ".github" / "workflows" / "cd.yml").read_text(encoding="utf-8")
    # Commit messages name files too: the decision is `pipeline changes`, on the range's paths.
    assert "toJSON(github.event.commits)" not in text
    jobs = _workflow("cd.yml")["jobs"]
    assert jobs["changes"]["if"] == "github.ref == 'refs/heads/main'"
    assert ".venv/bin/pipeline changes" in _runs(jobs["changes"])
    for name, kind in (("release", "release"), ("production", "production"), ("analyze", "analyze")):
        assert jobs[name]["needs"] == "changes"
        assert jobs[name]["if"] == f"needs.changes.outputs.kind == '{kind}'"
    assert jobs["release"]["environment"] == "staging"
    assert jobs["production"]["environment"] == "production"
    # Staging is applied by release only, production by the production job only.
    applies = {name: [r for r in _runs(job) if "deploy apply" in r] for name, job in jobs.items()}
    assert applies["release"] == [".venv/bin/pipeline deploy apply --env staging"]
    assert applies["production"] == [".venv/bin/pipeline deploy apply --env production"]
    assert not applies["analyze"]
    # Alias-moving jobs take the registry account from their Environment.
    for name in ("release", "production"):
        assert {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} <= _secrets_read(jobs[name])


def test_ci_carries_the_smoke_result_to_the_report_and_runs_the_slow_tier_apart() -> None:
    jobs = _workflow("ci.yml")["jobs"]
    uploads = [s["with"]["name"] for s in jobs["smoke"]["steps"] if "upload-artifact" in str(s.get("uses", ""))]
    downloads = [s["with"]["name"] for s in jobs["report"]["steps"] if "download-artifact" in str(s.get("uses", ""))]
    assert "smoke" in uploads
    assert "smoke" in downloads
    assert "smoke" in jobs["report"]["needs"]
    assert _runs(jobs["test"]) == ["make test-fast"]
    assert _runs(jobs["test-slow"]) == ["make test-slow"]
    targets = _makefile_targets()
    assert any('-m "not slow"' in line for line in targets["test-fast"])
    assert any("-m slow" in line for line in targets["test-slow"])
    # The base comes from `pipeline changes` (never an all-zeros `before`), step by step.
    for name in ("gate", "report"):
        steps = jobs[name]["steps"]
        assert any(s.get("id") == "changes" and s["run"] == ".venv/bin/pipeline changes" for s in steps)
        based = [s for s in steps if (s.get("env") or {}).get("BASE")]
        assert based
        assert all(s["env"]["BASE"] == "${{ steps.changes.outputs.base }}" for s in based)


def test_every_secret_and_variable_is_documented() -> None:
    docs = (REPO_ROOT / "docs" / "workflows.md").read_text(encoding="utf-8")
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    names = set()
    for path in WORKFLOWS:
        names |= set(re.findall(r"(?:secrets|vars)\.([A-Z0-9_]+)", path.read_text(encoding="utf-8")))
    assert names
    for name in sorted(names):
        assert f"`{name}`" in docs, f"docs/workflows.md does not describe {name}"
        assert f"`{name}`" in readme, f"README.md 'Where state lives' does not list {name}"


# ---- the drift workflow's alert path: no data and no network are not tracebacks ----------------


def _alert_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, handler: Any) -> list[httpx.Request]:
    """The demo params in an empty folder, the API answered by `handler`; returns the requests seen."""
    from pipeline.monitoring import github

    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    real_client = github.client_for
    monkeypatch.setattr(
        github, "client_for", lambda *, token: real_client(token=token, transport=httpx.MockTransport(record))
    )
    monkeypatch.chdir(tmp_path)
    shutil.copy(DEMO_PARAMS, tmp_path / "params.yaml")
    monkeypatch.setenv("GITHUB_TOKEN", "t0ken")
    monkeypatch.setenv("GITHUB_REPOSITORY", "o/r")
    return seen


def test_a_network_error_in_the_alert_step_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno -3] Temporary failure in name resolution", request=request)

    _alert_project(tmp_path, monkeypatch, offline)
    (tmp_path / "drift.json").write_text(json.dumps({"verdict": "drift", "data_drift": {}}), encoding="utf-8")
    result = CliRunner().invoke(app, ["github", "alert", "--drift", "drift.json"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "GitHub API GET /repos/o/r/issues could not be reached: [Errno -3]" in lines[0]
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_no_production_data_opens_the_alert_with_the_checks_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def api(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=[])
        return httpx.Response(201, json={"number": 7})

    seen = _alert_project(tmp_path, monkeypatch, api)
    monkeypatch.setenv("DRIFT_REASON", "data/production: no production batch to check")
    result = CliRunner().invoke(app, ["github", "alert"])
    assert result.exit_code == 0, result.output
    assert "opened issue #7" in result.output
    body = json.loads(seen[-1].content)["body"]
    assert "no production data to check" in body
    assert "> data/production: no production batch to check" in body


def test_no_production_data_is_a_verdict_for_the_workflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make drift-check` exits 0 and hands verdict=no data to the alert job; without the workflow's
    flag it still exits non-zero.
    """
    monkeypatch.chdir(tmp_path)
    params = DEMO_PARAMS.read_text(encoding="utf-8").replace("production_dir: data/production", "production_dir: empty")
    (tmp_path / "params.yaml").write_text(params, encoding="utf-8")
    (tmp_path / "empty").mkdir()
    output = tmp_path / "github_output"
    output.write_text("", encoding="utf-8")
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    monkeypatch.delenv("PREDICTION_LOG_URL", raising=False)
    result = CliRunner().invoke(app, ["drift", "--exit-zero-on-verdict", "--no-plots"])
    assert result.exit_code == 0, result.output
    written = output.read_text(encoding="utf-8")
    assert "verdict=no data\n" in written
    assert "drift=false\n" in written
    assert "reason=" in written
    assert CliRunner().invoke(app, ["drift", "--no-plots"]).exit_code != 0
