"""The real service as a process on loopback against clients that misbehave on the socket:
stalled bodies and headers (slow-loris), idle keep-alive connections and clients that hang up
mid-request. Each must end in a closed connection or a counted disconnect, never a traceback.
"""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from pipeline.core.config import Params
from pipeline.delivery import loadgen
from tests.conftest import demo_params_text, quick_model_file

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TRAIN_ROWS = 300
READ_TIMEOUT_S = 1.0
KEEP_ALIVE_S = 1
# Far above the timeouts under test: reached only when the server never closes.
GIVE_UP_S = 30.0


@dataclass
class Server:
    port: int
    output: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=GIVE_UP_S)

    def log(self) -> str:
        return self.output.read_text(errors="replace")


@pytest.fixture(scope="module")
def server(params: Params, raw_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("serve-faults")
    quick_model_file(params, raw_frame, tmp / "model.skops", rows=TRAIN_ROWS, seed=2)
    raw = yaml.safe_load(demo_params_text())
    raw["serve"].update(read_timeout_seconds=READ_TIMEOUT_S, keep_alive_seconds=KEEP_ALIVE_S)
    (tmp / "params.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    port = loadgen.free_port()
    cmd = [sys.executable, "-m", "pipeline", "serve", "--env", "faults", "--model", str(tmp / "model.skops")]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-url", str(tmp / "log.db")]
    cmd += ["--params", str(tmp / "params.yaml")]
    output = tmp / "serve.log"
    with output.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        loadgen.wait_until_ok(url=f"http://127.0.0.1:{port}/ready", timeout=120, process=proc)
        yield Server(port, output, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; socket.timeout (a failure) if it never does."""
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


def disconnects(server: Server) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return float(
        next(line.split()[-1] for line in text.splitlines() if line.startswith("serve_client_disconnects_total "))
    )


def test_headers_then_a_stalled_body_get_408_and_the_connection_closed(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"
        )
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"request body not received within" in answer


def test_a_request_head_trickled_byte_by_byte_is_cut_off(server: Server) -> None:
    # Slow-loris proper: each byte arrives well inside any idle timeout, the head never ends.
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 1000
    deadline = time.monotonic() + GIVE_UP_S
    closed = False
    with server.connect() as sock:
        for byte in head:
            if time.monotonic() > deadline:
                break
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable:
                try:
                    closed = sock.recv(4096) == b""
                except ConnectionResetError:
                    closed = True
                if closed:
                    break
    assert closed, "the server kept a connection whose request head never ended"


def test_a_silent_connection_is_closed(server: Server) -> None:
    with server.connect() as sock:
        assert read_until_closed(sock) == b""


def test_an_idle_keep_alive_connection_is_closed(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert b'"alive"' in answer


def test_a_client_gone_mid_body_is_counted_without_a_traceback(server: Server) -> None:
    before = disconnects(server)
    with server.connect() as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"
        )
    deadline = time.monotonic() + GIVE_UP_S
    while disconnects(server) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert disconnects(server) == before + 1
    log = server.log()
    assert "Traceback" not in log, log
    assert "Exception in ASGI application" not in log, log


def test_the_service_still_answers_and_stops_cleanly(server: Server, params: Params, raw_frame: pd.DataFrame) -> None:
    features = list(params.data.features)
    first = raw_frame[features].head(1).to_dict(orient="records")[0]
    row = {k: (v if k in params.data.numeric else str(v)) for k, v in first.items()}
    response = httpx.post(f"{server.url}/predict", json={"association_id": "after", "features": row}, timeout=10)
    assert response.status_code == 200, response.text
    server.proc.send_signal(signal.SIGINT)
    server.proc.wait(timeout=60)
    assert "Traceback" not in server.log(), server.log()
