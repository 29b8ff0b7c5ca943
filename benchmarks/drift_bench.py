"""Drift check vs Evidently's DataDriftPreset and NannyML's UnivariateDriftCalculator.

Synthetic data: reference and current tables of `rows` x 25 columns (20 numeric, 5 categorical)
with three columns shifted. Each tool runs as its own process (whole-process wall time and peak
RSS from os.wait4), plus one process that only reads the two parquet files. The peers need
pandas<3, so they live in their own environment, benchmarks/.peers/, built on first use from
benchmarks/requirements-peers.txt.

    python -m benchmarks.drift_bench --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import measure_process

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = HERE / ".peers"
PEERS_PYTHON = PEERS / "bin" / "python"
REQUIREMENTS = HERE / "requirements-peers.txt"
RESULTS = HERE / "results"

NUMERIC = [f"num_{i:02d}" for i in range(20)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
# The planted shifts: a location shift, a scale change and a change of category shares.
SHIFTED = ["num_00", "num_01", "cat_0"]
# The effect-size line every tool is judged at (Evidently's default for both kinds of column).
PEER_THRESHOLD = 0.1


# --------------------------------------------------------------------------- data


def make_data(*, rows: int, seed: int, out_dir: Path) -> tuple[Path, Path]:
    """Write reference.parquet and current.parquet (once per size and seed)."""
    import numpy as np
    import pandas as pd

    ref_path, cur_path = out_dir / "reference.parquet", out_dir / "current.parquet"
    if ref_path.is_file() and cur_path.is_file():
        return ref_path, cur_path
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    levels = [f"v{i}" for i in range(6)]
    base_shares = np.array([0.3, 0.25, 0.2, 0.1, 0.1, 0.05])
    shifted_shares = np.array([0.1, 0.15, 0.2, 0.2, 0.15, 0.2])

    def table(*, shifted: bool) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for i, name in enumerate(NUMERIC):
            loc = 0.5 if shifted and name == "num_00" else 0.0
            scale = 1.6 if shifted and name == "num_01" else 1.0
            data[name] = rng.normal(loc=loc + i, scale=scale, size=rows)
        for name in CATEGORICAL:
            shares = shifted_shares if shifted and name == "cat_0" else base_shares
            data[name] = pd.array(np.asarray(levels)[rng.choice(len(levels), size=rows, p=shares)], dtype="str")
        return pd.DataFrame(data)

    table(shifted=False).to_parquet(ref_path, index=False)
    table(shifted=True).to_parquet(cur_path, index=False)
    return ref_path, cur_path


# --------------------------------------------------------------------------- workers (one process each)


def _worker_read(ref_path: Path, cur_path: Path) -> dict[str, Any]:
    import pandas as pd

    start = time.perf_counter()
    pd.read_parquet(ref_path)
    pd.read_parquet(cur_path)
    return {"read_s": time.perf_counter() - start, "compute_s": 0.0, "found": []}


def _worker_ours(ref_path: Path, cur_path: Path) -> dict[str, Any]:
    import pandas as pd

    sys.path.insert(0, str(ROOT))
    from pipeline.core.config import load_params
    from pipeline.monitoring.drift import DRIFT, feature_drift

    config = load_params(ROOT / "tests" / "fixtures" / "demo" / "params.yaml").drift
    start = time.perf_counter()
    ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    results = feature_drift(reference=ref, current=cur, numeric=NUMERIC, categorical=CATEGORICAL, config=config)
    compute_s = time.perf_counter() - start
    return {
        "read_s": read_s,
        "compute_s": compute_s,
        "found": sorted(r.feature for r in results if r.verdict == DRIFT),
        "raw_p_significant": sorted(r.feature for r in results if r.p_value is not None and r.p_value <= config.alpha),
    }


def _worker_evidently(ref_path: Path, cur_path: Path) -> dict[str, Any]:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    start = time.perf_counter()
    ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    compute_s = time.perf_counter() - start
    found = [
        m["config"]["column"]
        for m in snapshot.dict()["metrics"]
        if m["config"].get("type", "").endswith("ValueDrift") and float(m["value"]) >= m["config"]["threshold"]
    ]
    return {"read_s": read_s, "compute_s": compute_s, "found": sorted(found)}


def _worker_nannyml(ref_path: Path, cur_path: Path) -> dict[str, Any]:
    import warnings

    import pandas as pd

    warnings.simplefilter("ignore")
    import nannyml as nml

    start = time.perf_counter()
    ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    # One chunk each and a constant threshold: NannyML's default thresholds come from the spread
    # across reference chunks, which a single batch comparison does not have.
    calc = nml.UnivariateDriftCalculator(
        column_names=[*NUMERIC, *CATEGORICAL],
        treat_as_categorical=CATEGORICAL,
        continuous_methods=["kolmogorov_smirnov", "jensen_shannon"],
        categorical_methods=["chi2", "jensen_shannon"],
        chunk_number=1,
        thresholds={"jensen_shannon": nml.thresholds.ConstantThreshold(upper=PEER_THRESHOLD)},
    )
    calc.fit(ref)
    frame = calc.calculate(cur).filter(period="analysis").to_df()
    compute_s = time.perf_counter() - start
    found = [c for c in (*NUMERIC, *CATEGORICAL) if bool(frame[(c, "jensen_shannon", "alert")].iloc[0])]
    return {"read_s": read_s, "compute_s": compute_s, "found": sorted(found)}


WORKERS = {
    "read": _worker_read,
    "ours": _worker_ours,
    "evidently": _worker_evidently,
    "nannyml": _worker_nannyml,
}


# --------------------------------------------------------------------------- driver


def ensure_peers() -> Path:
    """Build the peers' environment on first use (pinned in requirements-peers.txt)."""
    if not PEERS_PYTHON.is_file():
        logger.info("creating %s from %s", PEERS, REQUIREMENTS)
        subprocess.run(["python3.11", "-m", "venv", str(PEERS)], check=True)
        subprocess.run([str(PEERS_PYTHON), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)], check=True)
    return PEERS_PYTHON


