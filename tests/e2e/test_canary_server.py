"""The whole rollout through the running service, against a real `mlflow server` on PostgreSQL
with the prediction log in PostgreSQL too: register v1, make it champion, serve, register v2,
canary it, check the observed split, analyse the log, promote, then roll back with `git revert`.
The service is never restarted: it follows every alias move by polling the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core import predlog
from pipeline.core.config import load_params
from pipeline.core.runner import stop_group
from pipeline.delivery import deploy, loadgen, proposal
from tests.conftest_servers import free_port
from tests.deploy_support import Workspace, commit_manifest, git, make_workspace, register_new

pytestmark = pytest.mark.e2e

ENV = "production"
# Training rows per model: with fewer, two fits differ by more than the distance guardrail allows.
ROWS = 2000
# Fixed request count: the score-histogram distance of a few hundred challenger rows is mostly
# sampling noise, so the canary gets enough traffic for its distance to mean something.
REQUESTS = 5000
# Tolerance of the observed challenger share, in binomial standard deviations.
SIGMAS = 4
CONNECTIONS = 8
# Seconds for the service to see an alias move: many poll intervals, plus a model download.
FOLLOW_SECONDS = 60.0
POLL_SECONDS = 0.2


@pytest.fixture(scope="module")
def log_url(postgres_url: str) -> str:
    """A database of its own for the prediction log, on the cluster that holds MLflow's."""
    import psycopg2

    server = postgres_url.replace("postgresql+psycopg2://", "postgresql://", 1)
    conn = psycopg2.connect(server)
    try:
        # CREATE DATABASE refuses to run inside a transaction.
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE predictions")
    finally:
        conn.close()
    return server.rsplit("/", 1)[0] + "/predictions"


