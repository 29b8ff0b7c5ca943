"""The scoring service in process: bad input, routing, shadow, alias changes, registry outages,
refused artifacts, humility flags and metrics, against models fitted on a few hundred rows.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipeline.core import predlog
from pipeline.core.config import Params
from pipeline.delivery import serve
from pipeline.stages.train import build_pipeline

with warnings.catch_warnings():
    # Starlette asks for its httpx fork here; the locked httpx works, so only that notice is muted.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.unit

ROWS = 400


class MemorySource:
    """A registry stand-in: a settable state, an outage switch and versions that fail to load."""

    def __init__(self, models: dict[str, serve.LocalModel], state: serve.ServingState) -> None:
        self.models, self.state = models, state
        self.down = False
        self.outage = "connection refused by the tracking server"
        self.corrupt: set[str] = set()
        self.loads: list[str] = []

    def current_state(self) -> serve.ServingState:
        if self.down:
            raise ConnectionError(self.outage)
        return self.state

    def load(self, version: str) -> serve.LocalModel:
        self.loads.append(version)
        if version in self.corrupt:
            raise ValueError(f"artifact hash mismatch for version {version}")
        return self.models[version]


@pytest.fixture(scope="module")
def sample(raw_frame: pd.DataFrame) -> pd.DataFrame:
    return raw_frame.sample(ROWS, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="module")
def models(params: Params, sample: pd.DataFrame) -> dict[str, serve.LocalModel]:
    features = list(params.data.features)
    out = {}
    # Two versions that score differently: the estimators params lists.
    for version, name in zip(("1", "2"), params.train.candidates, strict=False):
        model = build_pipeline(data=params.data, spec=params.train.estimators[name], seed=params.base.seed)
        model.fit(sample[features], sample[params.base.target])
        out[version] = serve.LocalModel(params.tracking.registered_model, version, None, model, features)
    return out


@pytest.fixture(scope="module")
def profile(params: Params, sample: pd.DataFrame) -> serve.TrainingProfile:
    return serve.training_profile(frame=sample, data=params.data)


def rows(sample: pd.DataFrame, params: Params, n: int) -> list[dict[str, Any]]:
    features = list(params.data.features)
    return [
        {k: (float(v) if k in params.data.numeric else str(v)) for k, v in r.items()}
        for r in sample[features].head(n).to_dict(orient="records")
    ]


class Harness:
    def __init__(self, client: TestClient, source: MemorySource, log_path: Path, writer: predlog.LogWriter) -> None:
        self.client, self.source, self.log_path, self.writer = client, source, log_path, writer

    @property
    def service(self) -> serve.Service:
        return self.client.app.state.service  # type: ignore[attr-defined,no-any-return]

    def refresh(self) -> bool:
        ok = self.service.manager.refresh()
        self.service.update_gauges()
        return ok

    def log(self) -> pd.DataFrame:
        deadline = time.monotonic() + 10
        while self.writer.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(self.writer.flush_seconds * 2)
        return predlog.read_log(url=str(self.log_path))


@pytest.fixture
def make_harness(
    params: Params, models: dict[str, serve.LocalModel], profile: serve.TrainingProfile, tmp_path: Path
) -> Iterator[Any]:
    opened: list[TestClient] = []

    def make(state: serve.ServingState, *, p: Params = params, down: bool = False) -> Harness:
        source = MemorySource(models, state)
        source.down = down
        log_path = tmp_path / f"log{len(opened)}.db"
        log = p.serve.log
        writer = predlog.LogWriter(
            store=predlog.open_store(str(log_path)),
            flush_rows=log.flush_rows,
            flush_seconds=log.flush_seconds,
            queue_rows=log.queue_rows,
        )
        app = serve.create_app(params=p, env="staging", source=source, profile=profile, writer=writer, poll=False)
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        return Harness(client, source, log_path, writer)

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def body(row: dict[str, Any], association_id: str | None = None) -> dict[str, Any]:
    return {"features": row} if association_id is None else {"association_id": association_id, "features": row}


# --------------------------------------------------------------------------- bad input


def test_bad_requests_get_clear_4xx_and_the_service_keeps_serving(
    make_harness: Any, sample: pd.DataFrame, params: Params
) -> None:
    h = make_harness(serve.ServingState(champion="1"))
    good = rows(sample, params, 1)[0]
    numeric = next(iter(params.data.numeric))
    category = next(iter(params.data.categorical))
    too_high = params.data.numeric[numeric].max + 1
    cases: list[tuple[bytes, int, str]] = [
        (b"{not json", 400, "malformed JSON"),
        (b"", 400, "empty request body"),
        (b"   ", 400, "empty request body"),
        (b"[1, 2]", 422, "(body)"),
        (json.dumps({"association_id": "a"}).encode(), 422, "features"),
        (json.dumps(body({k: v for k, v in good.items() if k != numeric})).encode(), 422, f"features.{numeric}"),
        (json.dumps(body({**good, "extra": 1})).encode(), 422, "features.extra"),
        (json.dumps({**body(good), "surprise": True}).encode(), 422, "surprise"),
        (json.dumps(body({**good, numeric: "old"})).encode(), 422, f"features.{numeric}"),
        (json.dumps(body({**good, numeric: too_high})).encode(), 422, f"features.{numeric}"),
        (json.dumps(body({**good, category: "not-a-code"})).encode(), 422, f"features.{category}"),
        (json.dumps(body({**good, category: None})).encode(), 422, f"features.{category}"),
        (json.dumps({"association_id": "", "features": good}).encode(), 422, "association_id"),
        (b"x" * (params.serve.max_body_bytes + 1), 413, "larger than"),
    ]
    for payload, status, needle in cases:
        response = h.client.post("/predict", content=payload, headers={"content-type": "application/json"})
        assert response.status_code == status, (payload[:80], response.text)
        assert needle in response.text, (payload[:80], response.text)
        ok = h.client.post("/predict", json=body(good))
        assert ok.status_code == 200, ok.text
    assert h.client.get("/health").status_code == 200
    metrics = h.client.get("/metrics").text
    assert 'serve_errors_total{kind="invalid"}' in metrics
    assert 'serve_errors_total{kind="too_large"} 1.0' in metrics


def test_oversized_body_without_content_length_is_refused(make_harness: Any, params: Params) -> None:
    h = make_harness(serve.ServingState(champion="1"))

    def chunks() -> Iterator[bytes]:
        for _ in range(params.serve.max_body_bytes // 1024 + 2):
            yield b" " * 1024

    response = h.client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.headers["connection"] == "close"


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonp", "multipart/form-data; boundary=x"],
)
def test_predict_refuses_a_body_that_is_not_json(
    make_harness: Any, sample: pd.DataFrame, params: Params, content_type: str | None
) -> None:
    h = make_harness(serve.ServingState(champion="1"))
    payload = json.dumps(body(rows(sample, params, 1)[0])).encode()
    # httpx would add its own content type to a body; an explicit empty mapping sends none.
    headers = {} if content_type is None else {"content-type": content_type}
    response = h.client.post("/predict", content=payload, headers=headers)
    assert response.status_code == 415, response.text
    assert response.headers["content-type"] == "application/json"
    assert "application/json" in response.json()["detail"]
    assert "\n" not in response.text
    assert 'serve_errors_total{kind="media_type"} 1.0' in h.client.get("/metrics").text


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON", "application/json;"])
def test_predict_accepts_json_with_parameters(
    make_harness: Any, sample: pd.DataFrame, params: Params, content_type: str
) -> None:
    h = make_harness(serve.ServingState(champion="1"))
    payload = json.dumps(body(rows(sample, params, 1)[0])).encode()
    response = h.client.post("/predict", content=payload, headers={"content-type": content_type})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("bad", ["a\nb", "id\r\nforged: 1", "\x1b[2J", "nul\x00", "del\x7f", "c1\x85"])
def test_association_id_with_control_characters_is_refused(
    make_harness: Any, sample: pd.DataFrame, params: Params, bad: str
) -> None:
    h = make_harness(serve.ServingState(champion="1"))
    response = h.client.post("/predict", json=body(rows(sample, params, 1)[0], bad))
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == ["association_id"]
    assert "control characters" in errors[0]["message"]


def test_association_id_with_spaces_and_letters_of_any_script_is_accepted(
    make_harness: Any, sample: pd.DataFrame, params: Params
) -> None:
    h = make_harness(serve.ServingState(champion="1"))
    for good in ("user 42", "Zoë-ünïcode", "\u00a0nbsp\u2003em"):
        response = h.client.post("/predict", json=body(rows(sample, params, 1)[0], good))
        assert response.status_code == 200, response.text
        assert response.json()["association_id"] == good


def test_codes_sent_as_numbers_are_accepted(make_harness: Any, sample: pd.DataFrame, params: Params) -> None:
    h = make_harness(serve.ServingState(champion="1"))
    row = rows(sample, params, 1)[0]
    as_numbers = {k: (int(v) if k in params.data.categorical else v) for k, v in row.items()}
    a = h.client.post("/predict", json=body(row)).json()
    b = h.client.post("/predict", json=body(as_numbers)).json()
    assert a["score"] == pytest.approx(b["score"])


# --------------------------------------------------------------------------- routing


def test_canary_share_is_observed_and_sticky(make_harness: Any, sample: pd.DataFrame, params: Params) -> None:
    share, n = 0.2, 1000
    h = make_harness(serve.ServingState(champion="1", challenger="2", strategy="canary", traffic_share=share))
    row = rows(sample, params, 1)[0]
    roles = [h.client.post("/predict", json=body(row, f"user-{i}")).json()["role"] for i in range(n)]
    observed = roles.count("challenger") / n
    # Binomial sd at n=1000, p=0.2 is 0.013: four of them.
    assert abs(observed - share) < 0.05
    again = [h.client.post("/predict", json=body(row, f"user-{i}")).json()["role"] for i in range(50)]
    assert again == roles[:50]
    log = h.log()
    assert set(log["role"]) == {"champion", "challenger"}
    assert set(log.loc[log["role"] == "challenger", "model_version"]) == {"2"}


def test_bucket_is_uniform_and_deterministic() -> None:
    values = [serve.bucket(f"id-{i}") for i in range(5000)]
    assert values[:10] == [serve.bucket(f"id-{i}") for i in range(10)]
    assert all(0 <= v < 1 for v in values)
    assert abs(sum(v < 0.3 for v in values) / len(values) - 0.3) < 0.03


def test_shadow_answers_with_champion_and_logs_both(
    make_harness: Any, sample: pd.DataFrame, params: Params, models: dict[str, serve.LocalModel]
) -> None:
    h = make_harness(serve.ServingState(champion="1", challenger="2", strategy="shadow"))
    batch = rows(sample, params, 20)
    answers = [h.client.post("/predict", json=body(r, f"s-{i}")).json() for i, r in enumerate(batch)]
    assert {a["model_version"] for a in answers} == {"1"}
    assert {a["role"] for a in answers} == {"champion"}
    expected = models["1"].model.predict_proba(serve.to_frame(rows=batch, data=params.data))[:, 1]
    assert [a["score"] for a in answers] == pytest.approx(list(expected))
    log = h.log()
    assert sorted(log.groupby("role")["association_id"].nunique().items()) == [("champion", 20), ("shadow", 20)]
    shadow = log[log["role"] == "shadow"].set_index("association_id")
    want = models["2"].model.predict_proba(serve.to_frame(rows=batch, data=params.data))[:, 1]
    assert [shadow.loc[f"s-{i}", "score"] for i in range(20)] == pytest.approx(list(want))


# --------------------------------------------------------------------------- reloads


def test_alias_change_is_picked_up_without_failed_requests(
    make_harness: Any, sample: pd.DataFrame, params: Params
) -> None:
    h = make_harness(serve.ServingState(champion="1"))
    row = rows(sample, params, 1)[0]
    statuses: list[int] = []
    versions: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            r = h.client.post("/predict", json=body(row))
            statuses.append(r.status_code)
            versions.append(r.json().get("model_version", "?"))

    workers = [threading.Thread(target=traffic) for _ in range(4)]
    for w in workers:
        w.start()
    time.sleep(0.3)
    h.source.state = serve.ServingState(champion="2")
    assert h.refresh()
    time.sleep(0.3)
    stop.set()
    for w in workers:
        w.join()
    assert statuses
    assert set(statuses) == {200}
    assert versions[0] == "1"
    assert versions[-1] == "2"
    # Once swapped, never back: the swap is one reference assignment.
    first_new = versions.index("2")
    assert set(versions[first_new:]) == {"2"}
    assert h.client.get("/ready").json()["champion"] == "2"


def metric(text: str, name: str) -> float:
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(f"{name} ")))


def test_registry_outage_keeps_serving_and_stays_ready(make_harness: Any, sample: pd.DataFrame, params: Params) -> None:
    h = make_harness(serve.ServingState(champion="1"))
    ready = h.client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["registry"] == "reachable"
    last_success = ready.json()["registry_last_success"]
    assert last_success is not None
    h.source.down = True
    assert not h.refresh()
    ready = h.client.get("/ready")
    # A load balancer asks whether this replica can answer: with a model loaded, it can.
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert ready.json()["champion"] == "1"
    assert ready.json()["registry"].startswith("unreachable since ")
    assert "connection refused" in ready.json()["registry"]
    assert ready.json()["registry_last_success"] == last_success
    assert "registry unreachable" in ready.json()["problem"]
    response = h.client.post("/predict", json=body(rows(sample, params, 1)[0]))
    assert response.status_code == 200
    assert response.json()["model_version"] == "1"
    metrics = h.client.get("/metrics").text
    assert metric(metrics, "serve_ready") == 1.0
    assert metric(metrics, "serve_registry_reachable") == 0.0
    assert metric(metrics, "serve_models_current") == 0.0
    assert metric(metrics, "serve_registry_last_success_timestamp_seconds") > 0
    # Still down at the next poll: the outage keeps the time it began.
    since = ready.json()["registry"].split(": ", 1)[0]
    assert not h.refresh()
    assert h.client.get("/ready").json()["registry"].split(": ", 1)[0] == since
    h.source.down = False
    assert h.refresh()
    ready = h.client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["registry"] == "reachable"
    assert ready.json()["problem"] is None
    assert metric(h.client.get("/metrics").text, "serve_registry_reachable") == 1.0


def test_registry_unreachable_from_the_start_is_not_ready(make_harness: Any) -> None:
    h = make_harness(serve.ServingState(champion="1"), down=True)
    ready = h.client.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["ready"] is False
    assert ready.json()["registry"].startswith("unreachable since ")
    assert metric(h.client.get("/metrics").text, "serve_ready") == 0.0


def test_ready_never_shows_registry_credentials(make_harness: Any) -> None:
    h = make_harness(serve.ServingState(champion="1"))
    h.source.outage = "cannot reach https://alice:s3cret@mlflow.example.com/api?token=t0k3n"
    h.source.down = True
    assert not h.refresh()
    text = h.client.get("/ready").text
    assert "mlflow.example.com" in text
    assert "s3cret" not in text
    assert "t0k3n" not in text


def test_corrupt_artifact_is_refused_and_the_old_version_keeps_serving(
    make_harness: Any, sample: pd.DataFrame, params: Params
) -> None:
    h = make_harness(serve.ServingState(champion="1"))
    h.source.corrupt.add("2")
    h.source.state = serve.ServingState(champion="2")
    assert not h.refresh()
    response = h.client.get("/ready")
    ready = response.json()
    # Version 1 still answers, so the replica stays in rotation; the refusal shows beside it.
    assert response.status_code == 200
    assert ready["ready"] is True
    assert ready["champion"] == "1"
    assert ready["registry"] == "reachable"
    assert "refused model version 2" in ready["problem"]
    assert "hash mismatch" in ready["problem"]
    assert h.client.post("/predict", json=body(rows(sample, params, 1)[0])).json()["model_version"] == "1"


def test_model_with_wrong_signature_is_refused(
    make_harness: Any, models: dict[str, serve.LocalModel], sample: pd.DataFrame, params: Params
) -> None:
    h = make_harness(serve.ServingState(champion="1"))
    good = models["2"]
    h.source.models = {**models, "3": serve.LocalModel(good.name, "3", None, good.model, good.signature_columns[1:])}
    h.source.state = serve.ServingState(champion="3")
    assert not h.refresh()
    assert "signature" in h.client.get("/ready").json()["problem"]
    assert h.client.post("/predict", json=body(rows(sample, params, 1)[0])).json()["model_version"] == "1"


def test_no_champion_means_not_ready_and_503(make_harness: Any, sample: pd.DataFrame, params: Params) -> None:
    h = make_harness(serve.ServingState(champion=None))
    assert h.client.get("/ready").status_code == 503
    assert h.client.get("/health").status_code == 200
    assert h.client.post("/predict", json=body(rows(sample, params, 1)[0])).status_code == 503


# --------------------------------------------------------------------------- humility, batching, log


def test_humility_flags_in_response_and_log(
    make_harness: Any, sample: pd.DataFrame, params: Params, profile: serve.TrainingProfile
) -> None:
    numeric = next(iter(params.data.numeric))
    low, _ = profile.numeric[numeric]
    bound = params.data.numeric[numeric]
    unseen = {
        c: [code for code in spec.values if code not in profile.categorical[c]]
        for c, spec in params.data.categorical.items()
    }
    column = next(c for c, codes in unseen.items() if codes)
    row = {**rows(sample, params, 1)[0], column: unseen[column][0]}
    if low > bound.min:
        row[numeric] = bound.min
    fallback = params.model_copy(
        update={
            "serve": params.serve.model_copy(
                update={"humility": params.serve.humility.model_copy(update={"fallback_label": 1})}
            )
        }
    )
    h = make_harness(serve.ServingState(champion="1"), p=fallback)
    answer = h.client.post("/predict", json=body(row, "odd")).json()
    assert f"unseen_category:{column}" in answer["flags"]
    if low > bound.min:
        assert f"out_of_training_range:{numeric}" in answer["flags"]
    assert answer["fallback"] is True
    assert answer["label"] == 1
    logged = h.log()
    assert json.loads(logged.loc[0, "flags"]) == answer["flags"]
    assert bool(logged.loc[0, "fallback"])


def test_score_flags_and_answer_follow_params(params: Params) -> None:
    low, high = params.serve.humility.uncertain_band
    humility = params.serve.humility
    assert serve.score_flags(score=(low + high) / 2, humility=humility) == [serve.FLAG_UNCERTAIN]
    assert serve.score_flags(score=min(1.0, high + 0.01), humility=humility) == []
    t = params.evaluate.threshold
    assert serve.answer(score=t, flags=[], threshold=t, humility=humility) == (1, False)


def test_concurrent_requests_are_batched(
    make_harness: Any, sample: pd.DataFrame, params: Params, models: dict[str, serve.LocalModel]
) -> None:
    h = make_harness(serve.ServingState(champion="1"))
    batch = rows(sample, params, 64)
    results: dict[int, Any] = {}

    def send(i: int) -> None:
        results[i] = h.client.post("/predict", json=body(batch[i], f"b-{i}")).json()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(batch))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = models["1"].model.predict_proba(serve.to_frame(rows=batch, data=params.data))[:, 1]
    assert [results[i]["score"] for i in range(len(batch))] == pytest.approx(list(expected))
    metrics = h.client.get("/metrics").text
    count = next(line for line in metrics.splitlines() if line.startswith("serve_batch_rows_count"))
    assert float(count.split()[-1]) < len(batch)


def test_prediction_log_rows(make_harness: Any, sample: pd.DataFrame, params: Params) -> None:
    h = make_harness(serve.ServingState(champion="1"))
    batch = rows(sample, params, 5)
    answers = [h.client.post("/predict", json=body(r, f"p-{i}")).json() for i, r in enumerate(batch)]
    log = h.log()
    assert list(log["association_id"]) == [f"p-{i}" for i in range(5)]
    assert set(log["env"]) == {"staging"}
    assert set(log["role"]) == {"champion"}
    assert list(log["score"]) == pytest.approx([a["score"] for a in answers])
    assert [json.loads(s) for s in log["inputs"]] == batch
    assert log["error"].isna().all()
    assert (log["latency_ms"] > 0).all()
    assert params.base.target not in log.columns
