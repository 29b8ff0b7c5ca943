"""Serving benchmark: `pipeline serve` on its compiled path (onnxruntime) and on scikit-learn,
against `mlflow models serve` (--env-manager local, one worker), on the same model, each a whole
process on loopback, one after the other.

The compiled path serves the model file with the ONNX file the train stage would write beside
it (compiled here from the same model and checked on the prepared test split); the scikit-learn
path serves the same model file alone. Measured per server: 1-row requests over one connection
(p50, p99, req/s) and over 16 connections (req/s, p99). Alongside: in-process scoring of 1 and
1000 rows on both paths, the floor a service adds its overhead to, and the machine's load
average (other work on the same cores inflates every figure).
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


def _serving_path(port: int) -> dict[str, str]:
    """What /ready says serves, so a figure is never filed under the wrong path."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=10) as response:
        return dict(json.loads(response.read()).get("serving_path") or {})


def _compile(model_path: Path, *, params: Any, target: Path) -> dict[str, Any]:
    """The model file copied to target/ with the ONNX file the train stage writes beside it."""
    import hashlib
    import shutil

    from pipeline.core import io
    from pipeline.core.schema import conform
    from pipeline.stages.compiled import compile_model, write

    target.mkdir(parents=True)
    copy = target / model_path.name
    shutil.copy2(model_path, copy)
    test_path = ROOT / params.paths.prepared / "test.parquet"
    test = io.read_table(test_path) if test_path.is_file() else conform(io.read_table(ROOT / params.data.raw), params)
    model = io.load_model(copy)
    # The two kinds build_pipeline makes; any other pipeline is refused by compile_model.
    kind = "hist_gradient_boosting" if type(model[-1]).__name__.startswith("HistGradient") else "logistic_regression"
    compiled = compile_model(
        model,
        kind=kind,
        data=params.data,
        test=test,
        tolerance=params.train.onnx_tolerance,
        sklearn_sha256=hashlib.sha256(copy.read_bytes()).hexdigest(),
    )
    write(compiled, onnx_path=copy.with_suffix(".onnx"), report_path=target / "compiled.json")
    return dict(compiled.record)


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


def _frame_ms(rows: Any, *, data: Any, repeats: int = 200) -> float:
    """Median cost of building the canonical frame of one request (paid on both paths)."""
    import statistics
    import time

    from pipeline.delivery.serve import to_frame

    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        to_frame(rows=rows[:1], data=data)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times[1:]), 3)


def _serve_ours(model_file: Path, *, tmp: Path, bodies: list[bytes], expect: str) -> dict[str, Any]:
    from pipeline.delivery.loadgen import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "pipeline", "serve", "--env", "bench", "--model", str(model_file)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-url", str(tmp / f"log-{expect}.db")]
    logger.info("serve bench: pipeline serve (%s path)", expect)
    with _server(cmd, ready_url=f"http://127.0.0.1:{port}/ready") as startup:
        served = _serving_path(port)
        if served.get("champion") != expect:
            raise RuntimeError(f"pipeline serve --model {model_file} serves on {served}, not {expect}")
        return {
            "startup_s": round(startup, 2),
            "serving_path": expect,
            **_measure(port=port, path="/predict", bodies=bodies),
        }


