"""`pipeline lint` refuses what an unresolved `copier update` leaves: *.rej files and conflict markers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipeline.core import runner

pytestmark = pytest.mark.unit

MARKED = b"keep\n" + b"<" * 7 + b" before updating\nours\n=======\ntheirs\n" + b">" * 7 + b" after updating\n"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / ".gitignore").write_text("ignored/\n")
    (tmp_path / "clean.py").write_text('"""Nothing to see."""\n')
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "start")
    return tmp_path


def test_a_clean_work_tree_has_no_leftovers(repo: Path) -> None:
    assert runner.update_leftovers(root=repo) == []


def test_rejected_hunks_are_refused_unless_ignored(repo: Path) -> None:
    (repo / "params.yaml.rej").write_text("@@ -1 +1 @@\n")
    (repo / "sub").mkdir()
    (repo / "sub" / "ci.yml.rej").write_text("@@ -1 +1 @@\n")
    _git(repo, "add", "sub/ci.yml.rej")
    (repo / "ignored").mkdir()
    (repo / "ignored" / "x.rej").write_text("@@ -1 +1 @@\n")
    problems = runner.update_leftovers(root=repo)
    assert len(problems) == 2
    assert problems[0].startswith("params.yaml.rej: ")
    assert problems[1].startswith("sub/ci.yml.rej: ")


def test_conflict_markers_in_tracked_text_files_are_refused_with_their_lines(repo: Path) -> None:
    (repo / "clean.py").write_bytes(MARKED)
    (repo / "untracked.txt").write_bytes(MARKED)
    problems = runner.update_leftovers(root=repo)
    assert problems == ["clean.py: conflict markers on lines 2, 6; keep the right text and delete the markers"]


def test_lookalikes_and_binary_files_are_not_conflicts(repo: Path) -> None:
    (repo / "notes.md").write_bytes(b"a <<<<<<< b\n  " + b">" * 7 + b" indented\n" + b"<" * 12 + b"\n=======\n")
    (repo / "table.parquet").write_bytes(b"PAR1\0" + MARKED)
    _git(repo, "add", "-A")
    assert runner.update_leftovers(root=repo) == []


def test_an_unmerged_file_is_reported_once(repo: Path) -> None:
    # What `copier update --conflict inline` leaves: the file with markers, unmerged in the index.
    _git(repo, "checkout", "-q", "-b", "other")
    (repo / "clean.py").write_text('"""Theirs."""\n')
    _git(repo, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qam", "theirs")
    _git(repo, "checkout", "-q", "main")
    (repo / "clean.py").write_text('"""Ours."""\n')
    _git(repo, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qam", "ours")
    assert subprocess.run(["git", "merge", "-q", "other"], cwd=repo, capture_output=True, check=False).returncode
    problems = runner.update_leftovers(root=repo)
    assert len(problems) == 1
    assert problems[0].startswith("clean.py: conflict markers on lines 1, 5;")


def test_outside_a_git_work_tree_nothing_is_reported(tmp_path: Path) -> None:
    (tmp_path / "x.rej").write_text("@@\n")
    assert runner.update_leftovers(root=tmp_path) == []


def test_lint_fails_on_leftovers(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(repo)
    assert "update leftovers" not in runner.lint()
    (repo / "params.yaml.rej").write_text("@@\n")
    assert "update leftovers" in runner.lint()
    assert "params.yaml.rej: hunks an update could not apply" in capsys.readouterr().out
