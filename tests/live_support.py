"""Production traffic in the prediction log from real demo rows: answers with association ids at
chosen times and their late labels, plus throwaway git + DVC projects with a folder remote. Shared
by the live loop's unit tests and its end-to-end test.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core import predlog
from pipeline.core.config import Params
from pipeline.core.runner import tool_env
from pipeline.core.schema import request_features

DAY = predlog.DAY_SECONDS
BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin"


def demo_month(root: Path, params: Params, *, year: int, rows: int, seed: int) -> pd.DataFrame:
    """`rows` real rows of one demo production year, features joined with their labels."""
    folder = root / params.retrain.production_dir
    features = pd.read_parquet(folder / f"{year}_features.parquet")
    labels = pd.read_parquet(folder / f"{year}_labels.parquet")
    frame = features.merge(labels, on=params.base.id_column, how="inner")
    return frame.sample(rows, random_state=seed).reset_index(drop=True)


def scores_for(frame: pd.DataFrame, params: Params, *, seed: int, noise: float = 0.25) -> np.ndarray:
    """Scores that know the label, blurred: a model of about 0.9 ROC AUC, no file needed."""
    rng = np.random.default_rng(seed)
    y = frame[params.base.target].to_numpy(dtype=float)
    return np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(0, noise, len(frame)), 0.0, 1.0)


def answers(
    frame: pd.DataFrame,
    params: Params,
    *,
    times: Sequence[float],
    scores: Sequence[float],
    env: str = "production",
    role: str = "champion",
    extra: dict[str, object] | None = None,
) -> list[predlog.LogRecord]:
    """One logged answer per row, its association id the row's id as text, the inputs as the
    service logs them (every declared column).
    """
    out = []
    for row, ts, score in zip(frame.to_dict(orient="records"), times, scores, strict=True):
        inputs = {**request_features(row, params.data), **(extra or {})}
        out.append(
            predlog.record(
                association_id=str(row[params.base.id_column]),
                env=env,
                model_name="employment",
                model_version="1",
                role=role,
                inputs=inputs,
                score=float(score),
                latency_ms=1.0,
                ts=float(ts),
            )
        )
    return out


def write_log(url: str, records: Sequence[predlog.LogRecord]) -> str:
    store = predlog.open_store(url)
    try:
        for start in range(0, len(records), 2000):
            store.write(records[start : start + 2000])
    finally:
        store.close()
    return url


def labels(
    frame: pd.DataFrame, params: Params, *, observed: float, source: str = "feedback", ids: Sequence[str] | None = None
) -> list[predlog.LabelRecord]:
    """The rows' true labels keyed by their association ids (or by `ids` instead)."""
    keys = [str(v) for v in frame[params.base.id_column]] if ids is None else list(ids)
    return [
        predlog.LabelRecord(
            association_id=key, label=int(value), raw_label=str(value), observed_at=observed, source=source
        )
        for key, value in zip(keys, frame[params.base.target], strict=True)
    ]


def spread(*, start: float, end: float, count: int) -> np.ndarray:
    """`count` prediction times evenly over [start, end)."""
    return np.linspace(start, end, count, endpoint=False)


def run(cmd: Sequence[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    merged = {**tool_env(), **env}
    return subprocess.run(list(cmd), cwd=cwd, env=merged, capture_output=True, text=True, check=False)


def must(cmd: Sequence[str], cwd: Path, **env: str) -> str:
    result = run(cmd, cwd, **env)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def git_dvc_project(root: Path, *, remote: Path | str | None) -> Path:
    """A git repository with DVC initialised (analytics off) and, if given, a default remote
    committed in .dvc/config.
    """
    must(["git", "init", "-q", "-b", "main"], root)
    must(["git", "config", "user.email", "ci@example.invalid"], root)
    must(["git", "config", "user.name", "ci"], root)
    if not (root / ".dvc").is_dir():
        must([str(BIN / "dvc"), "init", "-q"], root)
    must([str(BIN / "dvc"), "config", "core.analytics", "false"], root)
    if remote is not None:
        must([str(BIN / "dvc"), "remote", "add", "-f", "-d", "storage", str(remote)], root)
    must(["git", "add", "-A"], root)
    must(["git", "commit", "-qm", "project"], root)
    return root


def tree(root: Path) -> dict[str, bytes]:
    """Every file of a project but git's and DVC's own scratch: what "nothing changed" compares."""
    skip = (".git/", ".dvc/tmp/", ".dvc/cache/")
    return {
        rel: p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not (rel := p.relative_to(root).as_posix()).startswith(skip)
    }


def copy_files(source: Path, dest: Path, rels: Sequence[str]) -> None:
    for rel in rels:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, dest / rel)
