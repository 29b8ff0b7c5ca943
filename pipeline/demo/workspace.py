"""The demo's temporary git repository: a copy of the template, git calls, commits and working in it."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

ERR_NO_TEMPLATE = "{path}: not a checkout of the template (no params.yaml or dvc.yaml); run from the project root"
ERR_STEP = "demo step {step!r} failed: {detail}"


# Here rather than in the loop: the repository's git calls raise it too, and the loop imports this module.
class DemoError(RuntimeError):
    """A step of the demo failed; the message names it."""


def git(*args: str, repo: Path) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DemoError(ERR_STEP.format(step=f"git {' '.join(args)}", detail=result.stderr.strip()))
    return result.stdout


def copy_template(*, source: Path, dest: Path, sample_rows: int, skip: Path) -> None:
    """The template's tracked and new files (not tests, benchmarks or the production folder `skip`,
    relative to source) in a fresh repo.
    """
    if not (source / "params.yaml").is_file() or not (source / "dvc.yaml").is_file():
        raise DemoError(ERR_NO_TEMPLATE.format(path=source))
    listed = git("ls-files", "--cached", "--others", "--exclude-standard", "-z", repo=source)
    production = (skip.relative_to(source) if skip.is_absolute() and skip.is_relative_to(source) else skip).parts
    for rel in (Path(p) for p in listed.split("\0") if p):
        if rel.parts[0] in {"tests", "benchmarks"} or (production and rel.parts[: len(production)] == production):
            continue
        if not (source / rel).is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, dest / rel)
    params_file = dest / "params.yaml"
    text = params_file.read_text(encoding="utf-8")
    params_file.write_text(text.replace("sample_rows: 0", f"sample_rows: {sample_rows}", 1), encoding="utf-8")
    for args in (
        ("init", "-q", "-b", "main"),
        ("config", "user.email", "demo@example.invalid"),
        ("config", "user.name", "demo"),
        ("add", "-A"),
        ("commit", "-qm", "template"),
    ):
        git(*args, repo=dest)


def set_retrain_scale(*, params_path: Path, min_rows: int, max_periods: int) -> None:
    # The demo runs at a small scale: its temporary copy asks for as many labels as it sends.
    text = params_path.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^(\s+min_labelled_rows:).*$", rf"\g<1> {min_rows}", text)
    text = re.sub(r"(?m)^(\s+max_periods:).*$", rf"\g<1> {max_periods}", text)
    params_path.write_text(text, encoding="utf-8")


def commit(*paths: str, repo: Path, message: str) -> None:
    git("add", "-A", *paths, repo=repo)
    if git("status", "--porcelain", repo=repo):
        git("commit", "-qm", message, repo=repo)


@contextlib.contextmanager
def inside(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)
