"""Where the new training table goes: DVC tracks it (`dvc add`: a `.dvc` pointer for git, the
file itself git-ignored) and the DVC remote stores it. The remote is checked, and the table's
bytes uploaded to it, before the working tree changes at all, so a missing or unreachable
remote leaves the repository as it was. `commit_paths` lists what the pull request commits:
never the table when DVC tracks it.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.core import dvc_remote
from pipeline.core.redact import redact
from pipeline.core.runner import tool, tool_env

logger = logging.getLogger(__name__)

ERR_UNREACHABLE = "DVC remote {name!r} cannot take the training table ({detail}); nothing was changed"
ERR_DVC = "dvc {step} {path} failed: {detail}"
POINTER_SUFFIX = ".dvc"


@dataclass(frozen=True)
class Tracked:
    """What tracking a table changed, so that a failure can undo it."""

    path: Path
    pointer: Path
    created_file: bool
    gitignore: Path
    gitignore_before: str | None
    # The same content tracked before (a rerun): its pointer stays; a table git tracked goes back.
    pointer_before: str | None = None
    was_in_git: bool = False


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return redact(lines[-1]) if lines else "no detail"


def remote_for(*, required: bool, root: Path = Path(".")) -> str | None:
    """The DVC remote the table goes to: refused when `required` and there is none; None when
    optional and none is configured (the table then stays in the working tree, as the demo's).
    """
    if required:
        return dvc_remote.require_remote(root=root)
    if dvc_remote.default_remote(root=root) is None:
        return None
    return dvc_remote.require_remote(root=root)


def ensure_local(path: Path, *, root: Path = Path(".")) -> None:
    """A table DVC tracks but this checkout lacks (a fresh clone, a runner) is pulled first."""
    pointer = Path(f"{path.as_posix()}{POINTER_SUFFIX}")
    if not (root / path).exists() and (root / pointer).is_file():
        dvc_remote.pull([pointer], root=root)


def upload(*, file: Path, remote: str, root: Path = Path(".")) -> str:
    """Put the file's bytes in the remote by content (as `dvc push` would), from outside the
    working tree: the proof the remote takes the table, before anything in the repository moves.
    Returns the md5 DVC will record for it.
    """
    from dvc.repo import Repo
    from dvc_data.hashfile.hash import file_md5
    from dvc_objects.fs.local import LocalFileSystem

    repo = None
    try:
        repo = Repo(str(root))
        odb = repo.cloud.get_remote_odb(remote, "push")
        local = LocalFileSystem()
        md5 = str(file_md5(str(file), local))
        odb.add(str(file), local, md5)
    except Exception as exc:
        # Storage libraries raise their own types (connection, permission, credentials).
        detail = _one_line(str(exc)) if str(exc).strip() else type(exc).__name__
        raise dvc_remote.RemoteError(ERR_UNREACHABLE.format(name=remote, detail=detail)) from exc
    finally:
        if repo is not None:
            repo.close()
    return md5


def _run(args: Sequence[str], *, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=root, env=tool_env(), capture_output=True, text=True, check=False)


def _untrack_from_git(path: Path, *, root: Path) -> bool:
    """A table committed to git before (the demo path without a remote) moves to DVC: dvc add
    refuses a file git tracks. True when it was in git.
    """
    rel = path.as_posix()
    if _run(["git", "ls-files", "--error-unmatch", "--", rel], root=root).returncode != 0:
        return False
    _run(["git", "rm", "--cached", "--quiet", "--", rel], root=root)
    return True


def track(*, path: Path, staged: Path, root: Path = Path(".")) -> Tracked:
    """Move the staged table to `path` (kept when the same content is there already) and `dvc add`
    it: a pointer beside it and a .gitignore entry, the way dvc add writes them.
    """
    target = root / path
    pointer = Path(f"{path.as_posix()}{POINTER_SUFFIX}")
    gitignore = target.parent / ".gitignore"
    before = gitignore.read_text(encoding="utf-8") if gitignore.is_file() else None
    pointer_before = (root / pointer).read_text(encoding="utf-8") if (root / pointer).is_file() else None
    created = not target.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    if created:
        shutil.move(staged, target)
    was_in_git = _untrack_from_git(path, root=root)
    tracked = Tracked(path, pointer, created, gitignore, before, pointer_before, was_in_git)
    result = _run([tool("dvc"), "add", "--quiet", path.as_posix()], root=root)
    if result.returncode != 0:
        undo(tracked, root=root)
        raise dvc_remote.RemoteError(ERR_DVC.format(step="add", path=path, detail=_one_line(result.stderr)))
    return tracked


def undo(tracked: Tracked, *, root: Path = Path(".")) -> None:
    """Back to the working tree before `track`: the pointer and .gitignore as they were, no new
    file, a table git tracked back in git's index.
    """
    for file, text in ((root / tracked.pointer, tracked.pointer_before), (tracked.gitignore, tracked.gitignore_before)):
        if text is None:
            file.unlink(missing_ok=True)
        else:
            file.write_text(text, encoding="utf-8")
    if tracked.created_file:
        (root / tracked.path).unlink(missing_ok=True)
    if tracked.was_in_git:
        _run(["git", "add", "--", tracked.path.as_posix()], root=root)


def push(tracked: Tracked, *, root: Path = Path(".")) -> None:
    """Push the pointer's table; on failure the tracking is undone."""
    try:
        dvc_remote.push([tracked.pointer], root=root)
    except dvc_remote.RemoteError:
        undo(tracked, root=root)
        raise


def push_outputs(*, root: Path = Path(".")) -> bool:
    """Push the pipeline's cached outputs too, so `dvc pull` on the branch restores everything;
    a failure is a warning: CI can rebuild them with `dvc repro`.
    """
    try:
        dvc_remote.push([], root=root)
    except dvc_remote.RemoteError as exc:
        logger.warning("the pipeline's outputs were not pushed (CI rebuilds them): %s", exc)
        return False
    return True


# --------------------------------------------------------------------------- what to commit


def commit_paths(*, raw: Path, params_path: Path, root: Path = Path(".")) -> list[str]:
    """What the retraining pull request commits (existing paths only): `pipeline pr-paths`'s list
    (params.yaml, dvc.lock, the table's `.dvc` pointer, every output dvc.yaml keeps in git) plus
    the .gitignore `dvc add` wrote beside the pointer. The table itself only when DVC does not
    track it (the demo without a remote commits its table as before).
    """
    from pipeline.ci.dvcfiles import DvcFilesError, pr_paths

    try:
        paths = pr_paths(root=root, params_file=params_path, raw=raw)
    except DvcFilesError as exc:
        raise dvc_remote.RemoteError(str(exc)) from exc
    pointer = f"{raw.as_posix()}{POINTER_SUFFIX}"
    ignore = (raw.parent / ".gitignore").as_posix()
    if pointer in paths and ignore not in paths and (root / ignore).is_file():
        paths.insert(paths.index(pointer) + 1, ignore)
    return paths
