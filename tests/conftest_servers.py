"""The team set-up for real: PostgreSQL (Debian's package, `make postgres` installs it) and an
`mlflow server` backed by it, both on loopback, started once per test session and torn down.

In CI (CI=true) a missing PostgreSQL fails the tests: skipping there would hide the team path.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.core.runner import stop_group

PG_ROOT = Path("/usr/lib/postgresql")
PG_USER = "postgres"
BIN = Path(sys.executable).parent
SERVER_START_SECONDS = 120


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian keeps one per major version)."""
    found = sorted(
        PG_ROOT.glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0
    )
    return found[-1].parent if found else None


def _require_postgres() -> Path:
    found = pg_bin()
    if found is not None:
        return found
    reason = f"PostgreSQL not found under {PG_ROOT}/*/bin: run `make postgres` to install Debian's package"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI must run the team set-up tests, not skip them)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    # initdb refuses to run as root: drop to the postgres user, which owns the data folder.
    if os.geteuid() == 0:
        # runuser lives in sbin, which a minimal PATH (some CI runners, cron) leaves out.
        runuser = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") or "runuser"
        return [runuser, "-u", PG_USER, "--", *cmd]
    return cmd


def _run(cmd: list[str], *, cwd: Path) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=cwd)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 with an `mlflow` database (SQLAlchemy URL)."""
    bindir = _require_postgres()
    # Not pytest's tmp folder: its parents are private to root, and the server runs as postgres.
    home = Path(tempfile.mkdtemp(prefix="pg-test-"))
    if os.geteuid() == 0:
        shutil.chown(home, user=PG_USER, group=PG_USER)
    data, port = home / "data", free_port()
    try:
        _run(
            _as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "-A", "trust", "-E", "UTF8"]),
            cwd=home,
        )
        options = f"-h 127.0.0.1 -p {port} -k {home}"
        _run(
            _as_postgres(
                [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(home / "log"), "-w", "start"]
            ),
            cwd=home,
        )
        try:
            _run(
                _as_postgres([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER, "mlflow"]),
                cwd=home,
            )
            yield f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{port}/mlflow"
        finally:
            _run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]), cwd=home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"mlflow server not healthy after {SERVER_START_SECONDS} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def mlflow_server(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on loopback with the PostgreSQL backend and a temporary artifact store."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port, log = free_port(), root / "server.log"
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        # The job runner starts extra processes we never use; 2 cores are shared.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [
        str(BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        postgres_url,
        "--artifacts-destination",
        str(root / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url
    finally:
        stop_group(proc)