@pytest.fixture(scope="module")
def ws(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("canary-server")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        base = make_workspace(root)
        raw = yaml.safe_load(base.params_path.read_text(encoding="utf-8"))
        # A model name of its own: the session's server is shared with the other deploy tests.
        raw["tracking"]["registered_model"] = f"{raw['tracking']['registered_model']}-canary"
        raw["serve"]["poll_seconds"] = POLL_SECONDS
        base.params_path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        git(root, "commit", "-qam", "params for the canary run")
        yield Workspace(root=root, params_path=base.params_path, params=load_params(base.params_path))


@contextlib.contextmanager
def running_service(ws: Workspace, *, log_url: str) -> Iterator[str]:
    """`pipeline serve` as its own process on loopback; yields its base URL."""
    port = free_port()
    log = ws.root / "serve.log"
    cmd = [
        *(sys.executable, "-m", "pipeline", "serve", "--env", ENV, "--host", "127.0.0.1", "--port", str(port)),
        *("--log-url", log_url, "--params", str(ws.params_path)),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ws.root, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            loadgen.wait_until_ok(url=f"{url}/ready", timeout=FOLLOW_SECONDS, process=proc)
        except (TimeoutError, RuntimeError) as exc:
            raise AssertionError(f"{exc}\n{log.read_text(errors='replace')[-3000:]}") from exc
        yield url
    finally:
        stop_group(proc)


def wait_for_state(http: httpx.Client, *, champion: str, challenger: str | None, share: float = 0.0) -> None:
    """Until /ready reports the whole state: an apply moves aliases and tags one by one, so a
    poll may catch, and serve for a moment, a state in between.
    """
    wanted = (champion, challenger, "canary" if challenger else "none", share)
    deadline = time.monotonic() + FOLLOW_SECONDS
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = http.get("/ready")
        body = response.json()
        seen = tuple(body.get(k) for k in ("champion", "challenger", "strategy", "traffic_share"))
        if response.status_code == 200 and seen == wanted:
            return
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"the service did not move to {wanted}: {body}")


async def _post_all(url: str, payloads: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    limits = httpx.Limits(max_connections=CONNECTIONS)
    gate = asyncio.Semaphore(CONNECTIONS)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:

        async def one(payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            async with gate:
                response = await http.post("/predict", json=payload)
                return response.status_code, response.json()

        return await asyncio.gather(*(one(p) for p in payloads))


def share_tolerance(*, share: float, requests: int) -> float:
    return SIGMAS * math.sqrt(share * (1 - share) / requests)


def wait_for_log(*, url: str, rows: int) -> pd.DataFrame:
    """The log once the service's writer has flushed `rows` rows (it drains on a timer)."""
    deadline = time.monotonic() + FOLLOW_SECONDS
    log = predlog.read_log(url=url, env=ENV)
    while len(log) < rows and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        log = predlog.read_log(url=url, env=ENV)
    return log


def test_canary_promote_and_revert_through_the_service(
    ws: Workspace, log_url: str, raw_frame: pd.DataFrame, tmp_path: Path
) -> None:
    params = ws.params
    share = params.deploy.canary_share
    min_requests = params.deploy.guardrails.min_requests
    tolerance = share_tolerance(share=share, requests=REQUESTS)
    # Even at the low end of the tolerance both models get enough traffic to be judged.
    assert REQUESTS * (share - tolerance) >= min_requests
    assert REQUESTS * (1 - share - tolerance) >= min_requests

    features = list(params.data.features)
    traffic = raw_frame.iloc[2 * ROWS : 2 * ROWS + REQUESTS]
    ids = traffic[params.base.id_column].astype(str).tolist()
    rows = [
        {k: (float(v) if k in params.data.numeric else str(v)) for k, v in r.items()}
        for r in traffic[features].to_dict(orient="records")
    ]
    labels = tmp_path / "labels.parquet"
    traffic[[params.base.id_column, params.base.target]].to_parquet(labels)

    v1 = register_new(ws, rows=ROWS, offset=0)
    commit_manifest(ws, ENV, f"{ENV}: v{v1}", champion=int(v1))
    deploy.apply(params=params, env=ENV)

    with running_service(ws, log_url=log_url) as url, httpx.Client(base_url=url, timeout=30) as http:
        wait_for_state(http, champion=v1, challenger=None)

        v2 = register_new(ws, rows=ROWS, offset=ROWS)
        assert proposal.propose_version(params=params, env=ENV, version="registered", strategy="canary", share=None)
        git(ws.root, "commit", "-qam", f"{ENV}: canary v{v2}")
        deploy.apply(params=params, env=ENV)
        wait_for_state(http, champion=v1, challenger=v2, share=share)

        started = time.monotonic()
        payloads = [{"association_id": i, "features": r} for i, r in zip(ids, rows, strict=True)]
        answers = asyncio.run(_post_all(url, payloads))
        elapsed = time.monotonic() - started
        assert [status for status, _ in answers if status != 200] == []
        roles = [body["role"] for _, body in answers]
        observed = roles.count("challenger") / REQUESTS
        print(
            f"canary share observed {observed:.4f} (target {share}, tolerance {tolerance:.4f}); "
            f"{REQUESTS} requests in {elapsed:.1f} s"
        )
        assert abs(observed - share) <= tolerance
        versions = {role: {body["model_version"] for _, body in answers if body["role"] == role} for role in set(roles)}
        assert versions == {"champion": {v1}, "challenger": {v2}}
        # Sticky: the same callers land on the same side again.
        again = asyncio.run(_post_all(url, payloads[: CONNECTIONS * 10]))
        assert [body["role"] for _, body in again] == roles[: len(again)]

        log = wait_for_log(url=log_url, rows=REQUESTS + len(again))
        assert len(log) == REQUESTS + len(again)
        first = log.drop_duplicates("association_id", keep="first").set_index("association_id")
        assert first.loc[ids, "role"].tolist() == roles
        assert log["score"].notna().all()
        assert log["error"].isna().all()

        result = CliRunner().invoke(
            app,
            [
                *("canary", "analyze", "--env", ENV, "--apply", "--labels", str(labels)),
                *("--log-url", log_url, "--params", str(ws.params_path)),
            ],
        )
        assert result.exit_code == 0, result.output
        assert "canary verdict: promote" in result.output, result.output
        git(ws.root, "commit", "-qam", f"{ENV}: promote v{v2}")
        promote_commit = git(ws.root, "rev-parse", "HEAD")
        deploy.apply(params=params, env=ENV)
        wait_for_state(http, champion=v2, challenger=None)
        assert http.post("/predict", json=payloads[0]).json()["model_version"] == v2

        # Rollback is a revert of the promotion's manifest commit, then apply: v1 is champion again.
        git(ws.root, "revert", "--no-edit", promote_commit)
        deploy.apply(params=params, env=ENV)
        wait_for_state(http, champion=v1, challenger=v2, share=share)
        on_champion = next(p for p, role in zip(payloads, roles, strict=True) if role == "champion")
        assert http.post("/predict", json=on_champion).json()["model_version"] == v1


def test_postgres_log_reads_back_like_sqlite(log_url: str, tmp_path: Path) -> None:
    """The same rows through both backends read back as the same frame (types, NULLs, filters)."""
    rows = [
        predlog.record(
            association_id=f"parity-{i}",
            env="parity",
            model_name="m",
            model_version=str(1 + i % 2),
            role=("champion", "challenger", "shadow")[i % 3],
            inputs={"AGEP": float(i)},
            score=None if i == 3 else i / 10,
            latency_ms=1.5,
            flags=["uncertain_score"] if i == 2 else [],
            fallback=i == 2,
            error="boom" if i == 3 else None,
            ts=1_000.0 + i,
        )
        for i in range(6)
    ]
    frames = []
    for url in (log_url, str(tmp_path / "log.db")):
        store = predlog.open_store(url)
        try:
            store.write(rows)
        finally:
            store.close()
        frames.append(predlog.read_log(url=url, env="parity", start=1_001.0, end=1_005.0))
    postgres, sqlite = frames
    assert postgres["association_id"].tolist() == [f"parity-{i}" for i in range(1, 5)]
    pd.testing.assert_frame_equal(postgres, sqlite)
