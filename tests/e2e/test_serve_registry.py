"""The service against the real embedded sqlite registry: aliases moved by `deploy apply` are
picked up, a canary splits traffic, and a damaged artifact is refused while the old one serves.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from pipeline.core import predlog
from pipeline.delivery import deploy, registry_client, serve
from tests.deploy_support import Workspace, commit_manifest, two_versions

with warnings.catch_warnings():
    # Starlette asks for its httpx fork here; the locked httpx works, so only that notice is muted.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.e2e

ROWS = 300
ENV = "staging"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    with two_versions(tmp_path_factory.mktemp("serve-registry"), rows=ROWS) as workspace:
        yield workspace


def test_service_follows_the_registry(ws: Workspace, raw_frame: pd.DataFrame) -> None:
    params = ws.params
    commit_manifest(ws, ENV, "staging: v1", champion=1)
    deploy.apply(params=params, env=ENV)
    features = list(params.data.features)
    sample = raw_frame.head(ROWS)
    rows = [
        {k: (float(v) if k in params.data.numeric else str(v)) for k, v in r.items()}
        for r in sample[features].to_dict(orient="records")
    ]
    writer = predlog.LogWriter(
        store=predlog.open_store(str(ws.root / "log.db")),
        flush_rows=params.serve.log.flush_rows,
        flush_seconds=params.serve.log.flush_seconds,
        queue_rows=params.serve.log.queue_rows,
    )
    app = serve.create_app(
        params=params,
        env=ENV,
        source=serve.RegistrySource(params=params, env=ENV),
        profile=serve.training_profile(frame=sample, data=params.data),
        writer=writer,
        poll=False,
    )
    with TestClient(app) as client:
        service: serve.Service = app.state.service
        assert client.get("/ready").json()["champion"] == "1"
        assert client.post("/predict", json={"features": rows[0]}).json()["model_version"] == "1"

        share = params.deploy.canary_share
        commit_manifest(ws, ENV, "staging: canary v2", champion=1, challenger=2, strategy="canary", traffic_share=share)
        deploy.apply(params=params, env=ENV)
        assert service.manager.refresh()
        n = 400
        roles = [
            client.post("/predict", json={"association_id": f"r-{i}", "features": rows[i % len(rows)]}).json()["role"]
            for i in range(n)
        ]
        assert abs(roles.count("challenger") / n - share) < 0.08

        # Roll back to version 1 (a sealed apply, which checks the artifact), then damage that
        # artifact before the service loads it: refused, version 2 keeps serving.
        commit_manifest(ws, ENV, "staging: v2", champion=2)
        deploy.apply(params=params, env=ENV)
        assert service.manager.refresh()
        commit_manifest(ws, ENV, "staging: back to v1", champion=1)
        deploy.apply(params=params, env=ENV)
        name = params.tracking.registered_model
        uri = registry_client.client(params=params).get_model_version_download_uri(name, "1")
        target = Path(uri.removeprefix("file://")) / "model.skops"
        original = target.read_bytes()
        target.write_bytes(original[:-10] + b"0123456789")
        try:
            assert not service.manager.refresh()
            ready = client.get("/ready")
            # Version 2 still answers: the replica stays ready, the refusal shows beside it.
            assert ready.status_code == 200
            assert ready.json()["champion"] == "2"
            assert ready.json()["registry"] == "reachable"
            assert "refused model version 1" in ready.json()["problem"]
            assert client.post("/predict", json={"features": rows[0]}).json()["model_version"] == "2"
        finally:
            target.write_bytes(original)
