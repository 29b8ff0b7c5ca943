"""POST /feedback on the real service: labels for logged predictions (served by the process, or
already in its log) are stored and matched, unknown ids kept as unmatched, retries and duplicates
handled by the params rule, and every bad request refused in /predict's style with nothing stored.
In process: the version rule, a service without a log, and a slow label write that must not hold
up the event loop.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml

from pipeline.core import predlog
from pipeline.core.config import Params, load_params
from pipeline.delivery import loadgen, serve
from tests.conftest import demo_params_text, quick_model_file
from tests.predlog_support import log_row, postgres_database

with warnings.catch_warnings():
    # Starlette asks for its httpx fork here; the locked httpx works, so only that notice is muted.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TRAIN_ROWS = 300
MAX_BATCH = 5


@dataclass
class Server:
    url: str
    log: Path
    proc: subprocess.Popen[bytes]

    def feedback(self, payload: Any) -> httpx.Response:
        return httpx.post(f"{self.url}/feedback", json=payload, timeout=30)

    def stored(self) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.log)
        try:
            return sorted(conn.execute("SELECT association_id, version, label, raw_label, source FROM labels"))
        finally:
            conn.close()


def _params_file(folder: Path, **labels: Any) -> Path:
    raw = yaml.safe_load(demo_params_text())
    raw["labels"].update(labels)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def model_file(params: Params, raw_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return quick_model_file(
        params, raw_frame, tmp_path_factory.mktemp("model") / "model.skops", rows=TRAIN_ROWS, seed=3
    )


@pytest.fixture(scope="module")
def server(model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("feedback")
    params = _params_file(tmp, max_batch=MAX_BATCH, duplicates="refuse")
    port = loadgen.free_port()
    cmd = [sys.executable, "-m", "pipeline", "serve", "--env", "feedback", "--model", str(model_file)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-url", str(tmp / "log.db"), "--params", str(params)]
    with (tmp / "serve.log").open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        loadgen.wait_until_ok(url=f"http://127.0.0.1:{port}/ready", timeout=120, process=proc)
        yield Server(f"http://127.0.0.1:{port}", tmp / "log.db", proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


def _rows(params: Params, frame: pd.DataFrame, n: int) -> list[dict[str, Any]]:
    features = list(params.data.features)
    return [
        {k: (float(v) if k in params.data.numeric else str(v)) for k, v in r.items()}
        for r in frame[features].head(n).to_dict(orient="records")
    ]


def _wait_logged(log: Path, ids: list[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = set(predlog.read_log(url=str(log))["association_id"])
        if set(ids) <= found:
            return
        time.sleep(0.1)
    raise AssertionError(f"predictions {ids} never reached the log")


def test_labels_for_served_predictions_are_matched(server: Server, params: Params, raw_frame: pd.DataFrame) -> None:
    ids = []
    for n, row in enumerate(_rows(params, raw_frame, 3)):
        answer = httpx.post(
            f"{server.url}/predict", json={"association_id": f"served-{n}", "features": row}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        ids.append(answer.json()["association_id"])
    _wait_logged(server.log, ids)
    result = server.feedback([{"association_id": i, "label": n % 2} for n, i in enumerate(ids)])
    assert result.status_code == 200, result.text
    assert result.json()["matched"] == ids
    joined = predlog.labelled_predictions(str(server.log), environment="feedback")
    assert joined.set_index("association_id").loc[ids, "label"].tolist() == [0, 1, 0]


def test_feedback_stores_matches_and_keeps_unknown_ids(server: Server) -> None:
    # Predictions already in the log (the service's writer shares the file: WAL lets both write).
    store = predlog.open_store(str(server.log))
    try:
        store.write([log_row(i, time.time() - 60) for i in ("k1", "k2")])
    finally:
        store.close()
    yesterday = datetime.fromtimestamp(time.time() - 86_400, UTC).isoformat()
    one = server.feedback({"association_id": "k1", "label": 1, "observed_at": yesterday})
    assert one.status_code == 200, one.text
    assert one.json() == {
        "received": 1,
        "inserted": 1,
        "unchanged": 0,
        "refused": [],
        "duplicates": "refuse",
        "matched": ["k1"],
        "unmatched": [],
    }
    batch = server.feedback(
        [
            {"association_id": "k2", "label": "0"},
            {"association_id": "nobody", "label": 1},
            {"association_id": "k1", "label": 1},
        ]
    )
    assert batch.status_code == 200, batch.text
    body = batch.json()
    assert (body["inserted"], body["unchanged"], body["refused"]) == (2, 1, [])
    assert (body["matched"], body["unmatched"]) == (["k2", "k1"], ["nobody"])
    conflict = server.feedback({"association_id": "k1", "label": 0})
    assert conflict.status_code == 200, conflict.text
    assert conflict.json()["refused"] == [
        {"association_id": "k1", "label": 0, "stored_label": 1, "stored_source": "feedback"}
    ]
    assert [r for r in server.stored() if r[0] in {"k1", "k2", "nobody"}] == [
        ("k1", 1, 1, "1", "feedback"),
        ("k2", 1, 0, "0", "feedback"),
        ("nobody", 1, 1, "1", "feedback"),
    ]
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert 'serve_feedback_labels_total{outcome="refused"} 1.0' in metrics
    assert 'serve_feedback_labels_total{outcome="unmatched"}' in metrics


BAD_REQUESTS: list[tuple[str, bytes, dict[str, str], int, list[str]]] = [
    ("malformed", b"{not json", {}, 400, ["malformed JSON"]),
    ("empty", b"  ", {}, 400, ["empty request body"]),
    ("media_type", b'{"association_id": "a", "label": 1}', {"content-type": "text/plain"}, 415, ["Content-Type"]),
    ("empty_list", b"[]", {}, 422, ["an empty list"]),
    (
        "too_many",
        ("[" + ",".join(['{"association_id": "a", "label": 1}'] * (MAX_BATCH + 1)) + "]").encode(),
        {},
        413,
        ["labels.max_batch"],
    ),
    ("too_large", b'"' + b"x" * 70_000 + b'"', {}, 413, ["larger than"]),
    ("not_object", b'"k1"', {}, 422, ['"field":"(body)"', "must be an object"]),
    ("missing", b'{"association_id": "a"}', {}, 422, ['"field":"label"', "field required"]),
    ("extra", b'{"association_id": "a", "label": 1, "score": 0.3}', {}, 422, ['"field":"score"', "unknown field"]),
    (
        "label",
        b'[{"association_id": "a", "label": 1}, {"association_id": "b", "label": "maybe"}]',
        {},
        422,
        ['"field":"1.label"', "base.positive_label"],
    ),
    ("boolean", b'{"association_id": "a", "label": true}', {}, 422, ['"field":"label"']),
    ("empty_id", b'{"association_id": "", "label": 1}', {}, 422, ['"field":"association_id"', "must not be empty"]),
    ("long_id", ('{"association_id": "' + "x" * 129 + '", "label": 1}').encode(), {}, 422, ["at most 128"]),
    ("control_id", b'{"association_id": "a\\nb", "label": 1}', {}, 422, ["U+000A"]),
    ("number_id", b'{"association_id": 7, "label": 1}', {}, 422, ["must be text"]),
    (
        "time",
        b'{"association_id": "a", "label": 1, "observed_at": "yesterday"}',
        {},
        422,
        ['"field":"observed_at"', "ISO 8601"],
    ),
    (
        "future",
        b'{"association_id": "a", "label": 1, "observed_at": "2999-01-01T00:00:00Z"}',
        {},
        422,
        ["in the future"],
    ),
    ("old", b'{"association_id": "a", "label": 1, "observed_at": "2001-01-01T00:00:00Z"}', {}, 422, ["retention_days"]),
]


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "needles"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_feedback_is_refused_and_nothing_is_stored(
    server: Server, case: str, body: bytes, headers: dict[str, str], status: int, needles: list[str]
) -> None:
    before = server.stored()
    response = httpx.post(
        f"{server.url}/feedback", content=body, headers={"content-type": "application/json", **headers}, timeout=30
    )
    assert response.status_code == status, (case, response.text)
    assert "detail" in response.json()
    for needle in needles:
        assert needle in response.text, (case, response.text)
    assert server.stored() == before
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200


# --------------------------------------------------------------------------- in process


@pytest.fixture
def make_client(model_file: Path, params: Params, raw_frame: pd.DataFrame, tmp_path: Path) -> Iterator[Any]:
    opened: list[TestClient] = []

    def make(*, with_log: bool = True, url: str | None = None, **labels: Any) -> TestClient:
        p = load_params(_params_file(tmp_path, **labels))
        log = p.serve.log
        writer = None
        if with_log:
            store = predlog.open_store(url or str(tmp_path / "log.db"))
            writer = predlog.LogWriter(
                store=store, flush_rows=log.flush_rows, flush_seconds=log.flush_seconds, queue_rows=log.queue_rows
            )
        app = serve.create_app(
            params=p,
            env="inproc",
            source=serve.FileSource(path=model_file, name=p.tracking.registered_model, features=p.data.features),
            profile=serve.training_profile(frame=raw_frame.head(TRAIN_ROWS), data=p.data),
            writer=writer,
            poll=False,
        )
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def test_the_version_rule_keeps_the_newest(make_client: Any, tmp_path: Path) -> None:
    client = make_client(duplicates="version")
    assert client.post("/feedback", json={"association_id": "v", "label": 1}).json()["inserted"] == 1
    second = client.post("/feedback", json={"association_id": "v", "label": 0}).json()
    assert (second["inserted"], second["refused"], second["duplicates"]) == (1, [], "version")
    # A late retry of the first label is not a duplicate and does not undo the correction.
    assert client.post("/feedback", json={"association_id": "v", "label": 1}).json()["unchanged"] == 1
    store = predlog.open_store(str(tmp_path / "log.db"))
    try:
        store.write([log_row("v", time.time() - 60)])
    finally:
        store.close()
    joined = predlog.labelled_predictions(str(tmp_path / "log.db"))
    assert joined[["association_id", "label", "label_version"]].values.tolist() == [["v", 0, 2]]


def test_a_service_without_a_log_refuses_labels(make_client: Any) -> None:
    client = make_client(with_log=False)
    response = client.post("/feedback", json={"association_id": "a", "label": 1})
    assert response.status_code == 503
    assert "no prediction log" in response.json()["detail"]


def test_a_slow_label_write_does_not_hold_up_the_event_loop(make_client: Any) -> None:
    client = make_client()
    feedback = client.app.state.feedback  # type: ignore[attr-defined]
    write = feedback.store.write_labels

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(1.5)
        return write(*args, **kwargs)

    feedback.store.write_labels = slow
    answers: list[httpx.Response] = []
    sender = threading.Thread(
        target=lambda: answers.append(client.post("/feedback", json={"association_id": "slow", "label": 1}))
    )
    sender.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert client.get("/ready").status_code == 200
    waited = time.monotonic() - started
    sender.join()
    assert waited < 0.7, f"/ready waited {waited:.2f} s behind a label write"
    assert answers[0].status_code == 200
    assert answers[0].json()["inserted"] == 1


def test_feedback_on_a_postgres_log(make_client: Any, postgres_url: str) -> None:
    with postgres_database(postgres_url, prefix="feedback") as url:
        store = predlog.open_store(url)
        try:
            store.write([log_row("pg-1", time.time() - 60)])
        finally:
            store.close()
        client = make_client(url=url)
        response = client.post(
            "/feedback", json=[{"association_id": "pg-1", "label": 1}, {"association_id": "pg-2", "label": 0}]
        )
        assert response.status_code == 200, response.text
        assert (response.json()["matched"], response.json()["unmatched"]) == (["pg-1"], ["pg-2"])
        retry = client.post("/feedback", json={"association_id": "pg-1", "label": 1})
        assert retry.json()["unchanged"] == 1
        joined = predlog.labelled_predictions(url)
        assert joined[["association_id", "label", "label_source"]].values.tolist() == [["pg-1", 1, "feedback"]]
