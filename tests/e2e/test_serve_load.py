"""The real service as a process on loopback: a bounded load (fixed request count and
connections) with zero 5xx, every answer in the prediction log after a clean shutdown.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from pipeline.core import predlog
from pipeline.core.config import Params
from pipeline.delivery import loadgen
from tests.conftest import DEMO_PARAMS, quick_model_file

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
REQUESTS, CONNECTIONS, TRAIN_ROWS = 2000, 16, 400


@pytest.fixture(scope="module")
def server(
    params: Params, raw_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, Path, subprocess.Popen[str]]]:
    tmp = tmp_path_factory.mktemp("serve")
    quick_model_file(params, raw_frame, tmp / "model.skops", rows=TRAIN_ROWS, seed=1)
    port = loadgen.free_port()
    log = tmp / "log.db"
    cmd = [sys.executable, "-m", "pipeline", "serve", "--env", "load", "--model", str(tmp / "model.skops")]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-url", str(log), "--params", str(DEMO_PARAMS)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        loadgen.wait_until_ok(url=f"http://127.0.0.1:{port}/ready", timeout=120, process=proc)
        yield port, log, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_bounded_load_has_no_server_errors(
    server: tuple[int, Path, subprocess.Popen[str]], params: Params, raw_frame: pd.DataFrame
) -> None:
    port, log, proc = server
    features = list(params.data.features)
    rows = raw_frame[features].head(100).to_dict(orient="records")
    bodies = [
        json.dumps(
            {
                "association_id": f"load-{i}",
                "features": {k: (v if k in params.data.numeric else str(v)) for k, v in r.items()},
            }
        ).encode()
        for i, r in enumerate(rows)
    ]
    bodies.append(b'{"features": {"AGEP": "broken"}}')
    result = loadgen.load(
        host="127.0.0.1", port=port, path="/predict", bodies=bodies, requests=REQUESTS, connections=CONNECTIONS
    )
    print(f"\nloopback load: {result.summary()}")
    assert result.server_errors == 0
    assert result.failures == 0
    assert sum(result.statuses.values()) == REQUESTS
    assert set(result.statuses) == {200, 422}
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    # uvicorn re-raises the signal after its graceful shutdown, so the exit code says "interrupted".
    assert "Traceback" not in output, output
    logged = predlog.read_log(url=str(log))
    assert len(logged) == result.statuses[200]
    assert set(logged["env"]) == {"load"}
