"""`pipeline changes` decides what cd.yml does from the pushed range's paths (never commit text),
handles the all-zeros `before` of a branch-creating push, and writes kind= and base= for later
steps; what a retraining pull request commits comes from dvc.yaml's outputs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.ci import changes
from pipeline.cli import app
from pipeline.core.runner import tool, tool_env
from tests.conftest import DEMO_PARAMS, REPO_ROOT

pytestmark = pytest.mark.unit

ZERO = "0" * 40
INPUTS = ("data/raw.csv", "dvc.lock", "dvc.yaml", "params.yaml", "src/train.py", "src/lib")
PRODUCTION = "deploy/production.yaml"
DVC_YAML = """stages:
  train:
    cmd: python src/train.py
    deps:
      - src/train.py
      - src/lib
      - data/raw.csv
    params:
      - base.seed
    outs:
      - model.pkl
    metrics:
      - metrics.json:
          cache: false
"""
CANARY = """model: employment-ma
champion: 1
challenger: 2
strategy: canary
traffic_share: 0.2
"""


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def commit(repo: Path, message: str, files: dict[str, str]) -> str:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A one-stage DVC project with the demo's params and deploy manifests, as the working directory."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    subprocess.run([tool("dvc"), "init", "-q"], cwd=root, env=tool_env(), check=True)
    shutil.copyfile(DEMO_PARAMS, root / "params.yaml")
    (root / "deploy").mkdir()
    for env in ("staging", "production"):
        shutil.copyfile(REPO_ROOT / "deploy" / f"{env}.yaml", root / "deploy" / f"{env}.yaml")
    commit(
        root,
        "first",
        {
            "dvc.yaml": DVC_YAML,
            "dvc.lock": "schema: '2.0'\nstages: {}\n",
            "src/train.py": "print('train')\n",
            "src/lib/util.py": "X = 1\n",
            "data/raw.csv": "id,y\n1,0\n",
            "README.md": "readme\n",
            ".gitignore": "/model.pkl\n",
        },
    )
    monkeypatch.chdir(root)
    return root


def decide(repo: Path, **kwargs: str) -> changes.Decision:
    from tests.conftest import demo_params

    return changes.decide(
        event_name=kwargs.pop("event_name", "push"), event={}, params=demo_params(), root=repo, **kwargs
    )


# ---- the rules, pure --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("paths", "kind"),
    [
        (("dvc.lock",), "release"),
        (("params.yaml", "README.md"), "release"),
        (("src/train.py",), "release"),
        (("src/lib/util.py",), "release"),  # under a directory dependency
        (("dvc.lock", PRODUCTION), "release"),  # the canary PR it opens carries the production change on
        ((PRODUCTION,), "production"),
        ((PRODUCTION, "deploy/staging.yaml"), "production"),  # the merged canary PR
        (("deploy/staging.yaml",), "none"),  # staging is applied by release only
        (("README.md", "src/library.py"), "none"),  # a prefix of a dependency's name is not under it
        ((), "none"),
    ],
)
def test_the_path_rules(paths: tuple[str, ...], kind: str) -> None:
    assert changes.classify(paths=paths, inputs=INPUTS, production_manifest=PRODUCTION)[0] == kind


# ---- pushed ranges ----------------------------------------------------------------------------


def test_a_commit_message_naming_dvc_lock_releases_nothing(repo: Path) -> None:
    before = git(repo, "rev-parse", "HEAD")
    after = commit(repo, "Update dvc.lock and deploy/production.yaml (text only)", {"README.md": "new\n"})
    decision = decide(repo, before=before, after=after)
    assert decision.kind == "none"
    assert decision.paths == ("README.md",)


@pytest.mark.parametrize(
    ("path", "kind"),
    [("dvc.lock", "release"), ("src/train.py", "release"), ("data/raw.csv", "release"), (PRODUCTION, "production")],
)
def test_the_pushed_range_decides(repo: Path, path: str, kind: str) -> None:
    before = git(repo, "rev-parse", "HEAD")
    text = {PRODUCTION: CANARY, "dvc.lock": "schema: '2.0'\nstages: {}\n# retrained\n"}.get(path, "changed\n")
    after = commit(repo, "change", {path: text})
    decision = decide(repo, before=before, after=after)
    assert decision.kind == kind
    assert decision.base == before
    assert decision.head == after
    assert path in decision.paths


def test_a_branch_creating_push_compares_with_the_merge_base(repo: Path) -> None:
    main = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "feature")
    after = commit(repo, "manifest", {PRODUCTION: CANARY})
    decision = decide(repo, before=ZERO, after=after)
    assert decision.base == main
    assert decision.paths == (PRODUCTION,)
    assert decision.kind == "production"
    assert "all zeros" in decision.reasons[0]


def test_a_new_default_branch_counts_every_tracked_file(repo: Path) -> None:
    parent = git(repo, "rev-parse", "HEAD")
    after = commit(repo, "second", {"README.md": "two\n"})
    decision = decide(repo, before=ZERO, after=after)
    assert decision.kind == "release"
    assert {"dvc.lock", "README.md", PRODUCTION} <= set(decision.paths)
    assert decision.base == parent
    assert "every tracked file" in decision.reasons[0]


def test_a_root_commit_is_its_own_base(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    decision = decide(repo, before=ZERO, after=head)
    assert decision.base == head
    assert "compares the model with its own" in decision.reasons[0]


def test_a_before_missing_from_the_clone_falls_back_like_a_new_branch(repo: Path) -> None:
    after = commit(repo, "second", {"README.md": "two\n"})
    decision = decide(repo, before="1" * 40, after=after)
    assert "not in this clone" in decision.reasons[0]
    assert decision.kind == "release"  # every tracked file: nothing to compare with


# ---- the command ------------------------------------------------------------------------------


def run_changes(
    repo: Path, event_name: str, event: Mapping[str, object], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str, Path]:
    event_path = repo.parent / "event.json"
    event_path.write_text(json.dumps(event), encoding="utf-8")
    output = repo.parent / "github_output"
    output.write_text("", encoding="utf-8")
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event_path))
    monkeypatch.setenv("GITHUB_EVENT_NAME", event_name)
    result = CliRunner().invoke(app, ["changes"])
    return result.exit_code, result.stdout, result.stderr, output


def test_a_push_event_writes_kind_and_base(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = git(repo, "rev-parse", "HEAD")
    after = commit(repo, "retrained", {"dvc.lock": "schema: '2.0'\nstages: {}\n# new\n"})
    code, stdout, stderr, output = run_changes(repo, "push", {"before": before, "after": after}, monkeypatch)
    assert code == 0, stderr
    assert "  dvc.lock" in stdout
    assert stdout.strip().splitlines()[-1] == f"kind=release base={before[:12]}"
    assert output.read_text(encoding="utf-8") == f"kind=release\nbase={before}\n"


def test_a_pull_request_is_compared_with_its_base_commit(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = git(repo, "rev-parse", "HEAD")
    commit(repo, "pr", {"README.md": "pr\n"})
    event = {"pull_request": {"base": {"sha": base}}, "before": ZERO}
    code, _, stderr, output = run_changes(repo, "pull_request", event, monkeypatch)
    assert code == 0, stderr
    assert f"base={base}\n" in output.read_text(encoding="utf-8")


def test_the_schedule_analyzes_only_while_a_canary_runs(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, stdout, _, output = run_changes(repo, "schedule", {"schedule": "23 */6 * * *"}, monkeypatch)
    assert code == 0
    assert "nothing to analyze" in stdout
    assert output.read_text(encoding="utf-8").startswith("kind=none\n")
    (repo / PRODUCTION).write_text(CANARY, encoding="utf-8")
    code, _, _, output = run_changes(repo, "schedule", {}, monkeypatch)
    assert code == 0
    assert output.read_text(encoding="utf-8").startswith("kind=analyze\n")


@pytest.mark.parametrize(("task", "kind"), [("release", "release"), ("apply", "production"), ("analyze", "none")])
def test_a_dispatch_runs_its_task(repo: Path, monkeypatch: pytest.MonkeyPatch, task: str, kind: str) -> None:
    code, _, stderr, output = run_changes(repo, "workflow_dispatch", {"inputs": {"task": task}}, monkeypatch)
    assert code == 0, stderr
    assert output.read_text(encoding="utf-8").startswith(f"kind={kind}\n")


def test_bad_input_is_one_line_and_writes_nothing(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, stderr, output = run_changes(repo, "workflow_dispatch", {"inputs": {"task": "deploy"}}, monkeypatch)
    assert code == 2
    assert stderr.strip() == "error: dispatch input task must be one of release, apply, analyze, not 'deploy'"
    assert output.read_text(encoding="utf-8") == ""
    result = CliRunner().invoke(app, ["changes", "--before", "HEAD", "--after", "f" * 40])
    assert result.exit_code == 2
    assert "not found" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# ---- what a retraining pull request commits ---------------------------------------------------


def test_pr_paths_come_from_dvc_yaml(repo: Path) -> None:
    from pipeline.ci.dvcfiles import pr_paths

    raw = Path("data/raw/employment_2015.parquet")  # the demo params' data.raw
    (repo / raw).parent.mkdir(parents=True)
    (repo / raw).write_bytes(b"table")
    (repo / "model.pkl").write_bytes(b"cached, never committed")
    # metrics.json is an uncached output, but the rerun has not written it yet: left out.
    assert pr_paths(root=repo, params_file=Path("params.yaml"), raw=raw) == ["params.yaml", "dvc.lock", raw.as_posix()]
    (repo / "metrics.json").write_text("{}", encoding="utf-8")
    paths = pr_paths(root=repo, params_file=Path("params.yaml"), raw=raw)
    assert paths[-1] == "metrics.json"
    assert "model.pkl" not in paths


def test_retrain_paths_hands_the_list_to_the_pull_request_step(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "metrics.json").write_text("{}", encoding="utf-8")
    output = repo.parent / "github_output"
    output.write_text("", encoding="utf-8")
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    result = CliRunner().invoke(app, ["retrain", "paths"])
    assert result.exit_code == 0, result.stderr
    written = output.read_text(encoding="utf-8").splitlines()
    assert written[0].startswith("paths<<")
    assert written[-1] == written[0].removeprefix("paths<<")
    assert written[1:-1] == result.stdout.splitlines()
    assert "metrics.json" in written


def test_a_broken_dvc_lock_is_one_line(repo: Path) -> None:
    before = git(repo, "rev-parse", "HEAD")
    after = commit(repo, "conflict", {"dvc.lock": "<<<<<<< ours\n"})
    result = CliRunner().invoke(app, ["changes", "--before", before, "--after", after])
    assert result.exit_code == 2
    assert "cannot read the DVC pipeline" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_pr_paths_prefer_the_dvc_file_of_a_tracked_raw_table(repo: Path) -> None:
    from pipeline.ci.dvcfiles import pr_paths

    raw = repo / "data" / "raw" / "table.parquet"
    raw.parent.mkdir(parents=True)
    raw.write_bytes(b"table")
    (repo / "data" / "raw" / "table.parquet.dvc").write_text("outs: []\n", encoding="utf-8")
    paths = pr_paths(root=repo, params_file=Path("params.yaml"), raw=Path("data/raw/table.parquet"))
    assert "data/raw/table.parquet.dvc" in paths
    assert "data/raw/table.parquet" not in paths