def run() -> dict[str, Any]:
    import pandas as pd

    from pipeline.core import io
    from pipeline.core.config import load_params
    from pipeline.core.tracking import mlflow_module
    from pipeline.delivery.loadgen import free_port
    from pipeline.delivery.serve import to_frame
    from pipeline.stages.compiled import ONNX, SKLEARN, CompiledModel

    params = load_params(ROOT / "tests" / "fixtures" / "demo" / "params.yaml")
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
            "to_frame_1_row_ms": _frame_ms(rows, data=params.data),
        },
        "setup": {
            "single_requests": SINGLE_REQUESTS,
            "concurrent_requests": CONCURRENT_REQUESTS,
            "connections": CONNECTIONS,
            "cores": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
        },
    }
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        figures["compiled"] = _compile(model_path, params=params, target=tmp / "compiled")
        onnx = (tmp / "compiled" / model_path.with_suffix(".onnx").name).read_bytes()
        if onnx:
            compiled = CompiledModel(
                onnx,
                numeric=params.data.numeric_features,
                categorical=params.data.categorical_features,
                threads=params.serve.predict_threads,
            )
            figures["in_process"]["compiled"] = _in_process(compiled, frame, threads=params.serve.predict_threads)
        mlflow_module()  # telemetry off before mlflow is imported
        import mlflow.sklearn
        from mlflow.models import infer_signature

        example = frame.head(5)
        peer_model = tmp / "mlflow_model"
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

        ours_bodies = [json.dumps({"association_id": f"bench-{i}", "features": r}).encode() for i, r in enumerate(rows)]
        # The same model file without the ONNX file beside it: the scikit-learn path.
        plain = tmp / "sklearn" / model_path.name
        plain.parent.mkdir()
        plain.write_bytes(model_path.read_bytes())
        figures["pipeline_serve"] = _serve_ours(plain, tmp=tmp, bodies=ours_bodies, expect=SKLEARN)
        if onnx:
            figures["pipeline_serve_compiled"] = _serve_ours(
                tmp / "compiled" / model_path.name, tmp=tmp, bodies=ours_bodies, expect=ONNX
            )
    figures["setup"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]

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
    fast = figures.get("pipeline_serve_compiled")
    if fast is not None:
        figures["ratios"].update(
            {
                "compiled_single_p50_vs_sklearn_path": round(fast["single"]["p50_ms"] / ours["single"]["p50_ms"], 3),
                "compiled_single_p50_vs_peer": round(fast["single"]["p50_ms"] / peer["single"]["p50_ms"], 3),
                "compiled_concurrent_throughput_vs_sklearn_path": round(
                    fast["concurrent"]["req_per_s"] / ours["concurrent"]["req_per_s"], 2
                ),
                "compiled_concurrent_throughput_vs_peer": round(
                    fast["concurrent"]["req_per_s"] / peer["concurrent"]["req_per_s"], 2
                ),
                "compiled_concurrent_p99_vs_peer": round(
                    fast["concurrent"]["p99_ms"] / peer["concurrent"]["p99_ms"], 3
                ),
            }
        )
        figures["targets"].update(
            {
                "compiled_single_p50_at_most_2_ms": fast["single"]["p50_ms"] <= 2,
                "compiled_concurrent_20x_peer_throughput": figures["ratios"]["compiled_concurrent_throughput_vs_peer"]
                >= 20,
                "compiled_concurrent_p99_under_10_ms": fast["concurrent"]["p99_ms"] < 10,
            }
        )
    return figures


def render(f: dict[str, Any]) -> str:
    lines = [
        "| server | path | 1 conn p50 ms | 1 conn p99 ms | 1 conn req/s | 16 conn req/s | 16 conn p99 ms | 5xx |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("pipeline_serve_compiled", "pipeline_serve", "mlflow_models_serve"):
        if name not in f:
            continue
        s, c = f[name]["single"], f[name]["concurrent"]
        lines.append(
            f"| {name} | {f[name].get('serving_path', 'sklearn')} | {s['p50_ms']} | {s['p99_ms']} | {s['req_per_s']} | "
            f"{c['req_per_s']} | {c['p99_ms']} | {s['status_5xx'] + c['status_5xx']} |"
        )
    ip = f["in_process"]
    compiled = f.get("compiled", {})
    lines.append("")
    lines.append(
        f"compiled path: {compiled.get('serving_path')} ({compiled.get('reason') or 'parity'}: {compiled.get('parity')})"
    )
    lines.append(f"in-process predict (serve threads): {ip['serve_threads']}; default threads: {ip['default_threads']}")
    lines.append(f"in-process compiled: {ip.get('compiled')}; canonical frame of 1 row: {ip['to_frame_1_row_ms']} ms")
    lines.append(
        f"load average before/after: {f['setup']['load_average_before']} / {f['setup'].get('load_average_after')}"
    )
    lines.append(f"ratios: {f['ratios']}")
    lines.append(f"targets met: {f['targets']}")
    return "\n".join(lines)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = run()
    print(render(result))
