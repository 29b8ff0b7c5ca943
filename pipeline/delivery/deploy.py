"""GitOps deployment: deploy/<env>.yaml is the desired state, the registry is made to match it.

`plan` compares a manifest with the registry's aliases and deploy tags (pure); `apply` verifies
every named version, takes the environment's lock, moves aliases and tags, records who applied
which commit, and reads the result back. Rollback is `git revert` of the manifest + apply.
The manifest itself (model, file, edits) lives in `manifest`.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from pipeline.core.config import Params
from pipeline.delivery import artifacts, registry, registry_client
from pipeline.delivery.manifest import (
    DeployError,
    GuardrailOverrides,
    Manifest,
    guardrails,
    load_manifest,
    manifest_path,
    manifest_sha256,
    parse_manifest,
    promote,
    propose,
    render_manifest,
    rollback,
    write_manifest,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "HISTORY_PREFIX",
    "LOCK_NAME",
    "MANIFEST_TAG",
    "REGISTERED",
    "ApplyResult",
    "Change",
    "Desired",
    "apply",
    "apply_manifest",
    "desired_state",
    "format_changes",
    "history",
    "plan",
    "propose_version",
    "registry_lock",
    "show_plan",
]
# Re-exported for callers that reach them as deploy.<name>; they live in manifest since the split.
__all__ += [
    "DeployError",
    "GuardrailOverrides",
    "Manifest",
    "guardrails",
    "load_manifest",
    "manifest_path",
    "manifest_sha256",
    "parse_manifest",
    "promote",
    "propose",
    "render_manifest",
    "rollback",
    "write_manifest",
]

logger = logging.getLogger(__name__)

MANIFEST_TAG = "deploy.{env}.manifest_sha256"
HISTORY_PREFIX = "deploy.{env}.history."
LOCK_NAME = "{name}.deploy-lock.{env}"
REGISTERED = "registered"


@dataclass(frozen=True)
class Desired:
    """What the registry must hold for one environment."""

    env: str
    name: str
    champion: str
    challenger: str | None
    strategy: str
    traffic_share: str
    manifest_sha256: str


@dataclass(frozen=True)
class Change:
    kind: Literal["alias", "tag"]
    key: str
    old: str | None
    new: str | None

    def describe(self) -> str:
        what = "alias" if self.kind == "alias" else "tag  "
        return f"{what} {self.key}: {self.old or '(none)'} -> {self.new or '(removed)'}"


# ---- plan (pure) ----------------------------------------------------------------------------


def desired_state(*, manifest: Manifest, env: str) -> Desired:
    return Desired(
        env=env,
        name=manifest.model,
        champion=str(manifest.champion),
        challenger=None if manifest.challenger is None else str(manifest.challenger),
        strategy=manifest.strategy,
        traffic_share=repr(float(manifest.traffic_share)),
        manifest_sha256=manifest_sha256(manifest),
    )


def plan(*, desired: Desired, aliases: dict[str, str], tags: dict[str, str]) -> list[Change]:
    """The changes that make the registry's aliases and tags equal the desired state, in a safe
    order: when the challenger goes away its routing stops first; when one arrives, the alias
    exists before any traffic is routed to it.
    """
    env = desired.env
    alias_changes = []
    for role, want in (("champion", desired.champion), ("challenger", desired.challenger)):
        key = registry.alias(env=env, role=role)
        have = aliases.get(key)
        if have != want:
            alias_changes.append(Change("alias", key, have, want))
    tag_changes = []
    for key, want in (
        (registry.strategy_tag(env), desired.strategy),
        (registry.share_tag(env), desired.traffic_share),
        (MANIFEST_TAG.format(env=env), desired.manifest_sha256),
    ):
        if tags.get(key) != want:
            tag_changes.append(Change("tag", key, tags.get(key), want))
    if desired.challenger is None:
        return tag_changes + alias_changes
    return alias_changes + tag_changes


def history(*, tags: dict[str, str], env: str) -> list[dict[str, Any]]:
    """Apply records of one environment, oldest first."""
    prefix = HISTORY_PREFIX.format(env=env)
    entries = []
    for key in sorted(k for k in tags if k.startswith(prefix)):
        try:
            entries.append(json.loads(tags[key]))
        except json.JSONDecodeError:
            logger.warning("ignoring unreadable deploy history tag %s", key)
    return entries


# ---- registry edges -------------------------------------------------------------------------


def _current(mlflow_client: MlflowClient, *, name: str) -> tuple[dict[str, str], dict[str, str]]:
    try:
        model = mlflow_client.get_registered_model(name)
    except Exception as exc:
        if registry_client._not_found(exc):
            raise DeployError(f"registered model {name} does not exist; run `pipeline register` first") from exc
        raise DeployError(f"registry request for {name} failed: {exc}") from exc
    aliases = {k: str(v) for k, v in (model.aliases or {}).items()}
    return aliases, dict(model.tags or {})


def _verify_versions(mlflow_client: MlflowClient, *, desired: Desired) -> None:
    for version in (desired.champion, desired.challenger):
        if version is not None:
            try:
                artifacts.verify_version(name=desired.name, version=version, mlflow_client=mlflow_client)
            except registry_client.RegistryError as exc:
                raise DeployError(f"refusing to apply {desired.env}: {exc}") from exc


@contextmanager
def registry_lock(mlflow_client: MlflowClient, *, name: str, env: str, timeout: float, ttl: float) -> Iterator[str]:
    """Mutual exclusion for one environment's apply, held in the registry itself.

    Why a registered model as the lock: creating one is an atomic insert on the name's primary
    key in every store (sqlite, PostgreSQL behind `mlflow server`), so it is a true
    compare-and-set reachable through the plain MLflow API. Tag-based locks are not (two writers
    can both read back their own tag), and a file lock would protect the embedded sqlite store
    only. A lock older than `ttl` is taken to be left by a crashed apply and removed; the
    post-apply read-back in `apply` catches the rare case where that recovery races.
    """
    lock_name = LOCK_NAME.format(name=name, env=env)
    token = uuid.uuid4().hex
    deadline = time.monotonic() + timeout
    while True:
        try:
            mlflow_client.create_registered_model(
                lock_name,
                tags={"token": token, "holder": registry.actor(), "expires": str(time.time() + ttl)},
                description=f"Held while `pipeline deploy apply --env {env}` changes {name}; removed afterwards.",
            )
            break
        except Exception as exc:
            if registry_client._error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                raise DeployError(f"cannot take the deploy lock {lock_name}: {exc}") from exc
        _remove_if_stale(mlflow_client, lock_name=lock_name)
        if time.monotonic() > deadline:
            raise DeployError(
                f"another apply to {env} holds the lock {lock_name} (waited {timeout:.0f} s); "
                "retry when it has finished"
            )
        time.sleep(random.uniform(0.05, 0.3))  # jitter: waiters do not retry in lockstep
    try:
        yield token
    finally:
        try:
            held = mlflow_client.get_registered_model(lock_name).tags.get("token")
            if held == token:
                mlflow_client.delete_registered_model(lock_name)
        except Exception:  # the lock is already gone (taken over as stale): nothing to release
            logger.warning("deploy lock %s was no longer ours at release", lock_name)


def _remove_if_stale(mlflow_client: MlflowClient, *, lock_name: str) -> None:
    try:
        tags = mlflow_client.get_registered_model(lock_name).tags
        expires = float(tags.get("expires", "inf"))
    except Exception:  # released between our attempt and this read
        return
    if expires < time.time():
        logger.warning("removing stale deploy lock %s held by %s", lock_name, tags.get("holder"))
        try:
            mlflow_client.delete_registered_model(lock_name)
        except Exception:  # another waiter removed it first
            return


@dataclass(frozen=True)
class ApplyResult:
    env: str
    changes: list[Change]
    record: dict[str, Any] | None


def apply(*, params: Params, env: str, mlflow_client: MlflowClient | None = None) -> ApplyResult:
    """Make the registry match deploy/<env>.yaml. Idempotent: a second run changes nothing.

    Nothing moves unless the manifest is valid and every version it names exists with an intact
    artifact. Each apply that changes something is recorded as a registry tag.
    """
    return apply_manifest(
        params=params, env=env, manifest=load_manifest(params=params, env=env), mlflow_client=mlflow_client
    )


def apply_manifest(
    *, params: Params, env: str, manifest: Manifest, mlflow_client: MlflowClient | None = None
) -> ApplyResult:
    """`apply` for an already validated manifest."""
    from pipeline.core.tracking import git_commit

    desired = desired_state(manifest=manifest, env=env)
    mlflow_client = mlflow_client or registry_client.client(params=params)
    _current(mlflow_client, name=desired.name)
    # Hash checks download the artifacts: done before taking the lock to keep it short.
    _verify_versions(mlflow_client, desired=desired)
    with registry_lock(
        mlflow_client,
        name=desired.name,
        env=env,
        timeout=params.deploy.lock_timeout_seconds,
        ttl=params.deploy.lock_ttl_seconds,
    ):
        aliases, tags = _current(mlflow_client, name=desired.name)
        changes = plan(desired=desired, aliases=aliases, tags=tags)
        if not changes:
            return ApplyResult(env=env, changes=[], record=None)
        for change in changes:
            _execute(mlflow_client, name=desired.name, change=change)
        commit, dirty = git_commit()
        record = {
            "env": env,
            "champion": desired.champion,
            "challenger": desired.challenger,
            "strategy": desired.strategy,
            "traffic_share": float(desired.traffic_share),
            "manifest_sha256": desired.manifest_sha256,
            "previous_champion": aliases.get(registry.alias(env=env, role="champion")),
            "previous_challenger": aliases.get(registry.alias(env=env, role="challenger")),
            "commit": commit,
            "dirty": dirty,
            "actor": registry.actor(),
            "time": registry.utc_now(),
            # In a workflow, the run whose Environment approval let this apply through.
            "run_url": _workflow_run_url(),
        }
        seq = len(history(tags=tags, env=env)) + 1
        key = f"{HISTORY_PREFIX.format(env=env)}{seq:06d}"
        mlflow_client.set_registered_model_tag(desired.name, key, json.dumps(record, sort_keys=True))
        after_aliases, after_tags = _current(mlflow_client, name=desired.name)
        left = plan(desired=desired, aliases=after_aliases, tags=after_tags)
        if left:
            raise DeployError(
                f"after applying {env} the registry still differs from the manifest "
                f"({'; '.join(c.describe() for c in left)}): something changed it outside the lock; apply again"
            )
    logger.info("applied %s: %d change(s), recorded as %s", env, len(changes), key)
    return ApplyResult(env=env, changes=changes, record=record)


def _workflow_run_url() -> str | None:
    import os

    keys = ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    if not all(os.environ.get(k) for k in keys):
        return None
    server, repo, run_id = (os.environ[k] for k in keys)
    return f"{server}/{repo}/actions/runs/{run_id}"


def _execute(mlflow_client: MlflowClient, *, name: str, change: Change) -> None:
    if change.kind == "alias":
        if change.new is None:
            mlflow_client.delete_registered_model_alias(name, change.key)
        else:
            mlflow_client.set_registered_model_alias(name, change.key, change.new)
    elif change.new is None:
        mlflow_client.delete_registered_model_tag(name, change.key)
    else:
        mlflow_client.set_registered_model_tag(name, change.key, change.new)


def show_plan(*, params: Params, env: str, mlflow_client: MlflowClient | None = None) -> tuple[Manifest, list[Change]]:
    """Read-only: the manifest and the changes apply would make."""
    manifest = load_manifest(params=params, env=env)
    desired = desired_state(manifest=manifest, env=env)
    mlflow_client = mlflow_client or registry_client.client(params=params)
    aliases, tags = _current(mlflow_client, name=desired.name)
    return manifest, plan(desired=desired, aliases=aliases, tags=tags)


def format_changes(*, env: str, changes: list[Change], applied: bool) -> str:
    if not changes:
        return f"{env}: in sync with the manifest, nothing to change"
    verb = "applied" if applied else "would change"
    return "\n".join([f"{env}: {verb} {len(changes)} item(s)", *(f"  {c.describe()}" for c in changes)])


def propose_version(*, params: Params, env: str, version: str, strategy: str, share: float | None) -> Path | None:
    """Edit deploy/<env>.yaml to roll `version` out ("registered": the last `pipeline register`);
    returns the path when the manifest changed, None when it already said so.
    """
    if version == REGISTERED:
        version = registry.registered_version(params=params)
    if not version.isdigit() or int(version) < 1:
        raise DeployError(f"--version must be a positive version number or {REGISTERED!r}, not {version!r}")
    manifest = load_manifest(params=params, env=env)
    chosen_share = params.deploy.canary_share if share is None else share
    try:
        updated = propose(manifest=manifest, version=int(version), strategy=strategy, share=chosen_share)
    except ValidationError as exc:
        raise DeployError(f"cannot propose version {version} for {env}: {exc.errors()[0]['msg']}") from exc
    if updated == manifest:
        return None
    return write_manifest(manifest=updated, params=params, env=env)
