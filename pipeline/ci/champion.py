"""`pipeline champion fetch`: the model of a base commit, as a file, for the gate.

The base commit's dvc.lock names the model's content hash. The file is read with dvc.api from
the local cache or the configured remote; when neither holds it, the base commit is rebuilt in a
temporary git worktree (DVC's run cache makes that instant when the same stage ran before).
A marker file beside the output records where the model came from, including "none" when the
base commit has no model yet, so the gate can tell a first model from a wrong path.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

MARKER_SUFFIX = ".json"


class ChampionError(RuntimeError):
    """The base revision is unknown, or its model could neither be read nor rebuilt."""


def marker_path(*, out: Path) -> Path:
    return out.parent / (out.name + MARKER_SUFFIX)


def read_marker(*, out: Path) -> dict[str, Any] | None:
    from pipeline.core import io

    path = marker_path(out=out)
    if not path.is_file():
        return None
    data = io.read_json(path)
    return data if isinstance(data, dict) else None


def _git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def resolve(*, rev: str) -> str:
    result = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if result.returncode != 0 or not result.stdout.strip():
        raise ChampionError(
            f"revision {rev!r} not found in this repository (a shallow clone needs fetch-depth: 0 to see the base)"
        )
    return result.stdout.strip()


def _show(commit: str, path: str) -> str | None:
    result = _git("show", f"{commit}:{path}")
    return result.stdout if result.returncode == 0 else None


def model_stage(*, lock_text: str, model_path: str) -> tuple[str, str] | None:
    """Pure: (stage name, md5) of the dvc.lock stage whose outs include the model, or None."""
    lock = yaml.safe_load(lock_text) or {}
    for name, stage in (lock.get("stages") or {}).items():
        for out in stage.get("outs") or []:
            if out.get("path") == model_path:
                return str(name), str(out.get("md5", ""))
    return None


def _model_path_at(commit: str, default: str) -> str:
    # The base may keep the model elsewhere: its own params.yaml says where.
    text = _show(commit, "params.yaml")
    try:
        value = (yaml.safe_load(text) or {}).get("paths", {}).get("model") if text else None
    except yaml.YAMLError:
        value = None
    return str(value or default)


def _from_dvc(*, commit: str, model_path: str, out: Path) -> bool:
    import dvc.api

    try:
        with dvc.api.open(model_path, repo=".", rev=commit, mode="rb") as src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    except Exception as exc:  # dvc raises many types (no remote, missing cache, network)
        logger.info("model of %s is not in the DVC cache or remote (%s): rebuilding", commit[:12], exc)
        out.unlink(missing_ok=True)
        return False
    return True


def _rebuild(*, commit: str, stage: str, model_path: str, out: Path) -> None:
    from pipeline.core.runner import BIN, tool_env

    dvc = str(BIN / "dvc") if (BIN / "dvc").exists() else "dvc"
    cache = subprocess.run([dvc, "cache", "dir"], capture_output=True, text=True, check=False, env=tool_env())
    with tempfile.TemporaryDirectory(prefix="champion-") as tmp:
        tree = Path(tmp) / "base"
        added = _git("worktree", "add", "--detach", str(tree), commit)
        if added.returncode != 0:
            raise ChampionError(f"cannot check out {commit[:12]} to rebuild its model: {added.stderr.strip()}")
        try:
            env = tool_env()
            # The rebuild's MLflow run is scratch: it must not land in the team's tracking server.
            env["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
            if cache.returncode == 0 and cache.stdout.strip():
                # Share the cache: outputs and the run cache of earlier runs are reused, not recomputed.
                subprocess.run(
                    [dvc, "config", "--local", "cache.dir", cache.stdout.strip()], cwd=tree, env=env, check=False
                )
            logger.info("rebuilding stage %s of %s in a temporary worktree", stage, commit[:12])
            result = subprocess.run([dvc, "repro", stage], cwd=tree, env=env, check=False)
            built = tree / model_path
            if result.returncode != 0 or not built.is_file():
                raise ChampionError(f"rebuilding the model of {commit[:12]} failed: `dvc repro {stage}` said why above")
            shutil.copyfile(built, out)
        finally:
            _git("worktree", "remove", "--force", str(tree))


def fetch(*, rev: str, out: Path, default_model_path: str, rebuild: bool = True) -> dict[str, Any]:
    """Write the base revision's model to `out` and a marker beside it; return the marker."""
    from pipeline.core import io

    commit = resolve(rev=rev)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    model_path = _model_path_at(commit, default_model_path)
    lock_text = _show(commit, "dvc.lock")
    found = model_stage(lock_text=lock_text, model_path=model_path) if lock_text else None
    marker: dict[str, Any] = {"rev": rev, "commit": commit, "model_path": model_path}
    if found is None:
        marker |= {"source": "none", "detail": f"{commit[:12]} has no {model_path} in dvc.lock: no champion yet"}
    else:
        stage, md5 = found
        marker["md5"] = md5
        if _from_dvc(commit=commit, model_path=model_path, out=out):
            marker["source"] = "dvc"
        elif rebuild:
            _rebuild(commit=commit, stage=stage, model_path=model_path, out=out)
            marker["source"] = "rebuilt"
            marker["rebuilt_md5"] = io.file_md5(out)
            if marker["rebuilt_md5"] != md5:
                logger.warning("rebuilt model differs byte-wise from the one recorded in dvc.lock of %s", commit[:12])
        else:
            raise ChampionError(f"the model of {commit[:12]} is not in the DVC cache or remote, and rebuilding is off")
    io.write_json(marker, marker_path(out=out))
    logger.info("champion of %s: %s", rev, marker.get("detail") or f"{out} ({marker['source']})")
    return marker
