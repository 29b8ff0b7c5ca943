"""Pipeline overhead: the whole `dvc repro` on the shipped data vs a bare scikit-learn script
fitting and evaluating the same model, both as whole processes in one run; plus a no-op
`dvc repro` and `pipeline --help`.

    python -m benchmarks pipeline
"""

from __future__ import annotations

import json
import logging
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.measure import measure_process

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Copied into the scratch repository: what `dvc repro` needs, nothing more.
TEMPLATE = ("pipeline", "data/raw", "docs", ".dvc/config", "dvc.yaml", "params.yaml", "uv.lock", "pyproject.toml")


def _env() -> dict[str, str]:
    from pipeline.core.runner import tool_env

    env = {k: v for k, v in tool_env().items() if not k.startswith("MLFLOW_TRACKING")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _scratch_repo(dest: Path) -> Path:
    for rel in TEMPLATE:
        src = ROOT / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    env = _env()
    for args in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "b"],
    ):
        measure_process(args, cwd=dest, env=env)
    return dest


def run(repeats: int = 2) -> dict[str, Any]:
    """Median of `repeats` runs of each, alternating so machine noise hits both alike."""
    env = _env()
    with tempfile.TemporaryDirectory() as tmp:
        repo = _scratch_repo(Path(tmp))
        pipeline_s, bare_s = [], []
        for i in range(repeats):
            logger.info("round %d/%d: dvc repro --force", i + 1, repeats)
            pipeline_s.append(measure_process([str(BIN / "dvc"), "repro", "--force"], cwd=repo, env=env).wall_s)
            logger.info("round %d/%d: bare scikit-learn script", i + 1, repeats)
            bare = measure_process(
                [sys.executable, "-m", "benchmarks.bare_sklearn", str(repo / "params.yaml")], cwd=repo, env=env
            )
            bare_s.append(bare.wall_s)
        noop = [measure_process([str(BIN / "dvc"), "repro"], cwd=repo, env=env).wall_s for _ in range(3)]
        helps = [measure_process([str(BIN / "pipeline"), "--help"], cwd=repo, env=env).wall_s for _ in range(5)]
        bare_result = json.loads(bare.stdout.strip().splitlines()[-1])
        pipe_metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    # The pipeline's reports round to 6 decimals (reruns stay byte-identical); compare at that precision.
    figures = {
        "pipeline_s": statistics.median(pipeline_s),
        "bare_sklearn_s": statistics.median(bare_s),
        "noop_repro_s": statistics.median(noop),
        "help_s": statistics.median(helps),
        "same_test_roc_auc": abs(bare_result["roc_auc"] - pipe_metrics["roc_auc"]) <= 5e-7,
        "roc_auc": pipe_metrics["roc_auc"],
    }
    figures["overhead_ratio"] = figures["pipeline_s"] / figures["bare_sklearn_s"]
    return figures


def render(f: dict[str, Any]) -> str:
    return "\n".join(
        [
            "pipeline overhead (shipped data, whole processes, median)",
            f"  dvc repro --force   {f['pipeline_s']:7.2f} s",
            f"  bare scikit-learn   {f['bare_sklearn_s']:7.2f} s   (same model and split: {f['same_test_roc_auc']})",
            f"  ratio               {f['overhead_ratio']:7.2f} x   (target <= 1.5x)",
            f"  no-op dvc repro     {f['noop_repro_s']:7.2f} s   (target < 3 s)",
            f"  pipeline --help     {f['help_s']:7.2f} s   (target < 1 s)",
        ]
    )
