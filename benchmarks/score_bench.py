"""Batch scoring: `pipeline score` (the embedded engine) against a naive script that reads the
whole table, calls predict_proba and writes the scores, and the Dask engine on a two-worker
LocalCluster, all on the same table and model file.

The table is a seeded resample (with replacement) of the demo's raw table, with new ids, written
in chunks so making it never holds the whole table. Each contender runs as its own process:
whole-process wall time and peak RSS (os.wait4); the Dask process also reports its workers' own
peaks and the cluster's start-up. Targets: the embedded engine at least as fast as the naive
script, and under 1 GB whatever the size.

    python -m benchmarks.score_bench --rows 2000000
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import measure_process

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
PARAMS = ROOT / "tests" / "fixtures" / "demo" / "params.yaml"
DEFAULT_ROWS = 10_000_000
CHUNK_ROWS = 1_000_000
SEED = 0
TARGET_PEAK_MB = 1024
DASK_WORKERS = 2


# --------------------------------------------------------------------------- data


def make_input(*, rows: int, seed: int, out_dir: Path) -> Path:
    """input.parquet: `rows` demo rows drawn with replacement, ids 0..rows-1 (once per size and seed)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.core.config import load_params

    path = out_dir / "input.parquet"
    if path.is_file():
        return path
    params = load_params(PARAMS)
    demo = pd.read_parquet(ROOT / params.data.raw, columns=list(params.data.columns))
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    partial = path.with_suffix(".partial")
    writer = None
    try:
        for start in range(0, rows, CHUNK_ROWS):
            count = min(CHUNK_ROWS, rows - start)
            chunk = demo.iloc[rng.integers(0, len(demo), size=count)].reset_index(drop=True)
            chunk.insert(0, params.base.id_column, np.arange(start, start + count, dtype="int64"))
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            writer = writer or pq.ParquetWriter(partial, table.schema, compression="zstd")
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    partial.rename(path)
    return path


def _model() -> Path:
    from pipeline.core.config import load_params

    path = ROOT / load_params(PARAMS).paths.model
    if not path.is_file():
        raise RuntimeError(f"{path} not found: run `make run` first")
    return path


# --------------------------------------------------------------------------- workers (one process each)


def _worker_naive(input_path: Path, model_path: Path, out: Path) -> dict[str, Any]:
    """What a first script does: the whole table in memory, one predict_proba, one file out."""
    import pandas as pd

    from pipeline.core.config import load_params
    from pipeline.core.io import load_model

    params = load_params(PARAMS)
    start = time.perf_counter()
    frame = pd.read_parquet(input_path)
    model = load_model(model_path)
    score = model.predict_proba(frame[list(params.data.features)])[:, 1]
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"id": frame[params.base.id_column], "score": score, "label": (score >= params.evaluate.threshold).astype(int)}
    ).to_parquet(out / "scores.parquet", index=False)
    return {"score_s": time.perf_counter() - start, "rows": len(frame)}


def _worker_dask(input_path: Path, model_path: Path, out: Path) -> dict[str, Any]:
    """`pipeline score --engine dask` against a two-worker LocalCluster started here."""
    import resource

    from distributed import Client, LocalCluster

    from pipeline.core.config import load_params
    from pipeline.delivery.score import score

    params = load_params(PARAMS)
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    start = time.perf_counter()
    with LocalCluster(
        n_workers=DASK_WORKERS,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.CRITICAL,
    ) as cluster:
        with Client(cluster, set_as_default=False) as client:
            client.wait_for_workers(DASK_WORKERS)
        started = time.perf_counter() - start
        outcome = score(
            params=params,
            model_ref=str(model_path),
            input_spec=str(input_path),
            output=out,
            force=True,
            engine="dask",
            scheduler=cluster.scheduler_address,
        )
        with Client(cluster, set_as_default=False) as client:
            peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {
        "cluster_start_s": started,
        "score_s": float(outcome.manifest["seconds"]),
        "rows": outcome.rows,
        "worker_peak_rss_mb": sorted(peaks.values()),
    }


WORKERS = {"naive": _worker_naive, "dask": _worker_dask}


# --------------------------------------------------------------------------- driver


