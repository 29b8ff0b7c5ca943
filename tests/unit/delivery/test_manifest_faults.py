"""Manifest faults and crash safety as pure functions: duplicate keys, non-UTF-8 files, pins to
artifact hashes, the seal that hides a part-way apply from serving, the lock's owner check and
the artifact-directory check of MLmodel paths.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core.config import Params
from pipeline.delivery import artifacts, deploy, lock, registry_client, registry_state
from pipeline.delivery import manifest as manifests

pytestmark = pytest.mark.unit

PIN_1, PIN_2 = "1" * 64, "2" * 64


def _parse(params: Params, **fields: object) -> manifests.Manifest:
    body = {"model": params.tracking.registered_model, **fields}
    return manifests.parse_manifest(text=json.dumps(body), source="deploy/test.yaml", params=params)


def _manifest_file(params: Params, tmp_path: Path, data: bytes) -> Params:
    (tmp_path / "staging.yaml").write_bytes(data)
    return params.model_copy(update={"deploy": params.deploy.model_copy(update={"manifests": tmp_path})})


# ---- reading the file -----------------------------------------------------------------------


def test_duplicate_key_is_refused_with_its_line(params: Params) -> None:
    text = f"model: {params.tracking.registered_model}\nchampion: 1\nstrategy: none\nchampion: 2\n"
    with pytest.raises(manifests.DeployError) as err:
        manifests.parse_manifest(text=text, source="deploy/staging.yaml", params=params)
    assert str(err.value) == (
        "deploy/staging.yaml: line 4: duplicate key 'champion' (first at line 2); a key may appear once"
    )


def test_duplicate_key_inside_guardrails_is_refused(params: Params) -> None:
    text = (
        f"model: {params.tracking.registered_model}\nchampion: 1\nguardrails:\n  min_requests: 10\n  min_requests: 20\n"
    )
    with pytest.raises(manifests.DeployError, match="line 5: duplicate key 'min_requests'"):
        manifests.parse_manifest(text=text, source="m.yaml", params=params)


def test_non_utf8_manifest_is_refused_with_its_line(params: Params, tmp_path: Path) -> None:
    data = f"model: {params.tracking.registered_model}\nchampion: 1\n# caf\xe9\n".encode("latin-1")
    with pytest.raises(manifests.DeployError) as err:
        manifests.load_manifest(params=_manifest_file(params, tmp_path, data), env="staging")
    assert str(err.value) == (
        f"{tmp_path / 'staging.yaml'}: line 3: not UTF-8 text (byte 0xe9); save the manifest as UTF-8"
    )


def test_yaml_syntax_error_is_one_line_with_line_and_column(params: Params) -> None:
    with pytest.raises(manifests.DeployError) as err:
        manifests.parse_manifest(text="model: x\nchampion: [1\n", source="m.yaml", params=params)
    message = str(err.value)
    assert message.startswith("m.yaml: line ")
    assert ", column " in message
    assert "\n" not in message


# ---- pins -----------------------------------------------------------------------------------


def test_manifest_without_pins_loads_and_keeps_its_hash(params: Params) -> None:
    """Manifests written before pins existed: pins are optional, and the manifest hash apply tags
    the registry with is unchanged, so an upgrade alone changes no deploy tag but the seal.
    """
    manifest = _parse(params, champion=1, challenger=2, strategy="canary", traffic_share=0.2)
    assert manifest.pins() == {}
    before_pins = {
        "model": params.tracking.registered_model,
        "champion": 1,
        "challenger": 2,
        "strategy": "canary",
        "traffic_share": 0.2,
        "guardrails": manifest.guardrails.model_dump(mode="json"),
    }
    expected = hashlib.sha256(json.dumps(before_pins, sort_keys=True).encode()).hexdigest()[:16]
    assert manifests.manifest_sha256(manifest) == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"champion": 1, "champion_sha256": "abc"}, "champion_sha256: String should match pattern"),
        ({"champion": 1, "challenger_sha256": PIN_2}, "challenger_sha256 needs a challenger version"),
    ],
    ids=["not-a-sha256", "pin-without-version"],
)
def test_bad_pin_is_refused_with_the_field(params: Params, fields: dict[str, object], message: str) -> None:
    with pytest.raises(manifests.DeployError, match=r"deploy/test\.yaml") as err:
        _parse(params, **fields)
    assert message in str(err.value)


def test_edits_carry_pins_with_their_versions(params: Params) -> None:
    base = _parse(params, champion=1, champion_sha256=PIN_1)
    canary = manifests.propose(manifest=base, version=2, strategy="canary", share=0.2, sha256=PIN_2)
    assert canary.pins() == {1: PIN_1, 2: PIN_2}
    promoted = manifests.promote(manifest=canary)
    assert (promoted.champion, promoted.champion_sha256, promoted.challenger_sha256) == (2, PIN_2, None)
    assert manifests.rollback(manifest=canary) == base
    rendered = manifests.render_manifest(manifest=canary, env="staging")
    assert f"champion_sha256: '{PIN_1}'" in rendered
    assert manifests.parse_manifest(text=rendered, source="x", params=params) == canary
    assert "champion_sha256:" not in manifests.render_manifest(manifest=_parse(params, champion=1), env="staging")


# ---- the seal -------------------------------------------------------------------------------


def _desired(params: Params, **fields: object) -> deploy.Desired:
    return deploy.desired_state(manifest=_parse(params, **fields), env="staging")


def _apply_in_memory(
    desired: deploy.Desired, aliases: dict[str, str], tags: dict[str, str]
) -> list[tuple[dict[str, str], dict[str, str]]]:
    """Every intermediate (aliases, tags) an apply passes through, in the order `deploy._write` writes."""
    changes = deploy.plan(desired=desired, aliases=aliases, tags=tags)
    *moves, seal = changes
    aliases, tags = dict(aliases), dict(tags)
    states = [(dict(aliases), dict(tags))]
    tags[registry_state.seal_tag("staging")] = f"{registry_state.SEAL_PENDING}token"
    states.append((dict(aliases), dict(tags)))
    for change in [*moves, seal]:
        target = aliases if change.kind == "alias" else tags
        if change.new is None:
            target.pop(change.key, None)
        else:
            target[change.key] = change.new
        states.append((dict(aliases), dict(tags)))
    return states


@pytest.mark.parametrize(
    ("start", "target"),
    [
        ({"champion": 1}, {"champion": 1, "challenger": 2, "strategy": "canary", "traffic_share": 0.3}),
        ({"champion": 1, "challenger": 2, "strategy": "canary", "traffic_share": 0.3}, {"champion": 2}),
        (
            {"champion": 1, "challenger": 2, "strategy": "canary", "traffic_share": 0.3},
            {"champion": 2, "challenger": 1, "strategy": "canary", "traffic_share": 0.3},
        ),
        ({"champion": 2, "champion_sha256": PIN_2}, {"champion": 1, "champion_sha256": PIN_1}),
    ],
    ids=["add-canary", "promote", "swap-roles", "pinned-rollback"],
)
def test_serving_sees_only_the_old_or_the_new_state_at_every_step_of_an_apply(
    params: Params, start: dict[str, object], target: dict[str, object]
) -> None:
    """A kill may stop an apply after any write: every prefix is either the old state or refused
    as "in change" (before the seal, a canary half-set could send a challenger all the traffic).
    """
    old, new = _desired(params, **start), _desired(params, **target)
    aliases, tags = _apply_in_memory(old, {}, {})[-1]
    before = registry_state.state_from(aliases=aliases, tags=tags, env="staging")
    states = _apply_in_memory(new, aliases, tags)
    after = registry_state.state_from(aliases=states[-1][0], tags=states[-1][1], env="staging")
    assert after != before
    for step, (aliases, tags) in enumerate(states[1:-1], start=1):
        with pytest.raises(registry_state.StateInChange, match="the staging deployment is being changed"):
            registry_state.state_from(aliases=aliases, tags=tags, env="staging")
        assert deploy.plan(desired=new, aliases=aliases, tags=tags), f"step {step}: the next apply must act"
    assert deploy.plan(desired=new, aliases=states[-1][0], tags=states[-1][1]) == []


def test_a_registry_applied_before_seals_is_served_and_sealed_by_the_next_apply(params: Params) -> None:
    aliases = {"staging-champion": "1"}
    tags = {"deploy.staging.strategy": "none", "deploy.staging.traffic_share": "0.0"}
    assert registry_state.state_from(aliases=aliases, tags=tags, env="staging").champion == "1"
    changes = deploy.plan(desired=_desired(params, champion=1), aliases=aliases, tags=tags)
    assert [c.key for c in changes] == ["deploy.staging.manifest_sha256", "deploy.staging.seal"]


def test_pins_reach_serving_through_the_deploy_tags(params: Params) -> None:
    desired = _desired(params, champion=1, champion_sha256=PIN_1, challenger=2, strategy="shadow")
    aliases, tags = _apply_in_memory(desired, {}, {})[-1]
    assert tags["deploy.staging.champion_sha256"] == PIN_1
    assert registry_state.deployed_pins(aliases=aliases, tags=tags, env="staging") == {"1": PIN_1}


# ---- the lock's owner -----------------------------------------------------------------------


def _owner(**changes: str) -> dict[str, str]:
    return {**lock.owner_tags(holder="someone", ttl=3600), **changes}


def test_a_lock_whose_process_is_gone_is_abandoned() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert lock.owner_gone(_owner(pid=str(child.pid)))


def test_a_lock_whose_process_exited_unreaped_is_abandoned() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # Until its parent reaps it the pid still exists, as a zombie.
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        assert lock.owner_gone(_owner(pid=str(child.pid)))
    finally:
        child.wait()


def test_a_live_owner_or_one_on_another_machine_is_not_abandoned() -> None:
    assert not lock.owner_gone(_owner())
    parent = os.getppid()
    assert not lock.owner_gone(_owner(pid=str(parent), pid_start=lock.process_start(parent)))
    assert not lock.owner_gone(_owner(pid="999999999", machine="another-boot/pid:[1]"))
    assert not lock.owner_gone(_owner(pid="999999999", machine=""))


def test_a_reused_pid_is_not_the_owner() -> None:
    parent = os.getppid()
    assert lock.process_start(parent) not in {"", "1"}
    assert lock.owner_gone(_owner(pid=str(parent), pid_start="1"))


# ---- store checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("sqlite:///mlflow.db", Path("mlflow.db")),
        ("sqlite:////srv/mlflow/mlflow.db", Path("/srv/mlflow/mlflow.db")),
        ("sqlite+pysqlite:///a%20b.db?timeout=5", Path("a b.db")),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("http://user:pw@mlflow:5000", None),
    ],
)
def test_sqlite_path_of_a_store_uri(uri: str, path: Path | None) -> None:
    from pipeline.core.tracking import sqlite_path

    assert sqlite_path(uri=uri) == path


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), (b"", "is an empty file"), (b"x" * 200, "is not a readable sqlite database")],
    ids=["missing", "empty", "corrupt"],
)
def test_unusable_sqlite_store_is_refused_before_mlflow_opens_it(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "mlflow.db"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(registry_client.RegistryUnavailable, match=message):
        registry_client.check_store(uri=f"sqlite:///{path}")
    assert path.exists() == (content is not None)


# ---- MLmodel paths --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["../../model.skops", "/etc/passwd", "sub/../../model.skops", "link/model.skops"],
    ids=["parent", "absolute", "climbs-back-out", "symlink-out"],
)
def test_model_paths_leaving_the_artifact_are_refused(tmp_path: Path, value: str) -> None:
    root = tmp_path / "a" / "b" / "artifact"
    (root / "sub").mkdir(parents=True)
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(registry_client.RegistryError, match="leaves the verified artifact directory"):
        artifacts._inside(root=root, name="m", version="1", flavors={"sklearn": {"pickled_model": value}})


def test_model_paths_inside_the_artifact_pass(tmp_path: Path) -> None:
    flavors = {
        "sklearn": {"pickled_model": "model.skops", "serialization_format": "skops"},
        "python_function": {"model_path": "model.skops", "data": "sub/model.skops", "code": None},
    }
    artifacts._inside(root=tmp_path, name="m", version="1", flavors=flavors)
