"""What an environment's registry aliases and deploy tags mean: the names `deploy apply` writes,
the seal that marks a complete apply, and the deployment state serving reads from them.

Pure functions on aliases and tags, plus the one read serving makes; `registry` re-exports all of it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.delivery.registry_client import RegistryError, _not_found, client, request_error

__all__ = [
    "ERR_IN_CHANGE",
    "ROLES",
    "SEAL_PENDING",
    "STRATEGIES",
    "DeploymentState",
    "StateInChange",
    "Strategy",
    "alias",
    "deployed_pins",
    "deployment_state",
    "manifest_tag",
    "pin_tag",
    "read_deployment",
    "resolve_alias",
    "seal",
    "seal_tag",
    "sealed_fields",
    "share_tag",
    "state_from",
    "strategy_tag",
]

Strategy = Literal["none", "shadow", "canary"]
STRATEGIES: tuple[Strategy, ...] = ("none", "shadow", "canary")
ROLES = ("champion", "challenger")

# The seal's value while an apply moves aliases and tags (followed by the apply's lock token).
SEAL_PENDING = "pending:"

ERR_IN_CHANGE = (
    "the {env} deployment is being changed: its seal tag {tag} does not match its aliases and tags "
    "(an apply is running, or was interrupted: run `pipeline deploy apply --env {env}`)"
)


class StateInChange(RegistryError):
    """An environment's aliases and tags are part-way through an apply: not a state to serve."""


@dataclass(frozen=True)
class DeploymentState:
    champion: str | None
    challenger: str | None
    strategy: Strategy
    traffic_share: float


def alias(*, env: str, role: str) -> str:
    """`<env>-champion` / `<env>-challenger`: registry aliases, never the deprecated stages."""
    return f"{env}-{role}"


def strategy_tag(env: str) -> str:
    return f"deploy.{env}.strategy"


def share_tag(env: str) -> str:
    return f"deploy.{env}.traffic_share"


def manifest_tag(env: str) -> str:
    return f"deploy.{env}.manifest_sha256"


def pin_tag(*, env: str, role: str) -> str:
    """The artifact hash the manifest in git pins for a role's version (absent for old manifests)."""
    return f"deploy.{env}.{role}_sha256"


def seal_tag(env: str) -> str:
    return f"deploy.{env}.seal"


def sealed_fields(*, aliases: dict[str, Any], tags: dict[str, str], env: str) -> dict[str, str | None]:
    """Everything `deploy apply` writes for one environment and serving reads: what the seal covers."""
    fields: dict[str, str | None] = {}
    for role in ROLES:
        version = aliases.get(alias(env=env, role=role))
        fields[alias(env=env, role=role)] = None if version is None else str(version)
    for key in (strategy_tag(env), share_tag(env), manifest_tag(env), *(pin_tag(env=env, role=r) for r in ROLES)):
        fields[key] = tags.get(key)
    return fields


def seal(fields: dict[str, str | None]) -> str:
    """Written last by an apply: aliases and tags that hash to it are a complete, consistent state.

    Why a seal: MLflow has no transaction across alias and tag writes, so a killed apply can leave
    any prefix of its writes behind; serving takes only states whose seal matches.
    """
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]


# ---- aliases and deployment state -----------------------------------------------------------


def resolve_alias(*, name: str, alias: str) -> str | None:
    """The version an alias points at, or None when the alias (or the model) does not exist."""
    mlflow_client = client()
    try:
        mv = mlflow_client.get_model_version_by_alias(name, alias)
    except Exception as exc:
        if _not_found(exc):
            return None
        raise request_error(exc, what=f"alias {alias} of {name}", uri=mlflow_client.tracking_uri) from exc
    return str(mv.version)


def state_from(*, aliases: dict[str, Any], tags: dict[str, str], env: str) -> DeploymentState:
    """Pure: the deployment state of one environment from a registered model's aliases and tags.

    Raises StateInChange while an apply is part-way. A registry never applied with a seal (applied
    before seals existed) is read as it is; its next apply seals it.
    """
    sealed = tags.get(seal_tag(env))
    if sealed is not None and sealed != seal(sealed_fields(aliases=aliases, tags=tags, env=env)):
        raise StateInChange(ERR_IN_CHANGE.format(env=env, tag=seal_tag(env)))
    champion = aliases.get(alias(env=env, role="champion"))
    challenger = aliases.get(alias(env=env, role="challenger"))
    strategy = tags.get(strategy_tag(env), "none")
    if strategy not in STRATEGIES:
        raise RegistryError(f"registered-model tag {strategy_tag(env)}={strategy!r} is not one of {STRATEGIES}")
    try:
        share = float(tags.get(share_tag(env), "0"))
    except ValueError as exc:
        raise RegistryError(f"registered-model tag {share_tag(env)} is not a number") from exc
    if challenger is None:
        # No challenger means nothing to route to, whatever a stale tag says.
        strategy, share = "none", 0.0
    return DeploymentState(
        champion=None if champion is None else str(champion),
        challenger=None if challenger is None else str(challenger),
        strategy=strategy,  # type: ignore[arg-type]
        traffic_share=share,
    )


def deployed_pins(*, aliases: dict[str, Any], tags: dict[str, str], env: str) -> dict[str, str]:
    """Pure: version -> the artifact hash the environment's manifest pins for it (from git, via apply)."""
    pins = {}
    for role in ROLES:
        version, pinned = aliases.get(alias(env=env, role=role)), tags.get(pin_tag(env=env, role=role))
        if version is not None and pinned:
            pins[str(version)] = pinned
    return pins


def read_deployment(*, name: str, env: str) -> tuple[DeploymentState, dict[str, str]]:
    """The environment's deployment state and the artifact hashes its manifest pins, in one read."""
    mlflow_client = client()
    try:
        model = mlflow_client.get_registered_model(name)
    except Exception as exc:
        if _not_found(exc):
            raise RegistryError(f"registered model {name} does not exist; run `pipeline register` first") from exc
        raise request_error(exc, what=name, uri=mlflow_client.tracking_uri) from exc
    aliases, tags = dict(model.aliases or {}), dict(model.tags or {})
    return state_from(aliases=aliases, tags=tags, env=env), deployed_pins(aliases=aliases, tags=tags, env=env)


def deployment_state(*, name: str, env: str) -> DeploymentState:
    return read_deployment(name=name, env=env)[0]
