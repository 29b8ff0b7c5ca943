"""register, deploy plan/apply, rollback and lineage against the embedded sqlite registry."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core import io
from pipeline.delivery import artifacts, deploy, lineage, lock, registry, registry_client, registry_state
from pipeline.delivery import manifest as manifests
from tests.deploy_support import (
    Workspace,
    commit_manifest,
    git,
    log_model,
    register_new,
    reset_deployments,
    two_versions,
    write_manifest,
)

pytestmark = pytest.mark.e2e

ROWS = 300


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """Two registered versions in an embedded store; the working directory is the workspace."""
    with two_versions(tmp_path_factory.mktemp("registry"), rows=ROWS) as ws:
        yield ws


@pytest.fixture
def ws(workspace: Workspace) -> Iterator[Workspace]:
    reset_deployments(workspace)
    yield workspace
    io.write_json({"passed": True}, workspace.params.paths.reports / "fairness.json")
    (workspace.params.paths.reports / "gate.json").unlink(missing_ok=True)


def _state(ws: Workspace, env: str) -> registry_state.DeploymentState:
    return registry_state.deployment_state(name=ws.params.tracking.registered_model, env=env)


def _versions(ws: Workspace) -> int:
    name = ws.params.tracking.registered_model
    return len(registry_client.client(params=ws.params).search_model_versions(f"name = '{name}'"))


def test_register_tags_lineage_and_is_idempotent(ws: Workspace) -> None:
    name = ws.params.tracking.registered_model
    tags = registry_client.client(params=ws.params).get_model_version(name, "2").tags
    assert tags["git.commit"] == git(ws.root, "rev-parse", "HEAD")
    assert tags["data.raw.md5"] == io.file_md5(Path(__file__).resolve().parents[2] / ws.params.data.raw)
    assert tags["status.validation"] == tags["status.fairness"] == "passed"
    assert tags["status.gate"] == registry.NOT_RUN
    assert len(tags[artifacts.ARTIFACT_HASH_TAG]) == 64
    before = _versions(ws)
    assert registry.register(params=ws.params, params_path=ws.params_path) == "2"
    assert _versions(ws) == before


@pytest.mark.parametrize(
    ("report", "body", "message"),
    [("fairness.json", {"passed": False}, "fairness failed"), ("gate.json", {"passed": False}, "gate failed")],
    ids=["fairness", "gate"],
)
def test_register_refuses_failed_checks_and_registers_nothing(
    ws: Workspace, report: str, body: dict[str, bool], message: str
) -> None:
    io.write_json(body, ws.params.paths.reports / report)
    before = _versions(ws)
    with pytest.raises(registry_client.RegistryError, match=message):
        registry.register(params=ws.params, params_path=ws.params_path)
    assert _versions(ws) == before


def test_cli_register_refuses_failed_fairness(ws: Workspace) -> None:
    io.write_json({"passed": False}, ws.params.paths.reports / "fairness.json")
    before = _versions(ws)
    result = CliRunner().invoke(app, ["register"])
    assert result.exit_code == 1
    assert "error: refusing to register: fairness failed" in result.output
    assert "Traceback" not in result.output
    assert _versions(ws) == before


def test_load_model_version_verifies_and_loads(ws: Workspace) -> None:
    loaded = artifacts.load_model_version(name=ws.params.tracking.registered_model, version="1")
    assert loaded.signature_columns == list(ws.params.data.features)
    assert loaded.run_id
    with pytest.raises(registry_client.RegistryError, match="version 99 does not exist"):
        artifacts.load_model_version(name=ws.params.tracking.registered_model, version="99")


def _artifact_file(ws: Workspace, version: str) -> Path:
    client = registry_client.client(params=ws.params)
    uri = client.get_model_version_download_uri(ws.params.tracking.registered_model, version)
    return Path(uri.removeprefix("file://")) / "model.skops"


def test_tampered_artifact_is_refused_everywhere(ws: Workspace) -> None:
    name = ws.params.tracking.registered_model
    commit_manifest(ws, "staging", "staging v1", champion=1)
    deploy.apply(params=ws.params, env="staging")
    write_manifest(ws, "staging", champion=2)
    target = _artifact_file(ws, "2")
    original = target.read_bytes()
    try:
        target.write_bytes(original[:-10] + b"0123456789")
        with pytest.raises(manifests.DeployError, match="no longer matches"):
            deploy.apply(params=ws.params, env="staging")
        with pytest.raises(registry_client.RegistryError, match="no longer matches"):
            artifacts.load_model_version(name=name, version="2")
    finally:
        target.write_bytes(original)
    assert _state(ws, "staging").champion == "1"


def test_unknown_version_is_refused_and_nothing_moves(ws: Workspace) -> None:
    commit_manifest(ws, "production", "production v1", champion=1)
    deploy.apply(params=ws.params, env="production")
    write_manifest(ws, "production", champion=1, challenger=42, strategy="canary", traffic_share=0.2)
    with pytest.raises(manifests.DeployError, match="version 42 does not exist"):
        deploy.apply(params=ws.params, env="production")
    assert _state(ws, "production") == registry_state.DeploymentState("1", None, "none", 0.0)


def test_plan_then_apply_is_idempotent(ws: Workspace) -> None:
    commit_manifest(ws, "production", "canary v2", champion=1, challenger=2, strategy="canary", traffic_share=0.2)
    _, changes = deploy.show_plan(params=ws.params, env="production")
    # Two aliases, strategy, share, manifest hash, and the seal written last.
    assert len(changes) == 6
    assert changes[-1].key == "deploy.production.seal"
    first = deploy.apply(params=ws.params, env="production")
    assert first.changes == changes
    assert first.record is not None
    assert first.record["commit"] == git(ws.root, "rev-parse", "HEAD")
    assert first.record["actor"] == "deployer@example.invalid"
    assert _state(ws, "production") == registry_state.DeploymentState("1", "2", "canary", 0.2)
    assert deploy.show_plan(params=ws.params, env="production")[1] == []
    second = deploy.apply(params=ws.params, env="production")
    assert (second.changes, second.record) == ([], None)
    tags = registry_client.client(params=ws.params).get_registered_model(ws.params.tracking.registered_model).tags
    assert len(deploy.history(tags=tags, env="production")) == 1


def test_concurrent_applies_never_leave_aliases_half_moved(ws: Workspace) -> None:
    """Two manifests that move both aliases in opposite directions, applied at the same time."""
    commit_manifest(ws, "production", "start", champion=1)
    deploy.apply(params=ws.params, env="production")
    wanted = {
        "a": {"champion": 1, "challenger": 2, "strategy": "canary", "traffic_share": 0.3},
        "b": {"champion": 2, "challenger": 1, "strategy": "shadow", "traffic_share": 0.0},
    }
    expected = {
        "a": registry_state.DeploymentState("1", "2", "canary", 0.3),
        "b": registry_state.DeploymentState("2", "1", "shadow", 0.0),
    }
    by_key = {
        key: manifests.parse_manifest(
            text=json.dumps({"model": ws.params.tracking.registered_model, **body}), source=key, params=ws.params
        )
        for key, body in wanted.items()
    }
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(key: str) -> None:
        try:
            barrier.wait()
            deploy.apply_manifest(params=ws.params, env="production", manifest=by_key[key])
        except BaseException as exc:
            errors.append(exc)

    for _ in range(3):
        threads = [threading.Thread(target=run, args=(key,)) for key in wanted]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert _state(ws, "production") in expected.values()


def test_rollback_is_a_git_revert_of_the_manifest(ws: Workspace) -> None:
    commit_manifest(ws, "production", "v1", champion=1)
    deploy.apply(params=ws.params, env="production")
    commit_manifest(ws, "production", "canary v2", champion=1, challenger=2, strategy="canary", traffic_share=0.2)
    deploy.apply(params=ws.params, env="production")
    assert _state(ws, "production").challenger == "2"
    git(ws.root, "revert", "--no-edit", "HEAD")
    result = deploy.apply(params=ws.params, env="production")
    assert result.record is not None
    assert result.record["commit"] == git(ws.root, "rev-parse", "HEAD")
    assert _state(ws, "production") == registry_state.DeploymentState("1", None, "none", 0.0)


def test_lineage_shows_commit_data_and_apply_history(ws: Workspace) -> None:
    commit_manifest(ws, "staging", "staging v2", champion=2)
    deploy.apply(params=ws.params, env="staging")
    data = lineage.collect(params=ws.params, version="2")
    text = lineage.render_markdown(data)
    tags = registry_client.client(params=ws.params).get_model_version(ws.params.tracking.registered_model, "2").tags
    assert f"`{tags['git.commit']}`" in text
    assert f"data.raw.md5: `{tags['data.raw.md5']}`" in text
    assert "| staging | champion | none |" in text
    assert data["aliases"] == ["staging-champion"]
    assert data["status"] == {"validation": "passed", "fairness": "passed", "gate": registry.NOT_RUN}


def test_cli_plan_apply_lineage_and_clear_errors(ws: Workspace) -> None:
    runner = CliRunner()
    commit_manifest(ws, "staging", "staging v1", champion=1)
    plan = runner.invoke(app, ["deploy", "plan", "--env", "staging"])
    assert plan.exit_code == 0, plan.output
    assert "staging-champion: (none) -> 1" in plan.output
    applied = runner.invoke(app, ["deploy", "apply", "--env", "staging"])
    assert applied.exit_code == 0, applied.output
    again = runner.invoke(app, ["deploy", "apply", "--env", "staging"])
    assert "in sync" in again.output
    shown = runner.invoke(app, ["lineage", "1", "--json"])
    assert json.loads(shown.output)["aliases"] == ["staging-champion"]
    write_manifest(ws, "staging", champion=1, strategy="canary")
    bad = runner.invoke(app, ["deploy", "apply", "--env", "staging"])
    assert bad.exit_code == 1
    assert "strategy canary needs a challenger" in bad.output
    assert "Traceback" not in bad.output
    unknown = runner.invoke(app, ["lineage", "77"])
    assert unknown.exit_code == 1
    assert "version 77 does not exist" in unknown.output


def test_cli_propose_edits_the_manifest(ws: Workspace) -> None:
    runner = CliRunner()
    commit_manifest(ws, "production", "v1", champion=1)
    result = runner.invoke(
        app, ["deploy", "propose", "--env", "production", "--version", "registered", "--strategy", "canary"]
    )
    assert result.exit_code == 0, result.output
    manifest = manifests.load_manifest(params=ws.params, env="production")
    assert (manifest.challenger, manifest.traffic_share) == (2, ws.params.deploy.canary_share)
    again = runner.invoke(app, ["deploy", "propose", "--env", "production", "--version", "1"])
    assert "already" in again.output


def test_cli_deploy_smoke_answers_from_the_staging_champion(ws: Workspace) -> None:
    # The whole service starts once (seconds): the command and its summary line are checked together.
    runner = CliRunner()
    undeployed = runner.invoke(app, ["deploy", "smoke", "--env", "staging"])
    assert undeployed.exit_code == 1
    assert "staging has no champion alias" in undeployed.output
    assert "Traceback" not in undeployed.output
    commit_manifest(ws, "staging", "staging v2", champion=2)
    deploy.apply(params=ws.params, env="staging")
    served = runner.invoke(app, ["deploy", "smoke", "--env", "staging"])
    assert served.exit_code == 0, served.output
    assert f"staging: {ws.params.smoke.rows} requests answered by version(s) 2" in served.output


def _with_lock_timeout(ws: Workspace, seconds: float) -> Workspace:
    deploy_section = ws.params.deploy.model_copy(update={"lock_timeout_seconds": seconds})
    return Workspace(ws.root, ws.params_path, ws.params.model_copy(update={"deploy": deploy_section}))


def _hold_lock(ws: Workspace, *, env: str, expires: float) -> str:
    name = lock.LOCK_NAME.format(name=ws.params.tracking.registered_model, env=env)
    registry_client.client(params=ws.params).create_registered_model(
        name, tags={"token": "other", "holder": "someone", "expires": str(expires)}
    )
    return name


def test_a_held_lock_makes_apply_wait_then_refuse(ws: Workspace) -> None:
    commit_manifest(ws, "staging", "staging v1", champion=1)
    lock = _hold_lock(ws, env="staging", expires=time.time() + 3600)
    try:
        with pytest.raises(manifests.DeployError, match="another apply to staging holds the lock"):
            deploy.apply(params=_with_lock_timeout(ws, 1).params, env="staging")
        assert _state(ws, "staging").champion is None
    finally:
        registry_client.client(params=ws.params).delete_registered_model(lock)


def test_a_stale_lock_left_by_a_crash_is_taken_over(ws: Workspace) -> None:
    commit_manifest(ws, "staging", "staging v1", champion=1)
    lock = _hold_lock(ws, env="staging", expires=time.time() - 1)
    deploy.apply(params=_with_lock_timeout(ws, 5).params, env="staging")
    assert _state(ws, "staging").champion == "1"
    names = [m.name for m in registry_client.client(params=ws.params).search_registered_models()]
    assert lock not in names


def test_same_dvc_lock_registers_once(ws: Workspace) -> None:
    """A workflow that reproduced the same dvc.lock on a fresh runner gets the existing version."""
    lock = ws.root / registry.DVC_LOCK
    lock.write_text("schema: '2.0'\nstages: {}\n", encoding="utf-8")
    try:
        first = register_new(ws, rows=ROWS, offset=2 * ROWS)
        assert register_new(ws, rows=ROWS, offset=3 * ROWS) == first
        assert io.read_json(ws.params.paths.reports / registry.REGISTERED_REPORT)["version"] == first
    finally:
        lock.unlink()


def test_cli_register_a_new_run(ws: Workspace) -> None:
    reports = ws.params.paths.reports
    # Other tests read the run and the last registration: leave both as they were.
    saved = {name: (reports / name).read_bytes() for name in ("run.json", registry.REGISTERED_REPORT)}
    try:
        log_model(ws, rows=ROWS, offset=5 * ROWS)
        before = _versions(ws)
        result = CliRunner().invoke(app, ["register"])
        assert result.exit_code == 0, result.output
        version = str(before + 1)
        assert f"registered {ws.params.tracking.registered_model} version {version}" in result.output
        assert _versions(ws) == before + 1
        assert io.read_json(reports / registry.REGISTERED_REPORT)["version"] == version
        tags = (
            registry_client.client(params=ws.params)
            .get_model_version(ws.params.tracking.registered_model, version)
            .tags
        )
        assert tags["status.fairness"] == "passed"
        assert len(tags[artifacts.ARTIFACT_HASH_TAG]) == 64
    finally:
        for name, body in saved.items():
            (reports / name).write_bytes(body)
