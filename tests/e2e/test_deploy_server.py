"""The team set-up end to end: register, apply, canary, revert and lineage against a real
`mlflow server` on PostgreSQL (see conftest_servers.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.delivery import artifacts, deploy, lineage, proposal, registry_state, service_smoke
from pipeline.delivery import manifest as manifests
from tests.deploy_support import Workspace, commit_manifest, git, make_workspace, register_new, write_manifest

pytestmark = pytest.mark.e2e

ROWS = 300


@pytest.fixture(scope="module")
def ws(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("team")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        yield make_workspace(root)


def _state(ws: Workspace, env: str) -> registry_state.DeploymentState:
    return registry_state.deployment_state(name=ws.params.tracking.registered_model, env=env)


def test_register_apply_canary_revert_against_the_server(ws: Workspace) -> None:
    name = ws.params.tracking.registered_model
    v1 = register_new(ws, rows=ROWS, offset=0)
    commit_manifest(ws, "production", "production: v1", champion=int(v1))
    deploy.apply(params=ws.params, env="production")
    assert _state(ws, "production") == registry_state.DeploymentState(v1, None, "none", 0.0)

    v2 = register_new(ws, rows=ROWS, offset=ROWS)
    assert proposal.propose_version(
        params=ws.params, env="production", version="registered", strategy="canary", share=None
    )
    git(ws.root, "commit", "-qam", f"production: canary v{v2}")
    canary_commit = git(ws.root, "rev-parse", "HEAD")
    deploy.apply(params=ws.params, env="production")
    share = ws.params.deploy.canary_share
    assert _state(ws, "production") == registry_state.DeploymentState(v1, v2, "canary", share)
    assert deploy.apply(params=ws.params, env="production").changes == []

    served = artifacts.load_model_version(name=name, version=v2)
    assert served.signature_columns == list(ws.params.data.features)

    promoted = manifests.promote(manifest=manifests.load_manifest(params=ws.params, env="production"))
    manifests.write_manifest(manifest=promoted, params=ws.params, env="production")
    git(ws.root, "commit", "-qam", f"production: promote v{v2}")
    promote_commit = git(ws.root, "rev-parse", "HEAD")
    deploy.apply(params=ws.params, env="production")
    assert _state(ws, "production") == registry_state.DeploymentState(v2, None, "none", 0.0)

    # Rollback of the promotion: revert its commit, apply, and v1 is the champion again.
    git(ws.root, "revert", "--no-edit", promote_commit)
    deploy.apply(params=ws.params, env="production")
    assert _state(ws, "production") == registry_state.DeploymentState(v1, v2, "canary", share)
    # The real service, reading champion and challenger from the server's registry.
    assert service_smoke.run(params=ws.params, env="production")["versions"] == sorted([v1, v2])

    data = lineage.collect(params=ws.params, version=v2)
    assert data["git"]["commit"] == git(ws.root, "rev-parse", "HEAD~3")
    assert [d["roles"] for d in data["deployments"]] == [["challenger"], ["champion"], ["challenger"]]
    assert [d["commit"] for d in data["deployments"]][:2] == [canary_commit, promote_commit]
    assert data["aliases"] == ["production-challenger"]
    text = lineage.render_markdown(data)
    assert "| production | challenger | canary |" in text
    assert "| production | champion | none |" in text


def test_unreachable_server_fails_fast(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest_servers import free_port

    write_manifest(ws, "production", champion=1)  # so the command gets as far as the registry
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    result = CliRunner().invoke(app, ["deploy", "plan", "--env", "production"])
    # A store fault, not a refusal of the input: exit 2.
    assert result.exit_code == 2
    assert "error: cannot reach the registry at http://127.0.0.1:" in result.output
    assert "Traceback" not in result.output
    assert time.monotonic() - started < 30