def _measure(python: Path | str, worker: str, ref_path: Path, cur_path: Path) -> dict[str, Any]:
    # As a module from the repository root, so the worker can import benchmarks.* in either environment.
    args = [str(python), "-m", "benchmarks.drift_bench", "--worker", worker, str(ref_path), str(cur_path)]
    figures = measure_process(args, cwd=ROOT)
    result: dict[str, Any] = json.loads(figures.stdout.strip().splitlines()[-1])
    return {**result, "process_s": figures.wall_s, "peak_rss_mb": figures.peak_rss_mb}


def run(rows: int = 1_000_000) -> dict[str, Any]:
    """Run every tool once on the same data; return the figures (seconds, MB, ratios, columns found)."""
    ref_path, cur_path = make_data(rows=rows, seed=0, out_dir=RESULTS / f"drift_{rows}")
    peers = ensure_peers()
    figures: dict[str, Any] = {"rows": rows, "columns": len(NUMERIC) + len(CATEGORICAL), "shifted": SHIFTED}
    for name, python in (("read", sys.executable), ("ours", sys.executable), ("evidently", peers), ("nannyml", peers)):
        logger.info("running %s", name)
        figures[name] = _measure(python, name, ref_path, cur_path)
    ours = figures["ours"]
    for peer in ("evidently", "nannyml"):
        figures[f"speedup_process_vs_{peer}"] = figures[peer]["process_s"] / ours["process_s"]
        figures[f"speedup_compute_vs_{peer}"] = figures[peer]["compute_s"] / ours["compute_s"]
        figures[f"memory_ratio_vs_{peer}"] = figures[peer]["peak_rss_mb"] / ours["peak_rss_mb"]
    figures["compute_over_read"] = ours["compute_s"] / figures["read"]["read_s"]
    figures["same_columns_as_peers"] = ours["found"] == figures["evidently"]["found"] == figures["nannyml"]["found"]
    return figures


def render(figures: dict[str, Any]) -> str:
    """A plain-text table of the figures."""
    lines = [
        f"drift check, {figures['rows']:,} rows x {figures['columns']} columns, shifted: {', '.join(figures['shifted'])}",
        f"{'tool':<10} {'process s':>10} {'compute s':>10} {'peak MB':>9}  columns found",
    ]
    for name in ("read", "ours", "evidently", "nannyml"):
        f = figures[name]
        compute = f["read_s"] if name == "read" else f["compute_s"]
        lines.append(
            f"{name:<10} {f['process_s']:>10.2f} {compute:>10.2f} {f['peak_rss_mb']:>9.0f}  "
            f"{', '.join(f['found']) or '-'}"
        )
    for peer in ("evidently", "nannyml"):
        lines.append(
            f"ours vs {peer}: {figures[f'speedup_process_vs_{peer}']:.1f}x faster as a process, "
            f"{figures[f'speedup_compute_vs_{peer}']:.1f}x in compute, "
            f"{figures[f'memory_ratio_vs_{peer}']:.1f}x less peak memory"
        )
    lines.append(f"our compute / read time: {figures['compute_over_read']:.2f}")
    lines.append(f"ours, raw p <= alpha (no effect size): {', '.join(figures['ours']['raw_p_significant'])}")
    lines.append(f"same columns as both peers: {figures['same_columns_as_peers']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](*args.paths)))
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    figures = run(rows=args.rows)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "drift_bench.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(render(figures))


if __name__ == "__main__":
    main()
