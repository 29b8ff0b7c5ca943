"""Serving benchmark: `pipeline serve` against `mlflow models serve` (--env-manager local, one
worker) on the same model, each a whole process on loopback, one after the other.

Measured per server: 1-row requests over one connection (p50, p99, req/s) and over 16
connections (req/s, p99). Alongside: in-process predict_proba for 1 and 1000 rows, the floor
a service adds its overhead to.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.core.runner import stop_group

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger(__name__)

SINGLE_REQUESTS, CONCURRENT_REQUESTS, CONNECTIONS, WARMUP = 500, 2000, 16, 50
DISTINCT_ROWS = 200
START_TIMEOUT_S = 180


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
    )
    return env


@contextmanager
def _server(cmd: list[str], *, ready_url: str) -> Iterator[float]:
    from pipeline.delivery.loadgen import wait_until_ok

    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        try:
            started = wait_until_ok(url=ready_url, timeout=START_TIMEOUT_S, process=proc)
        except (TimeoutError, RuntimeError) as exc:
            proc.kill()
            raise RuntimeError(
                f"{' '.join(cmd[:4])}: {exc}\n{(proc.stderr.read() if proc.stderr else '')[-2000:]}"
            ) from exc
        yield started
    finally:
        if proc.poll() is None:
            stop_group(proc, sig=signal.SIGINT, timeout=30)


def _measure(*, port: int, path: str, bodies: list[bytes]) -> dict[str, Any]:
    from pipeline.delivery.loadgen import load

    host = "127.0.0.1"
    load(host=host, port=port, path=path, bodies=bodies, requests=WARMUP, connections=1)
    single = load(host=host, port=port, path=path, bodies=bodies, requests=SINGLE_REQUESTS, connections=1)
    many = load(host=host, port=port, path=path, bodies=bodies, requests=CONCURRENT_REQUESTS, connections=CONNECTIONS)
    return {"single": single.summary(), "concurrent": many.summary()}


def _in_process(model: Any, frame: Any, *, threads: int | None) -> dict[str, float]:
    from threadpoolctl import threadpool_limits

    from pipeline.delivery.smoke import median_predict_ms

    with threadpool_limits(limits=threads):
        one = median_predict_ms(model=model, rows=frame.head(1), repeats=200)
        thousand = median_predict_ms(model=model, rows=frame.head(1000), repeats=30)
    return {"predict_1_row_ms": round(one, 3), "predict_1000_rows_ms": round(thousand, 3)}


def run() -> dict[str, Any]:
    import pandas as pd

    from pipeline.core import io
    from pipeline.core.config import load_params
    from pipeline.core.tracking import mlflow_module
    from pipeline.delivery.loadgen import free_port
    from pipeline.delivery.serve import to_frame

    params = load_params(ROOT / "params.yaml")
    model_path = ROOT / params.paths.model
    if not model_path.is_file():
        raise RuntimeError(f"{model_path} not found: run `make run` first")
    model = io.load_model(model_path)
    features = list(params.data.features)
    raw = pd.read_parquet(ROOT / params.data.raw)
    sample = raw[features].sample(max(DISTINCT_ROWS, 1000), random_state=params.base.seed).reset_index(drop=True)
    rows = [
        {k: (float(v) if k in params.data.numeric else str(v)) for k, v in r.items()}
        for r in sample.head(DISTINCT_ROWS).to_dict(orient="records")
    ]
    frame = to_frame(rows=sample.to_dict(orient="records"), data=params.data)

    figures: dict[str, Any] = {
        "in_process": {
            "default_threads": _in_process(model, frame, threads=None),
            "serve_threads": _in_process(model, frame, threads=params.serve.predict_threads),
        },
        "setup": {
            "single_requests": SINGLE_REQUESTS,
            "concurrent_requests": CONCURRENT_REQUESTS,
            "connections": CONNECTIONS,
            "cores": os.cpu_count(),
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        mlflow_module()  # telemetry off before mlflow is imported
        import mlflow.sklearn
        from mlflow.models import infer_signature

        example = frame.head(5)
        peer_model = Path(tmp) / "mlflow_model"
        mlflow.sklearn.save_model(
            model,
            peer_model,
            serialization_format="skops",
            skops_trusted_types=io.SKOPS_TRUSTED_TYPES,
            signature=infer_signature(example, model.predict_proba(example)[:, 1]),
            pyfunc_predict_fn="predict_proba",
        )
        peer_port = free_port()
        peer_cmd = ["mlflow", "models", "serve", "-m", str(peer_model), "--env-manager", "local"]
        peer_cmd += ["-h", "127.0.0.1", "-p", str(peer_port), "-w", "1"]
        peer_bodies = [
            json.dumps({"dataframe_split": {"columns": features, "data": [[r[c] for c in features]]}}).encode()
            for r in rows
        ]
        logger.info("serve bench: mlflow models serve")
        with _server(peer_cmd, ready_url=f"http://127.0.0.1:{peer_port}/ping") as startup:
            figures["mlflow_models_serve"] = {
                "startup_s": round(startup, 2),
                **_measure(port=peer_port, path="/invocations", bodies=peer_bodies),
            }

        ours_port = free_port()
        ours_cmd = [sys.executable, "-m", "pipeline", "serve", "--env", "bench", "--model", str(model_path)]
        ours_cmd += ["--host", "127.0.0.1", "--port", str(ours_port), "--log-url", str(Path(tmp) / "log.db")]
        ours_bodies = [json.dumps({"association_id": f"bench-{i}", "features": r}).encode() for i, r in enumerate(rows)]
        logger.info("serve bench: pipeline serve")
        with _server(ours_cmd, ready_url=f"http://127.0.0.1:{ours_port}/ready") as startup:
            figures["pipeline_serve"] = {
                "startup_s": round(startup, 2),
                **_measure(port=ours_port, path="/predict", bodies=ours_bodies),
            }

    ours, peer = figures["pipeline_serve"], figures["mlflow_models_serve"]
    floor = figures["in_process"]["serve_threads"]["predict_1_row_ms"]
    figures["ratios"] = {
        "single_p50_vs_in_process_1_row": round(ours["single"]["p50_ms"] / floor, 2),
        "single_p50_vs_peer": round(ours["single"]["p50_ms"] / peer["single"]["p50_ms"], 2),
        "single_throughput_vs_peer": round(ours["single"]["req_per_s"] / peer["single"]["req_per_s"], 2),
        "concurrent_throughput_vs_peer": round(ours["concurrent"]["req_per_s"] / peer["concurrent"]["req_per_s"], 2),
        "concurrent_p99_vs_peer": round(ours["concurrent"]["p99_ms"] / peer["concurrent"]["p99_ms"], 3),
    }
    figures["targets"] = {
        "single_p50_within_2x_in_process": figures["ratios"]["single_p50_vs_in_process_1_row"] <= 2,
        "concurrent_5x_peer_throughput": figures["ratios"]["concurrent_throughput_vs_peer"] >= 5,
        "concurrent_lower_p99": ours["concurrent"]["p99_ms"] < peer["concurrent"]["p99_ms"],
    }
    return figures


def render(f: dict[str, Any]) -> str:
    lines = [
        "| server | 1 conn p50 ms | 1 conn p99 ms | 1 conn req/s | 16 conn req/s | 16 conn p99 ms | 5xx |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("pipeline_serve", "mlflow_models_serve"):
        s, c = f[name]["single"], f[name]["concurrent"]
        lines.append(
            f"| {name} | {s['p50_ms']} | {s['p99_ms']} | {s['req_per_s']} | {c['req_per_s']} | {c['p99_ms']} | "
            f"{s['status_5xx'] + c['status_5xx']} |"
        )
    ip = f["in_process"]
    lines.append("")
    lines.append(f"in-process predict (serve threads): {ip['serve_threads']}; default threads: {ip['default_threads']}")
    lines.append(f"ratios: {f['ratios']}")
    lines.append(f"targets met: {f['targets']}")
    return "\n".join(lines)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = run()
    print(render(result))