def _measure_worker(name: str, input_path: Path, model_path: Path, out: Path) -> dict[str, Any]:
    args = [
        sys.executable,
        "-m",
        "benchmarks.score_bench",
        "--worker",
        name,
        str(input_path),
        str(model_path),
        str(out),
    ]
    figures = measure_process(args, cwd=ROOT)
    result: dict[str, Any] = json.loads(figures.stdout.strip().splitlines()[-1])
    return {**result, "process_s": figures.wall_s, "peak_rss_mb": figures.peak_rss_mb}


def _measure_embedded(input_path: Path, model_path: Path, out: Path) -> dict[str, Any]:
    pipeline = str(Path(sys.executable).parent / "pipeline")
    args = [pipeline, "score", "--model", str(model_path), "--input", str(input_path), "--output", str(out)]
    figures = measure_process([*args, "--force", "--engine", "local", "--params", str(PARAMS)], cwd=ROOT)
    manifest = json.loads((out / "_SUCCESS.json").read_text(encoding="utf-8"))
    return {
        "score_s": manifest["seconds"],
        "rows": manifest["rows"]["read"],
        "process_s": figures.wall_s,
        "peak_rss_mb": figures.peak_rss_mb,
    }


def run(rows: int = DEFAULT_ROWS) -> dict[str, Any]:
    """Each contender once on the same table; seconds, MB and ratios."""
    import shutil

    from pipeline.core.config import load_params

    model_path = _model()
    data_dir = RESULTS / f"score_{rows}"
    logger.info("making a %d-row input", rows)
    input_path = make_input(rows=rows, seed=SEED, out_dir=data_dir)
    figures: dict[str, Any] = {
        "rows": rows,
        "input_mb": round(input_path.stat().st_size / 2**20, 1),
        "batch_rows": load_params(PARAMS).score.batch_rows,
        "cores": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    out = data_dir / "out"
    for name in ("naive", "embedded", "dask"):
        logger.info("running %s", name)
        shutil.rmtree(out, ignore_errors=True)
        if name == "embedded":
            figures[name] = _measure_embedded(input_path, model_path, out)
        else:
            figures[name] = _measure_worker(name, input_path, model_path, out)
    shutil.rmtree(out, ignore_errors=True)
    naive, embedded, dask = figures["naive"], figures["embedded"], figures["dask"]
    figures["embedded_speed_vs_naive"] = naive["process_s"] / embedded["process_s"]
    figures["dask_speed_vs_embedded"] = embedded["process_s"] / dask["process_s"]
    figures["dask_speed_vs_embedded_after_start"] = embedded["score_s"] / dask["score_s"]
    figures["targets"] = {
        "embedded_at_least_naive_speed": figures["embedded_speed_vs_naive"] >= 1.0,
        "embedded_peak_under_1gb": embedded["peak_rss_mb"] <= TARGET_PEAK_MB,
    }
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return figures


def render(figures: dict[str, Any]) -> str:
    naive, embedded, dask = figures["naive"], figures["embedded"], figures["dask"]
    workers = ", ".join(f"{mb:.0f}" for mb in dask["worker_peak_rss_mb"])
    return "\n".join(
        [
            f"batch scoring, {figures['rows']:,} rows ({figures['input_mb']} MB parquet), "
            f"{figures['cores']} cores, load {figures['load_average_before']}",
            "| contender | process s | scoring s | peak RSS MB |",
            "|---|---|---|---|",
            f"| naive (read all, predict_proba, write) | {naive['process_s']:.1f} | {naive['score_s']:.1f} | "
            f"{naive['peak_rss_mb']:.0f} |",
            f"| pipeline score (embedded) | {embedded['process_s']:.1f} | {embedded['score_s']:.1f} | "
            f"{embedded['peak_rss_mb']:.0f} |",
            f"| pipeline score --engine dask, {DASK_WORKERS} workers | {dask['process_s']:.1f} | "
            f"{dask['score_s']:.1f} | client {dask['peak_rss_mb']:.0f}; workers {workers} |",
            f"embedded vs naive: {figures['embedded_speed_vs_naive']:.2f}x speed; "
            f"dask vs embedded: {figures['dask_speed_vs_embedded']:.2f}x with its start-up "
            f"({dask['cluster_start_s']:.1f} s), {figures['dask_speed_vs_embedded_after_start']:.2f}x scoring alone",
            f"targets: {figures['targets']}",
        ]
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.score_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker](*args.paths)))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    figures = run(rows=args.rows)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "score.json").write_text(json.dumps(figures, indent=2, sort_keys=True, default=str) + "\n")
    print(render(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
