"""The workflows stay thin and tested: every `run:` is one project command that a test exercises,
and actionlint and zizmor (the real tools) find nothing.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from tests.conftest import REPO_ROOT

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
    if hasattr(command, "commands"):
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
