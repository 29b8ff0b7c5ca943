"""What dvc.yaml says about paths, read through DVC's own index (so `${...}` from params.yaml is
resolved exactly as `dvc repro` resolves it): the inputs of the pipeline, which decide whether a
push releases a model, and the outputs git keeps, which a retraining pull request must commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

LOCK_FILE = "dvc.lock"


class DvcFilesError(RuntimeError):
    """dvc.yaml could not be read (one line)."""


@dataclass(frozen=True)
class PipelineFiles:
    # dvc.yaml and .dvc files themselves, every stage dependency (code, data, params files).
    inputs: tuple[str, ...]
    # Outputs with `cache: false`: git keeps them (reports, metrics, plots, the model card).
    committed_outs: tuple[str, ...]
    # Outputs DVC caches and pushes to the remote; git ignores them.
    cached_outs: tuple[str, ...]


def _posix(path: str | Path, root: Path) -> str:
    path = Path(path)
    if path.is_absolute() and path.resolve().is_relative_to(root.resolve()):
        path = path.resolve().relative_to(root.resolve())
    return PurePosixPath(path.as_posix()).as_posix()


def read(*, root: Path = Path(".")) -> PipelineFiles:
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    inputs: set[str] = set()
    committed: list[str] = []
    cached: list[str] = []
    try:
        with Repo(str(root)) as repo:
            for stage in repo.index.stages:
                inputs.add(_posix(stage.path, root))
                inputs.update(_posix(dep.fs_path, root) for dep in stage.deps)
                for out in stage.outs:
                    (cached if out.use_cache else committed).append(_posix(out.fs_path, root))
    except DvcException as exc:
        raise DvcFilesError(f"cannot read the DVC pipeline in {root}: {' '.join(str(exc).split())}") from exc
    # Outputs of one stage are inputs of the next: they change when the pipeline reruns, not by hand.
    produced = (*committed, *cached)
    return PipelineFiles(
        inputs=tuple(sorted({p for p in inputs if not touches(p, produced)} | {LOCK_FILE})),
        committed_outs=tuple(committed),
        cached_outs=tuple(cached),
    )


def touches(path: str, prefixes: tuple[str, ...]) -> bool:
    """`path` is one of `prefixes` or lies under one of them (a directory dependency)."""
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def pr_paths(*, root: Path = Path("."), params_file: Path, raw: Path) -> list[str]:
    """The files a pipeline rerun changes that git tracks, as they exist now: the params file, dvc.lock,
    the raw table (or its .dvc file when DVC tracks it) and every uncached output. Paths that do not
    exist are left out (a pull-request action refuses a path that matches nothing).
    """
    files = read(root=root)
    raw_posix = _posix(raw, root)
    raw_entry = f"{raw_posix}.dvc" if (root / f"{raw_posix}.dvc").is_file() else raw_posix
    wanted = [_posix(params_file, root), LOCK_FILE, raw_entry, *files.committed_outs]
    seen: list[str] = []
    for path in wanted:
        if path not in seen and (root / path).exists():
            seen.append(path)
    return seen


def write_paths_output(paths: list[str], *, path: Path, name: str = "paths") -> None:
    """`paths` as one multi-line step output (GITHUB_OUTPUT), e.g. for a pull-request action's add-paths."""
    import secrets

    # A multi-line value needs a delimiter no path can contain.
    delimiter = f"{name}-{secrets.token_hex(8)}"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(f"{name}<<{delimiter}\n" + "".join(f"{p}\n" for p in paths) + f"{delimiter}\n")
