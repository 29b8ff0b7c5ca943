"""The template's lifecycle as a team lives it: `copier copy` a tagged release into a project,
customise it, `copier update` to the next release. The template's changes arrive, the team's stay,
and a change both made to one line is shown as a conflict, never resolved silently.

Only the template's repository has this test: copier.yml excludes it from projects.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.core import params_edit, runner
from pipeline.core.config import load_params
from tests.conftest import BIN, DEMO, DEMO_FILES, REPO_ROOT, run, template_files

pytestmark = pytest.mark.e2e

COPIER = str(BIN / "copier")
# Answers for the shipped data, with names of the team's own.
ANSWERS: dict[str, Any] = {
    "project_name": "acme-employment",
    "registered_model": "acme-employment-model",
    "table": "data/raw/employment_2015.parquet",
    "target": "employed",
    "id_column": "id",
    "sensitive_columns": ["SEX", "RAC1P", "AGEP"],
    "primary_metric": "average_precision",
}
ANSWER_KEYS = ("train.primary_metric", "tracking.experiment", "tracking.registered_model")
# What copier.yml keeps out of a project (the answers file's template is rendered instead).
TEMPLATE_ONLY = {"copier.yml", "tests/e2e/test_template_lifecycle.py", "{{ _copier_conf.answers_file }}.jinja"}
SAMPLE_ROWS = 6000
OWNERS = "owners: The acme analytics team, people-analytics@example.invalid.\n"
CARD_DOCSTRING = '"""Render model_card.md (sections after Mitchell et al., "Model Cards for Model Reporting")\n'


def _git(repo: Path, *args: str) -> str:
    return run(["git", *args], repo).stdout


def _commit(repo: Path, message: str, *, tag: str | None = None) -> None:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", message)
    if tag:
        _git(repo, "tag", tag)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) >= 1, f"{path.name} lacks {old!r}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _template(root: Path) -> Path:
    """The template as a fork gets it (the working tree, uncommitted work included, running the
    demo project even where the root has been retargeted), tagged v1.
    """
    template = root / "template"
    for rel in template_files():
        target = template / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(DEMO / rel if rel in DEMO_FILES else REPO_ROOT / rel, target)
    _git(template, "init", "-q", "-b", "main")
    _git(template, "config", "user.email", "template@example.invalid")
    _git(template, "config", "user.name", "template")
    _commit(template, "template release 1", tag="v1")
    return template


def _copy(template: Path, project: Path) -> str:
    data = [arg for name, value in ANSWERS.items() for arg in ("--data", f"{name}={value}")]
    cmd = [COPIER, "copy", "--trust", "--defaults", "--vcs-ref", "v1", *data, str(template), str(project)]
    out = run(cmd, template.parent).stdout
    _git(project, "init", "-q", "-b", "main")
    _git(project, "config", "user.email", "team@example.invalid")
    _git(project, "config", "user.name", "team")
    _commit(project, "start from the template")
    return out


def _update(project: Path, ref: str) -> str:
    return run([COPIER, "update", "--trust", "--defaults", "--vcs-ref", ref, "--conflict", "inline"], project).stdout


def _files(repo: Path) -> set[str]:
    return {p for p in _git(repo, "ls-files", "-z").split("\0") if p}


def _rejects(project: Path) -> list[Path]:
    return [p for p in project.rglob("*.rej") if ".git" not in p.parts]


@pytest.fixture
def template(tmp_path: Path) -> Path:
    return _template(tmp_path)


def test_copier_questions_match_params(template: Path) -> None:
    questions = yaml.safe_load((template / "copier.yml").read_text(encoding="utf-8"))
    params = load_params(template / "params.yaml")
    assert questions["primary_metric"]["choices"] == list(params_edit.PRIMARY_METRICS)
    # The defaults are the template's own values: `copier copy --defaults` is the demo.
    assert questions["project_name"]["default"] == params.tracking.experiment == params.tracking.registered_model
    assert questions["table"]["default"] == params.data.raw.as_posix()
    assert (questions["target"]["default"], questions["id_column"]["default"]) == (
        params.base.target,
        params.base.id_column,
    )
    assert yaml.safe_load(questions["sensitive_columns"]["default"]) == list(params.fairness.groups)
    assert questions["primary_metric"]["default"] == params.train.primary_metric
    assert set(questions) - {k for k in questions if k.startswith("_")} == set(ANSWERS)


