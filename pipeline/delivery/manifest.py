"""Deploy manifests: the model of deploy/<env>.yaml, reading and writing the file, and the pure
edits a workflow proposes (roll a version out, promote, roll back).

Nothing here touches the registry; `deploy` makes the registry match a manifest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from pipeline.core.config import GuardrailsSection, Params


class DeployError(ValueError):
    """A manifest is invalid, or the registry cannot be made to match it."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GuardrailOverrides(_Strict):
    """Per-environment guardrails; any left out come from params.yaml deploy.guardrails."""

    max_error_rate: float | None = Field(default=None, ge=0, le=1)
    max_p99_latency_ms: float | None = Field(default=None, gt=0)
    max_prediction_distance: float | None = Field(default=None, ge=0, le=1)
    min_requests: StrictInt | None = Field(default=None, ge=1)
    min_accuracy: float | None = Field(default=None, ge=0, le=1)


class Manifest(_Strict):
    model: str = Field(min_length=1)
    # StrictInt: YAML `true` or "1" would otherwise pass as version 1.
    champion: StrictInt = Field(ge=1)
    challenger: StrictInt | None = Field(default=None, ge=1)
    strategy: Literal["none", "shadow", "canary"] = "none"
    traffic_share: float = Field(default=0.0, ge=0, le=1)
    guardrails: GuardrailOverrides = GuardrailOverrides()

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if self.strategy == "none":
            if self.challenger is not None:
                raise ValueError("a challenger needs strategy shadow or canary (with none it would get no traffic)")
            if self.traffic_share != 0:
                raise ValueError("traffic_share must be 0 with strategy none")
            return self
        if self.challenger is None:
            raise ValueError(f"strategy {self.strategy} needs a challenger version")
        if self.challenger == self.champion:
            raise ValueError("challenger and champion must be different versions")
        if self.strategy == "canary" and not 0 < self.traffic_share < 1:
            raise ValueError("a canary's traffic_share must be between 0 and 1 (exclusive)")
        return self


# ---- files ----------------------------------------------------------------------------------


def manifest_path(*, params: Params, env: str) -> Path:
    if env not in params.deploy.environments:
        raise DeployError(f"unknown environment {env!r}: params deploy.environments lists {params.deploy.environments}")
    return params.deploy.manifests / f"{env}.yaml"


def parse_manifest(*, text: str, source: str, params: Params) -> Manifest:
    """Validate manifest text; every problem is named by its field in one DeployError."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DeployError(f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise DeployError(f"{source} must be a mapping (model, champion, challenger, strategy, ...)")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}".replace("Value error, ", "")
            for err in exc.errors()
        )
        raise DeployError(f"{source}: {problems}") from exc
    if manifest.model != params.tracking.registered_model:
        raise DeployError(
            f"{source}: model {manifest.model!r} is not params tracking.registered_model "
            f"{params.tracking.registered_model!r}"
        )
    return manifest


def load_manifest(*, params: Params, env: str) -> Manifest:
    path = manifest_path(params=params, env=env)
    if not path.is_file():
        raise DeployError(f"{path} not found: every environment in params deploy.environments needs a manifest")
    return parse_manifest(text=path.read_text(encoding="utf-8"), source=str(path), params=params)


def guardrails(*, manifest: Manifest, params: Params) -> GuardrailsSection:
    """The effective guardrails: the manifest's own, params' defaults for the rest."""
    overrides = manifest.guardrails.model_dump(exclude_none=True)
    return params.deploy.guardrails.model_copy(update=overrides)


def render_manifest(*, manifest: Manifest, env: str) -> str:
    """Canonical YAML, so a proposed change is a small, reviewable diff."""
    body = manifest.model_dump(exclude={"guardrails"})
    overrides = manifest.guardrails.model_dump(exclude_none=True)
    if overrides:
        body["guardrails"] = overrides
    header = (
        f"# Desired state of the {env} deployment. Change it by pull request; the CD workflow runs\n"
        f"# `pipeline deploy apply --env {env}` to make the registry match. Rollback: git revert + apply.\n"
        "# Guardrails not set here come from params.yaml deploy.guardrails.\n"
    )
    return header + yaml.safe_dump(body, sort_keys=False)


def write_manifest(*, manifest: Manifest, params: Params, env: str) -> Path:
    path = manifest_path(params=params, env=env)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_manifest(manifest=manifest, env=env), encoding="utf-8")
    return path


def manifest_sha256(manifest: Manifest) -> str:
    # Of the validated content, not the file: comments and key order are not deployment state.
    canonical = json.dumps(manifest.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# ---- edits (pure) ---------------------------------------------------------------------------


def propose(*, manifest: Manifest, version: int, strategy: str, share: float) -> Manifest:
    """The manifest with `version` rolled out: as champion (strategy none) or as challenger.

    A version that already is the champion changes nothing, so reruns of the workflow are no-ops.
    """
    if version == manifest.champion:
        return manifest
    if strategy == "none":
        update: dict[str, Any] = {"champion": version, "challenger": None, "strategy": "none", "traffic_share": 0.0}
    else:
        update = {"challenger": version, "strategy": strategy, "traffic_share": share}
    return Manifest.model_validate({**manifest.model_dump(), **update})


def promote(*, manifest: Manifest) -> Manifest:
    """The challenger becomes the champion; nothing else is routed."""
    if manifest.challenger is None:
        raise DeployError("nothing to promote: the manifest has no challenger")
    return propose(manifest=manifest, version=manifest.challenger, strategy="none", share=0.0)


def rollback(*, manifest: Manifest) -> Manifest:
    """The challenger is withdrawn; the champion keeps all traffic."""
    return Manifest.model_validate(
        {**manifest.model_dump(), "challenger": None, "strategy": "none", "traffic_share": 0.0}
    )
