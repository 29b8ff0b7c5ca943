"""Credentials in the tracking URI and the prediction-log URL reach no output of delivery: the
registry's errors, a registry client made from the environment, lineage and the service's
start line.
"""

from __future__ import annotations

import base64
import http.server
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core import predlog
from pipeline.core.config import Params
from pipeline.core.redact import MASK
from pipeline.delivery import deploy, lineage
from pipeline.delivery.registry_client import RegistryError
from pipeline.delivery.serve import server
from tests.conftest import DEMO_PARAMS, REPO_ROOT, tool_env
from tests.conftest_servers import free_port

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-Pa55"
TRACKING = f"http://ci-bot:{SECRET}@tracking.example.com"
RUN_LINK = f"https://ci-bot:{SECRET}@github.example.com/org/repo/actions/runs/7"


def test_registry_errors_mask_the_tracking_password() -> None:
    error = RegistryError(f"model m version 3 does not exist in the registry at {TRACKING}")
    assert SECRET not in str(error)
    assert f"http://{MASK}@tracking.example.com" in str(error)


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every MLflow call with "not found" and keeps each Authorization header."""

    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        body = json.dumps({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such run"}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[http.server.HTTPServer]:
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.seen = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    thread.join()
    httpd.server_close()


# A client from the environment, as the gate and the service make it (no connect() first).
CLIENT_SCRIPT = """
import json, os, sys
from pipeline.delivery import registry_client
errors = {}
for key, uri in (("answering", sys.argv[1]), ("unreachable", sys.argv[2])):
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        registry_client.client().get_run("0123")
    except Exception as exc:
        errors[key] = str(exc)
print(json.dumps(errors))
"""


def test_a_client_sends_the_password_but_never_quotes_it(recorder: http.server.HTTPServer) -> None:
    dead = f"127.0.0.1:{free_port()}"
    answering = f"http://ci-bot:{SECRET}@127.0.0.1:{recorder.server_port}"
    env = tool_env(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="5", PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run(
        [sys.executable, "-c", CLIENT_SCRIPT, answering, f"http://ci-bot:{SECRET}@{dead}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Still authenticated: the same basic-auth header MLflow sends for user:password@ in the URI.
    assert _Recorder.seen == ["Basic " + base64.b64encode(f"ci-bot:{SECRET}".encode()).decode()]
    errors = json.loads(result.stdout)
    assert dead in errors["unreachable"]
    assert SECRET not in result.stdout + result.stderr


class _Registry:
    """One model version whose run is unreachable, deployed once by a workflow run."""

    tracking_uri = "http://tracking.example.com"

    def get_model_version(self, name: str, version: str) -> Any:
        return SimpleNamespace(version=version, run_id="r1", tags={"git.commit": "unknown"})

    def get_registered_model(self, name: str) -> Any:
        record = {"env": "production", "champion": "3", "time": "2025-01-01T00:00:00Z", "run_url": RUN_LINK}
        key = deploy.HISTORY_PREFIX.format(env="production") + "000001"
        return SimpleNamespace(tags={key: json.dumps(record)}, aliases={})

    def get_run(self, run_id: str) -> Any:
        raise RuntimeError(f"API request to {TRACKING}/api/2.0/mlflow/runs/get failed with exception timeout")


def test_lineage_masks_run_errors_and_run_links(params: Params) -> None:
    data = lineage.collect(params=params, version="3", mlflow_client=_Registry())  # type: ignore[arg-type]
    assert SECRET not in data["run"]["error"]
    text = lineage.render_markdown(data)
    assert SECRET not in text
    assert f"https://{MASK}@github.example.com/org/repo/actions/runs/7" in text


def test_the_lineage_command_masks_its_json(params: Params, monkeypatch: pytest.MonkeyPatch) -> None:
    data = lineage.collect(params=params, version="3", mlflow_client=_Registry())  # type: ignore[arg-type]
    monkeypatch.setattr(lineage, "collect", lambda **_: data)
    result = CliRunner().invoke(app, ["lineage", "3", "--json", "--params", str(DEMO_PARAMS)])
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    assert json.loads(result.output)["deployments"][0]["run_url"].startswith(f"https://{MASK}@")


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class _Socket:
    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", 8080)


def test_the_service_start_line_masks_the_log_password(
    params: Params, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import uvicorn

    # Everything but the start line is stubbed: no database, no socket, no event loop.
    monkeypatch.setattr(predlog, "open_store", lambda url: None)
    monkeypatch.setattr(predlog, "LogWriter", lambda **_: None)
    monkeypatch.setattr(server, "create_app", lambda **_: None)
    monkeypatch.setattr(server, "load_profile", lambda **_: None)
    monkeypatch.setattr(server, "listening_socket", lambda **_: _Socket())
    monkeypatch.setattr(server, "guarded_protocol", lambda **_: None)
    monkeypatch.setattr(uvicorn, "Config", lambda *_, **__: None)
    monkeypatch.setattr(uvicorn, "Server", lambda _: SimpleNamespace(run=lambda **__: None))
    caplog.set_level(logging.INFO, logger="pipeline")
    # A handler of its own: a command run earlier in this process may have given the root
    # handlers (caplog's included) the redacting filter, which would mask the line for it.
    lines = _Lines()
    monkeypatch.setattr(logging.getLogger(), "handlers", [lines])

    url = f"postgresql+psycopg2://serve:{SECRET}@db.internal:5432/log"
    server.run(params=params, env="staging", host="127.0.0.1", port=8080, source=None, log_url=url)  # type: ignore[arg-type]
    text = "\n".join(lines.messages)
    assert f"prediction log postgresql+psycopg2://{MASK}@db.internal:5432/log" in text
    assert SECRET not in text
