"""GitOps deployment: deploy/<env>.yaml is the desired state, the registry is made to match it.

`plan` compares a manifest with the registry's aliases and deploy tags (pure); `apply` verifies
every named version (against the manifest's pins when it has them), takes the environment's lock,
marks the environment "in change", moves aliases and tags, records who applied which commit,
seals the result and reads it back. Rollback is `git revert` of the manifest + apply.

Crash safety: serving takes only sealed states, so an apply killed at any point leaves either the
old state or one serving ignores; the next apply finds the owner of the lock gone and converges.
The manifest itself (model, file, edits) lives in `manifest`, the lock in `lock`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pipeline.core.config import Params
from pipeline.delivery import artifacts, registry, registry_client, registry_state
from pipeline.delivery.lock import registry_lock, terminate_unwinds
from pipeline.delivery.manifest import (
    DeployError,
    Manifest,
    load_manifest,
    manifest_path,
    manifest_sha256,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "HISTORY_PREFIX",
    "MANIFEST_TAG",
    "ApplyResult",
    "Change",
    "Desired",
    "apply",
    "apply_manifest",
    "desired_state",
    "format_changes",
    "history",
    "plan",
    "show_plan",
]

logger = logging.getLogger(__name__)

MANIFEST_TAG = "deploy.{env}.manifest_sha256"
HISTORY_PREFIX = "deploy.{env}.history."

ERR_UNPINNED = (
    "%s names %s version %s without %s: its integrity rests on the registry's own tag; "
    "`pipeline deploy propose` pins it"
)
ERR_NOT_CONVERGED = (
    "after applying {env} the registry still differs from the manifest ({left}): something changed "
    "it outside the lock; apply again"
)


@dataclass(frozen=True)
class Desired:
    """What the registry must hold for one environment."""

    env: str
    name: str
    champion: str | None
    challenger: str | None
    strategy: str
    traffic_share: str
    manifest_sha256: str
    champion_sha256: str | None = None
    challenger_sha256: str | None = None

    def aliases(self) -> dict[str, str]:
        roles = {"champion": self.champion, "challenger": self.challenger}
        return {registry_state.alias(env=self.env, role=r): v for r, v in roles.items() if v is not None}

    def tags(self) -> dict[str, str | None]:
        """Every deploy tag of the environment but the seal; None: the tag must not exist."""
        env = self.env
        return {
            registry_state.strategy_tag(env): self.strategy,
            registry_state.share_tag(env): self.traffic_share,
            registry_state.manifest_tag(env): self.manifest_sha256,
            registry_state.pin_tag(env=env, role="champion"): self.champion_sha256,
            registry_state.pin_tag(env=env, role="challenger"): self.challenger_sha256,
        }

    def seal(self) -> str:
        present = {k: v for k, v in self.tags().items() if v is not None}
        return registry_state.seal(registry_state.sealed_fields(aliases=self.aliases(), tags=present, env=self.env))


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
        champion=None if manifest.champion is None else str(manifest.champion),
        challenger=None if manifest.challenger is None else str(manifest.challenger),
        strategy=manifest.strategy,
        traffic_share=repr(float(manifest.traffic_share)),
        manifest_sha256=manifest_sha256(manifest),
        champion_sha256=manifest.champion_sha256,
        challenger_sha256=manifest.challenger_sha256,
    )


def plan(*, desired: Desired, aliases: dict[str, str], tags: dict[str, str]) -> list[Change]:
    """The changes that make the registry's aliases and tags equal the desired state, in a safe
    order (when the challenger goes away its routing stops first; when one arrives, the alias
    exists before any traffic is routed to it), and the seal last whenever anything changes.
    """
    env = desired.env
    alias_changes = []
    for role, want in (("champion", desired.champion), ("challenger", desired.challenger)):
        key = registry_state.alias(env=env, role=role)
        have = aliases.get(key)
        if have != want:
            alias_changes.append(Change("alias", key, have, want))
    tag_changes = [
        Change("tag", key, tags.get(key), want) for key, want in desired.tags().items() if tags.get(key) != want
    ]
    moves = tag_changes + alias_changes if desired.challenger is None else alias_changes + tag_changes
    key, want = registry_state.seal_tag(env), desired.seal()
    if moves or tags.get(key) != want:
        moves.append(Change("tag", key, tags.get(key), want))
    return moves


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
        raise registry_client.request_error(exc, what=name, uri=mlflow_client.tracking_uri) from exc
    aliases = {k: str(v) for k, v in (model.aliases or {}).items()}
    return aliases, dict(model.tags or {})


def _verify_versions(mlflow_client: MlflowClient, *, desired: Desired, source: str) -> None:
    for role, version, pinned in (
        ("champion", desired.champion, desired.champion_sha256),
        ("challenger", desired.challenger, desired.challenger_sha256),
    ):
        if version is None:
            continue
        if pinned is None:
            logger.warning(ERR_UNPINNED, source, role, version, f"{role}_sha256")
        try:
            artifacts.verify_version(name=desired.name, version=version, mlflow_client=mlflow_client, pinned=pinned)
        except registry_client.RegistryUnavailable:
            raise
        except registry_client.RegistryError as exc:
            raise DeployError(f"refusing to apply {desired.env}: {exc}") from exc


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
    """`apply` for an already validated manifest. SIGTERM raises ApplyTerminated after the lock
    is released; whatever was written by then stays unsealed until the next apply.
    """
    desired = desired_state(manifest=manifest, env=env)
    mlflow_client = mlflow_client or registry_client.client(params=params)
    with terminate_unwinds():
        _current(mlflow_client, name=desired.name)
        # Hash checks download the artifacts: done before taking the lock to keep it short.
        _verify_versions(mlflow_client, desired=desired, source=str(manifest_path(params=params, env=env)))
        with registry_lock(
            mlflow_client,
            name=desired.name,
            env=env,
            timeout=params.deploy.lock_timeout_seconds,
            ttl=params.deploy.lock_ttl_seconds,
        ) as token:
            aliases, tags = _current(mlflow_client, name=desired.name)
            changes = plan(desired=desired, aliases=aliases, tags=tags)
            if not changes:
                return ApplyResult(env=env, changes=[], record=None)
            record = _write(mlflow_client, desired=desired, changes=changes, aliases=aliases, tags=tags, token=token)
    logger.info("applied %s: %d change(s), recorded as %s", env, len(changes), record["key"])
    return ApplyResult(env=env, changes=changes, record=record["record"])


def _write(
    mlflow_client: MlflowClient,
    *,
    desired: Desired,
    changes: list[Change],
    aliases: dict[str, str],
    tags: dict[str, str],
    token: str,
) -> dict[str, Any]:
    """The writes of one apply, under its lock, in an order where a kill at any point leaves a
    state serving either had before or ignores: unseal, move, record, seal, read back.
    """
    from pipeline.core.tracking import git_commit

    env, name = desired.env, desired.name
    *moves, seal = changes
    mlflow_client.set_registered_model_tag(name, registry_state.seal_tag(env), f"{registry_state.SEAL_PENDING}{token}")
    for change in moves:
        _execute(mlflow_client, name=name, change=change)
    commit, dirty = git_commit()
    record = {
        "env": env,
        "champion": desired.champion,
        "challenger": desired.challenger,
        "strategy": desired.strategy,
        "traffic_share": float(desired.traffic_share),
        "manifest_sha256": desired.manifest_sha256,
        "previous_champion": aliases.get(registry_state.alias(env=env, role="champion")),
        "previous_challenger": aliases.get(registry_state.alias(env=env, role="challenger")),
        "commit": commit,
        "dirty": dirty,
        "actor": registry.actor(),
        "time": registry.utc_now(),
        # In a workflow, the run whose Environment approval let this apply through.
        "run_url": _workflow_run_url(),
    }
    key = f"{HISTORY_PREFIX.format(env=env)}{len(history(tags=tags, env=env)) + 1:06d}"
    mlflow_client.set_registered_model_tag(name, key, json.dumps(record, sort_keys=True))
    _execute(mlflow_client, name=name, change=seal)
    after_aliases, after_tags = _current(mlflow_client, name=name)
    left = plan(desired=desired, aliases=after_aliases, tags=after_tags)
    if left:
        raise DeployError(ERR_NOT_CONVERGED.format(env=env, left="; ".join(c.describe() for c in left)))
    return {"key": key, "record": record}


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
