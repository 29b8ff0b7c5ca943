"""/predict against clients that misbehave below HTTP: a body that never arrives and a client
that goes away mid-body, driven through the ASGI interface so each message is under test control.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pandas as pd
import pytest

from pipeline.core.config import Params
from pipeline.delivery import serve
from pipeline.delivery.serve.app import ERR_BODY_TIMEOUT

pytestmark = pytest.mark.unit

READ_TIMEOUT_S = 0.2
# Far above READ_TIMEOUT_S: only reached when the service never answers.
GIVE_UP_S = 10.0


class UnusedSource:
    """The lifespan is not run here, so the model source is never read."""

    def current_state(self) -> serve.ServingState:
        raise AssertionError("the model source should not be read")

    def load(self, version: str) -> serve.LocalModel:
        raise AssertionError("no model should load")


@pytest.fixture
def app(params: Params, raw_frame: pd.DataFrame) -> Any:
    quick = params.model_copy(
        update={"serve": params.serve.model_copy(update={"read_timeout_seconds": READ_TIMEOUT_S})}
    )
    return serve.create_app(
        params=quick,
        env="staging",
        source=UnusedSource(),
        profile=serve.training_profile(frame=raw_frame.head(200), data=params.data),
        writer=None,
        poll=False,
    )


def post(app: Any, *, chunks: list[bytes], then: str) -> list[dict[str, Any]]:
    """The ASGI messages /predict sends when the client delivers `chunks` of a 100-byte body and
    then either stalls ("stall") or disconnects ("disconnect").
    """
    pending = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        if then == "disconnect":
            return {"type": "http.disconnect"}
        await asyncio.Event().wait()  # never set: the client stalls
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
    }

    async def main() -> None:
        await asyncio.wait_for(app(scope, receive, send), GIVE_UP_S)

    asyncio.run(main())
    return sent


def answer(sent: list[dict[str, Any]]) -> tuple[int, dict[str, str], Any]:
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], headers, json.loads(body)


def sample(app: Any, name: str, **labels: str) -> float | None:
    value: float | None = app.state.service.metrics.registry.get_sample_value(name, labels)
    return value


def test_a_body_that_stalls_gets_408_and_closes_the_connection(app: Any) -> None:
    status, headers, body = answer(post(app, chunks=[b'{"features": '], then="stall"))
    assert status == 408
    assert headers["connection"] == "close"
    assert body["detail"] == ERR_BODY_TIMEOUT.format(seconds=READ_TIMEOUT_S)
    assert sample(app, "serve_errors_total", kind="timeout") == 1.0


def test_a_client_gone_mid_body_is_counted_not_raised(app: Any) -> None:
    before = sample(app, "serve_client_disconnects_total")
    # Without the handling, ClientDisconnect escapes the app: uvicorn logs it with a traceback.
    post(app, chunks=[b'{"feat'], then="disconnect")
    assert before == 0.0
    assert sample(app, "serve_client_disconnects_total") == 1.0