def test_copy_then_update_keeps_the_team_s_files_and_brings_the_template_s(template: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    # The answers task says what it filled; it runs after a copy only.
    assert "filled from .copier-answers.yml: params.yaml, deploy/production.yaml, deploy/staging.yaml" in _copy(
        template, project
    )

    # The answers are in params.yaml and the manifests, and nothing else changed: not a comment.
    before, after = (template / "params.yaml").read_text(), (project / "params.yaml").read_text()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert [b.split(":")[0].strip() for _, b in changed] == [k.split(".")[1] for k in ANSWER_KEYS]
    params = load_params(project / "params.yaml")
    assert params.tracking.experiment == ANSWERS["project_name"]
    assert params.tracking.registered_model == ANSWERS["registered_model"]
    assert params.train.primary_metric == ANSWERS["primary_metric"]
    for manifest in ("deploy/staging.yaml", "deploy/production.yaml"):
        text = (project / manifest).read_text()
        assert text == (template / manifest).read_text().replace(
            "model: employment-ma", f"model: {ANSWERS['registered_model']}"
        )
    # Every other file byte for byte: the workflows' ${{ }} expressions were not rendered.
    copied = _files(project)
    assert copied == _files(template) - TEMPLATE_ONLY | {".copier-answers.yml"}
    for rel in sorted(copied - {"params.yaml", "deploy/staging.yaml", "deploy/production.yaml", ".copier-answers.yml"}):
        assert (project / rel).read_bytes() == (template / rel).read_bytes(), rel
    assert "${{" in (project / ".github/workflows/ci.yml").read_text()
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"] == "v1"

    # The team customises: a small sample for this test, an experiment renamed by hand (an answer
    # the update must not re-apply), the model card's prose.
    text = (project / "params.yaml").read_text()
    text = params_edit.set_scalar(text=text, key="data.sample_rows", value=str(SAMPLE_ROWS))
    text = params_edit.set_scalar(text=text, key="tracking.experiment", value="acme-employment-2")
    (project / "params.yaml").write_text(text)
    _edit(project / "docs/model_card_source.yaml", "owners: The team that forks this template.\n", OWNERS)
    _commit(project, "our settings")
    team_lock = (project / "dvc.lock").read_bytes()

    # Template release 2: an action pin's comment, a pipeline docstring, a params comment far from
    # the team's lines, and a re-run's dvc.lock.
    ci = template / ".github/workflows/ci.yml"
    pin = re.search(r"uses: actions/checkout@[0-9a-f]{40} # (v[\d.]+)", ci.read_text())
    assert pin is not None
    ci.write_text(ci.read_text().replace(pin.group(0), f"{pin.group(0)} (checked by zizmor)"))
    _edit(template / "pipeline/stages/card.py", CARD_DOCSTRING, CARD_DOCSTRING + "Release 2 of the template.\n")
    _edit(
        template / "params.yaml",
        "  # How often the service re-resolves",
        "  # How often (release 2) the service re-resolves",
    )
    _edit(template / "dvc.lock", "schema: '2.0'\n", "schema: '2.0'\n# re-run for release 2\n")
    _commit(template, "template release 2", tag="v2")

    # Had the task run again, the update's merge would hide it (it re-applies the team's edits on
    # top): its own report is where a second run would show.
    assert "filled from" not in _update(project, "v2")

    for rel in (".github/workflows/ci.yml", "pipeline/stages/card.py"):
        assert (project / rel).read_bytes() == (template / rel).read_bytes(), rel
    params = load_params(project / "params.yaml")
    assert "# How often (release 2) the service re-resolves" in (project / "params.yaml").read_text()
    assert params.data.sample_rows == SAMPLE_ROWS
    assert params.tracking.experiment == "acme-employment-2"
    assert params.tracking.registered_model == ANSWERS["registered_model"]
    assert params.train.primary_metric == ANSWERS["primary_metric"]
    assert OWNERS in (project / "docs/model_card_source.yaml").read_text()
    assert f"model: {ANSWERS['registered_model']}\n" in (project / "deploy/production.yaml").read_text()
    assert (project / "dvc.lock").read_bytes() == team_lock
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"] == "v2"
    assert _rejects(project) == []
    assert runner.update_leftovers(root=project) == []
    assert _git(project, "ls-files", "--unmerged") == ""

    run([str(BIN / "dvc"), "repro"], project)
    assert load_params(project / "params.yaml").train.primary_metric in (project / "reports/train.json").read_text()
    assert "The acme analytics team" in (project / "model_card.md").read_text()


def test_a_line_both_changed_is_a_conflict_lint_refuses(template: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    _copy(template, project)
    _edit(project / "pipeline/stages/card.py", CARD_DOCSTRING, '"""Our model card, our way.\n')
    _commit(project, "our docstring")
    _edit(template / "pipeline/stages/card.py", CARD_DOCSTRING, '"""Render model_card.md, release 2.\n')
    _commit(template, "template release 2", tag="v2")

    _update(project, "v2")

    text = (project / "pipeline/stages/card.py").read_text()
    lines = text.splitlines()
    assert lines[:5] == [
        "<" * 7 + " before updating",
        '"""Our model card, our way.',
        "=======",
        '"""Render model_card.md, release 2.',
        ">" * 7 + " after updating",
    ]
    problems = runner.update_leftovers(root=project)
    assert len(problems) == 1
    assert problems[0].startswith("pipeline/stages/card.py: conflict markers on lines 1, 5;")
    # Unmerged in git's index too: `git commit` refuses until the file is resolved and added.
    assert "pipeline/stages/card.py" in _git(project, "ls-files", "--unmerged")
    assert _rejects(project) == []


def test_the_answers_apply_with_copier_s_interpreter_alone(tmp_path: Path) -> None:
    # copier's interpreter has PyYAML but none of the project's dependencies: the task must not
    # need them. -S leaves out every site-packages folder; PYTHONPATH then holds PyYAML only.
    project = tmp_path / "project"
    for rel in ("params.yaml", "deploy/staging.yaml", "deploy/production.yaml", "scripts/apply_answers.py"):
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(DEMO / rel if Path(rel) in DEMO_FILES else REPO_ROOT / rel, project / rel)
    for rel in ("pipeline/__init__.py", "pipeline/core/__init__.py", "pipeline/core/params_edit.py"):
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / rel, project / rel)
    only_yaml = tmp_path / "only_yaml"
    only_yaml.mkdir()
    (only_yaml / "yaml").symlink_to(Path(yaml.__file__).parent)

    def apply(answers: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        (project / "answers.yml").write_text(yaml.safe_dump(answers))
        return subprocess.run(
            [sys.executable, "-S", "scripts/apply_answers.py", "answers.yml"],
            cwd=project,
            env={"PYTHONPATH": str(only_yaml), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=False,
        )

    before = {p: p.read_bytes() for p in (project / "params.yaml", *sorted((project / "deploy").glob("*.yaml")))}
    refused = apply({**ANSWERS, "sensitive_columns": ["gender"]})
    assert refused.returncode == 2
    assert refused.stderr.startswith("answers not applied: answer sensitive_columns:")
    assert len(refused.stderr.splitlines()) == 1
    assert {p: p.read_bytes() for p in before} == before

    done = apply(ANSWERS)
    assert done.returncode == 0, done.stderr
    assert load_params(project / "params.yaml").tracking.registered_model == ANSWERS["registered_model"]
    for manifest in before:
        if manifest.parent.name == "deploy":
            assert yaml.safe_load(manifest.read_text())["model"] == ANSWERS["registered_model"]
