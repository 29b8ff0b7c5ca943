"""Deploy and registry faults against the embedded sqlite registry: applies killed at random
registry writes, a substituted artifact behind a rewritten tag, an MLmodel pointing outside its
artifact, an unknown version proposed, and a store that is missing, locked, corrupt or
unreachable, each through the CLI.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core.config import Params
from pipeline.delivery import artifacts, deploy, lock, registry_client, registry_state, serve
from pipeline.delivery import manifest as manifests
from tests.deploy_support import (
    REPO_ROOT,
    Workspace,
    commit_manifest,
    reset_deployments,
    two_versions,
    write_manifest,
)

pytestmark = pytest.mark.e2e

ROWS = 300
ENV = "staging"
KILLS = 20
SEED = 20_240_611


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    with two_versions(tmp_path_factory.mktemp("deploy-faults"), rows=ROWS) as ws:
        yield ws


@pytest.fixture
def ws(workspace: Workspace) -> Iterator[Workspace]:
    reset_deployments(workspace)
    yield workspace
    # A CLI call against another store leaves MLflow pointed at it; the next test needs this one.
    registry_client.client(params=workspace.params)


def _name(ws: Workspace) -> str:
    return ws.params.tracking.registered_model


def _client(ws: Workspace) -> Any:
    return registry_client.client(params=ws.params)


def _state(ws: Workspace) -> registry_state.DeploymentState:
    return registry_state.deployment_state(name=_name(ws), env=ENV)


def _lock_held(ws: Workspace) -> bool:
    lock_name = lock.LOCK_NAME.format(name=_name(ws), env=ENV)
    return lock_name in {m.name for m in _client(ws).search_registered_models()}


def _artifact_dir(ws: Workspace, version: str) -> Path:
    uri = _client(ws).get_model_version_download_uri(_name(ws), version)
    return Path(uri.removeprefix("file://"))


def _tag(ws: Workspace, version: str) -> str:
    return str(_client(ws).get_model_version(_name(ws), version).tags[artifacts.ARTIFACT_HASH_TAG])


def _patient_params(ws: Workspace) -> Params:
    """A long lock TTL and a short wait: a lock a killed apply left behind, unless recognised as
    abandoned at once, fails the next apply instead of being waited out.
    """
    section = ws.params.deploy.model_copy(update={"lock_ttl_seconds": 3600, "lock_timeout_seconds": 1})
    return ws.params.model_copy(update={"deploy": section})


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert "Traceback" not in output, output
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    return lines[0]


# ---- 1. killed applies ----------------------------------------------------------------------


def _targets(ws: Workspace) -> list[dict[str, object]]:
    pin1, pin2 = _tag(ws, "1"), _tag(ws, "2")
    return [
        {"champion": 1, "champion_sha256": pin1},
        {
            "champion": 1,
            "champion_sha256": pin1,
            "challenger": 2,
            "challenger_sha256": pin2,
            "strategy": "canary",
            "traffic_share": 0.3,
        },
        {"champion": 2, "champion_sha256": pin2},
        # A manifest written before pins existed.
        {"champion": 2, "challenger": 1, "strategy": "shadow"},
    ]


def _kill_params_file(ws: Workspace, params: Params) -> Path:
    raw = yaml.safe_load(ws.params_path.read_text(encoding="utf-8"))
    raw["deploy"]["lock_ttl_seconds"] = params.deploy.lock_ttl_seconds
    raw["deploy"]["lock_timeout_seconds"] = params.deploy.lock_timeout_seconds
    path = ws.root / "params-kill.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def test_killed_applies_leave_no_half_moved_state_and_the_next_apply_converges(ws: Workspace) -> None:
    """SIGKILL and SIGTERM at a random registry write of 20 applies: serving never sees a mix of
    the old and the new state, SIGTERM releases the lock, and one apply afterwards converges
    without waiting for the lock's TTL.
    """
    rng = random.Random(SEED)
    params = _patient_params(ws)
    params_file = _kill_params_file(ws, params)
    targets = _targets(ws)
    current = targets[0]
    write_manifest(ws, ENV, **current)
    deploy.apply(params=params, env=ENV)
    driver = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.apply_killer"],
        cwd=ws.root,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert driver.stdin is not None
    assert driver.stdout is not None
    try:
        for kill in range(KILLS):
            target = rng.choice([t for t in targets if t is not current])
            write_manifest(ws, ENV, **target)
            desired = deploy.desired_state(manifest=manifests.load_manifest(params=params, env=ENV), env=ENV)
            before = _state(ws)
            aliases, tags = deploy._current(_client(ws), name=_name(ws))
            # lock, unseal, the moves and the seal (the plan), the history record, release
            writes = len(deploy.plan(desired=desired, aliases=aliases, tags=tags)) + 4
            sig = "SIGKILL" if kill % 2 == 0 else "SIGTERM"
            at, when = rng.randint(1, writes), rng.choice(["before", "after"])
            where = f"kill {kill}: {sig} {when} write {at} of {writes}, to {target}"
            driver.stdin.write(f"{at} {sig} {when} {ENV} {params_file}\n")
            driver.stdin.flush()
            code = int(driver.stdout.readline())
            assert code == (-9 if sig == "SIGKILL" else 143), where
            try:
                seen: registry_state.DeploymentState | None = _state(ws)
            except registry_state.StateInChange:
                seen = None  # serving keeps what it has until the next apply seals
            after = registry_state.state_from(
                aliases=desired.aliases(),
                tags={k: v for k, v in desired.tags().items() if v is not None},
                env=ENV,
            )
            assert seen in (before, after, None), where
            if sig == "SIGTERM":
                assert not _lock_held(ws), where
            deploy.apply(params=params, env=ENV)
            assert _state(ws) == after, where
            assert deploy.show_plan(params=params, env=ENV)[1] == [], where
            assert not _lock_held(ws), where
            current = target
    finally:
        driver.stdin.close()
        driver.wait()
        driver.stdout.close()
    log = (ws.root / "apply_killer.log").read_text(encoding="utf-8")
    assert "Traceback" not in log
    assert f"error: apply to {ENV} stopped by SIGTERM; the lock was released" in log


def test_the_service_keeps_the_last_sealed_state_while_an_apply_is_part_way(ws: Workspace) -> None:
    """What a killed apply leaves (unsealed, champion alias already moved) never routes traffic:
    a running service keeps its sealed state, one starting meanwhile waits; the next apply seals.
    """
    name = _name(ws)
    commit_manifest(ws, ENV, "staging v1", champion=1)
    deploy.apply(params=ws.params, env=ENV)
    source = serve.RegistrySource(params=ws.params, env=ENV)
    sealed = source.current_state()
    assert sealed == serve.ServingState(champion="1")
    _client(ws).set_registered_model_tag(name, registry_state.seal_tag(ENV), f"{registry_state.SEAL_PENDING}killed")
    _client(ws).set_registered_model_alias(name, registry_state.alias(env=ENV, role="champion"), "2")
    assert source.current_state() == sealed
    with pytest.raises(registry_state.StateInChange, match=f"run `pipeline deploy apply --env {ENV}`"):
        serve.RegistrySource(params=ws.params, env=ENV).current_state()
    changes = deploy.show_plan(params=ws.params, env=ENV)[1]
    assert [c.key for c in changes] == [registry_state.alias(env=ENV, role="champion"), registry_state.seal_tag(ENV)]
    deploy.apply(params=ws.params, env=ENV)
    assert source.current_state() == sealed
    commit_manifest(ws, ENV, "staging v2", champion=2)
    deploy.apply(params=ws.params, env=ENV)
    assert source.current_state() == serve.ServingState(champion="2")


def test_an_apply_killed_on_another_machine_is_named_and_unlock_clears_it(ws: Workspace) -> None:
    commit_manifest(ws, ENV, "staging v1", champion=1)
    tags = {"token": "gone", **lock.owner_tags(holder="runner@ci", ttl=3600), "machine": "other-boot/pid:[1]"}
    _client(ws).create_registered_model(lock.LOCK_NAME.format(name=_name(ws), env=ENV), tags=tags)
    with pytest.raises(manifests.DeployError) as err:
        deploy.apply(params=_patient_params(ws), env=ENV)
    assert f"held by runner@ci on {tags['host']} (pid {os.getpid()})" in str(err.value)
    assert f"`pipeline deploy unlock --env {ENV}`" in str(err.value)
    result = CliRunner().invoke(app, ["deploy", "unlock", "--env", ENV])
    assert result.exit_code == 0, result.output
    assert f"{ENV}: removed the deploy lock held by runner@ci" in result.output
    deploy.apply(params=_patient_params(ws), env=ENV)
    assert _state(ws).champion == "1"


# ---- 2. integrity anchored in git -----------------------------------------------------------


def test_propose_pins_the_verified_artifact_hash(ws: Workspace) -> None:
    commit_manifest(ws, ENV, "staging v1, written before pins", champion=1)
    result = CliRunner().invoke(app, ["deploy", "propose", "--env", ENV, "--version", "2", "--strategy", "canary"])
    assert result.exit_code == 0, result.output
    manifest = manifests.load_manifest(params=ws.params, env=ENV)
    assert manifest.pins() == {1: _tag(ws, "1"), 2: _tag(ws, "2")}
    deploy.apply(params=ws.params, env=ENV)
    state, pins = registry_state.read_deployment(name=_name(ws), env=ENV)
    assert state == registry_state.DeploymentState("1", "2", "canary", ws.params.deploy.canary_share)
    assert pins == {"1": _tag(ws, "1"), "2": _tag(ws, "2")}


def test_a_rewritten_tag_no_longer_swaps_a_substituted_model_in(ws: Workspace) -> None:
    """Someone with registry write access replaces version 2's model by another and rewrites its
    artifact.sha256 tag to match: the registry alone is fooled, the pin in git is not.
    """
    name = _name(ws)
    commit_manifest(ws, ENV, "staging v1", champion=1)
    proposed = CliRunner().invoke(app, ["deploy", "propose", "--env", ENV, "--version", "2", "--strategy", "canary"])
    assert proposed.exit_code == 0, proposed.output
    deploy.apply(params=ws.params, env=ENV)
    model_file = _artifact_dir(ws, "2") / "model.skops"
    original, tag = model_file.read_bytes(), _tag(ws, "2")
    try:
        model_file.write_bytes((_artifact_dir(ws, "1") / "model.skops").read_bytes())
        forged = artifacts.tree_sha256(_artifact_dir(ws, "2"))
        _client(ws).set_model_version_tag(name, "2", artifacts.ARTIFACT_HASH_TAG, forged)
        assert artifacts.verify_version(name=name, version="2") == forged
        with pytest.raises(manifests.DeployError, match="the deploy manifest in git pins"):
            deploy.apply(params=ws.params, env=ENV)
        source = serve.RegistrySource(params=ws.params, env=ENV)
        assert source.current_state().challenger == "2"
        with pytest.raises(registry_client.RegistryError, match=f"pins {tag}; the registry copy was replaced"):
            source.load("2")
    finally:
        model_file.write_bytes(original)
        _client(ws).set_model_version_tag(name, "2", artifacts.ARTIFACT_HASH_TAG, tag)


@pytest.mark.parametrize("style", ["absolute", "relative"])
def test_an_mlmodel_pointing_outside_its_artifact_is_refused(ws: Workspace, style: str) -> None:
    """A crafted MLmodel whose sklearn model path leaves the artifact: the hash covers the
    artifact only, so the file it names (here version 1's model) is unverified.
    """
    name = _name(ws)
    mlmodel = _artifact_dir(ws, "2") / "MLmodel"
    outside = _artifact_dir(ws, "1") / "model.skops"
    value = str(outside) if style == "absolute" else "../" * 40 + str(outside).lstrip("/")
    original, tag = mlmodel.read_text(encoding="utf-8"), _tag(ws, "2")
    meta = yaml.safe_load(original)
    meta["flavors"]["sklearn"]["pickled_model"] = value
    try:
        mlmodel.write_text(yaml.safe_dump(meta), encoding="utf-8")
        _client(ws).set_model_version_tag(
            name, "2", artifacts.ARTIFACT_HASH_TAG, artifacts.tree_sha256(_artifact_dir(ws, "2"))
        )
        with pytest.raises(registry_client.RegistryError, match="leaves the verified artifact directory"):
            artifacts.load_model_version(name=name, version="2")
    finally:
        mlmodel.write_text(original, encoding="utf-8")
        _client(ws).set_model_version_tag(name, "2", artifacts.ARTIFACT_HASH_TAG, tag)


# ---- 4. manifests ---------------------------------------------------------------------------


def test_propose_refuses_a_version_the_registry_does_not_have(ws: Workspace) -> None:
    path = write_manifest(ws, ENV, champion=1)
    before = path.read_bytes()
    result = CliRunner().invoke(app, ["deploy", "propose", "--env", ENV, "--version", "42", "--strategy", "canary"])
    assert result.exit_code == 1
    line = _one_error_line(result.output)
    assert f"refusing to propose version 42 for {ENV}: model {_name(ws)} version 42 does not exist" in line
    assert path.read_bytes() == before


def test_cli_refuses_a_duplicate_key_in_the_manifest(ws: Workspace) -> None:
    path = write_manifest(ws, ENV, champion=1)
    path.write_text(f"model: {_name(ws)}\nchampion: 1\nchampion: 2\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["deploy", "apply", "--env", ENV])
    assert result.exit_code == 1
    assert "line 3: duplicate key 'champion' (first at line 2)" in _one_error_line(result.output)
    assert _state(ws).champion is None


# ---- 3. store faults ------------------------------------------------------------------------

COMMANDS = {
    "apply": ["deploy", "apply", "--env", ENV],
    "plan": ["deploy", "plan", "--env", ENV],
    "propose": ["deploy", "propose", "--env", ENV, "--version", "1"],
    "register": ["register"],
    "lineage": ["lineage", "1"],
}


@pytest.mark.parametrize("command", list(COMMANDS), ids=list(COMMANDS))
def test_missing_store_is_one_line_and_never_created(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    write_manifest(ws, ENV, champion=1)
    missing = tmp_path / "nowhere" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{missing}")
    result = CliRunner().invoke(app, COMMANDS[command])
    assert result.exit_code == 2, result.output
    assert f"the registry store sqlite:///{missing} does not exist" in _one_error_line(result.output)
    assert not missing.exists()


def test_corrupt_store_is_one_line(ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_manifest(ws, ENV, champion=1)
    corrupt = tmp_path / "mlflow.db"
    corrupt.write_bytes(b"not a database, " * 64)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{corrupt}")
    result = CliRunner().invoke(app, ["deploy", "apply", "--env", ENV])
    assert result.exit_code == 2, result.output
    line = _one_error_line(result.output)
    assert f"the registry store sqlite:///{corrupt} is not a readable sqlite database" in line
    assert corrupt.read_bytes() == b"not a database, " * 64


HOLD = (
    "import sqlite3, sys\n"
    "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
    "conn.execute('BEGIN ' + sys.argv[2])\n"
    "print('held', flush=True)\n"
    "sys.stdin.read()\n"
)


@pytest.mark.parametrize(
    ("mode", "command"), [("EXCLUSIVE", "plan"), ("IMMEDIATE", "apply")], ids=["readers-blocked", "writers-blocked"]
)
def test_locked_store_is_one_line(ws: Workspace, mode: str, command: str) -> None:
    """Another process holds a write transaction: EXCLUSIVE blocks even the store check's read,
    IMMEDIATE lets apply read and verify but not take its lock.
    """
    commit_manifest(ws, ENV, "staging v1", champion=1)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(ws.root / "mlflow.db"), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    try:
        result = CliRunner().invoke(app, COMMANDS[command])
    finally:
        holder.communicate("")
    assert result.exit_code == 2, result.output
    assert f"the registry store sqlite:///{ws.root / 'mlflow.db'} is locked by another process" in _one_error_line(
        result.output
    )
    assert _state(ws).champion is None
    assert not _lock_held(ws)


def test_unreachable_server_is_one_line_without_credentials(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    write_manifest(ws, ENV, champion=1)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The credentials move into MLflow's basic-auth variables; monkeypatch puts those back too.
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://deployer:s3cret@127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    result = CliRunner().invoke(app, ["deploy", "apply", "--env", ENV])
    assert result.exit_code == 2, result.output
    line = _one_error_line(result.output)
    assert f"cannot reach the registry at http://***@127.0.0.1:{port} (connection refused)" in line
    assert "s3cret" not in result.output
