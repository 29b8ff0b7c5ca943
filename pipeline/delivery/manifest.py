"""Deploy manifests: the model of deploy/<env>.yaml, reading and writing the file, and the pure
edits a workflow proposes (roll a version out, promote, roll back).

A manifest pins each version it names to its artifact's sha256 (`champion_sha256`,
`challenger_sha256`): `deploy propose` always writes the pin, so integrity is anchored in git and
a rewritten registry tag cannot swap a model in. Manifests written before pins existed still load
(pins are optional when reading); apply then relies on the registry's own tag and says so.

Nothing here touches the registry; `deploy` makes the registry match a manifest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, ValidationError, model_validator

from pipeline.core.config import GuardrailsSection, Params


class DeployError(ValueError):
    """A manifest is invalid, or the registry cannot be made to match it."""


ERR_NOT_UTF8 = "{source}: line {line}: not UTF-8 text (byte 0x{byte:02x}); save the manifest as UTF-8"
ERR_DUPLICATE_KEY = "{source}: line {line}: duplicate key {key!r} (first at line {first}); a key may appear once"
ERR_YAML = "{source}: line {line}, column {column}: not valid YAML: {problem}"
ERR_PIN_WITHOUT_VERSION = "challenger_sha256 needs a challenger version"
# The fields that pin versions to artifact hashes; left out of the manifest hash when unset, so a
# manifest written before pins existed keeps its hash (and apply sees nothing to change).
PIN_FIELDS = ("champion_sha256", "challenger_sha256")

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; in a manifest that silently drops a reviewed line."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` merges, it does not repeat
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                seen = first.get(key)
            except TypeError:  # an unhashable key: the base class names it
                break
            line = key_node.start_mark.line + 1
            if seen is not None:
                raise _DuplicateKey(key=key, line=line, first=seen)
            first[key] = line
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, *, key: Any, line: int, first: int) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line, self.first = key, line, first


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GuardrailOverrides(_Strict):
    """Per-environment guardrails; any left out come from params.yaml deploy.guardrails."""

    max_error_rate: float | None = Field(default=None, ge=0, le=1)
    max_p99_latency_ms: float | None = Field(default=None, gt=0)
    max_prediction_distance: float | None = Field(default=None, ge=0, le=1)
    min_requests: StrictInt | None = Field(default=None, ge=1)
    min_accuracy: float | None = Field(default=None, ge=0, le=1)
    max_accuracy_drop: float | None = Field(default=None, ge=0, le=1)


class Manifest(_Strict):
    model: str = Field(min_length=1)
    # StrictInt: YAML `true` or "1" would otherwise pass as version 1. None: nothing deployed yet
    # (a new registry; written as `champion: null`, never left out); the first `deploy propose`
    # makes its version the champion.
    champion: StrictInt | None = Field(ge=1)
    champion_sha256: Sha256 | None = None
    challenger: StrictInt | None = Field(default=None, ge=1)
    challenger_sha256: Sha256 | None = None
    strategy: Literal["none", "shadow", "canary"] = "none"
    traffic_share: float = Field(default=0.0, ge=0, le=1)
    guardrails: GuardrailOverrides = GuardrailOverrides()

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if self.challenger is None and self.challenger_sha256 is not None:
            raise ValueError(ERR_PIN_WITHOUT_VERSION)
        if self.champion is None and self.champion_sha256 is not None:
            raise ValueError("champion_sha256 needs a champion version")
        if self.champion is None and self.strategy != "none":
            raise ValueError(f"strategy {self.strategy} needs a champion to compare the challenger with")
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

    def pins(self) -> dict[int, str]:
        """Map each pinned version to its artifact hash, for the versions this manifest pins."""
        pairs = ((self.champion, self.champion_sha256), (self.challenger, self.challenger_sha256))
        return {version: pin for version, pin in pairs if version is not None and pin is not None}


# ---- files ----------------------------------------------------------------------------------


def manifest_path(*, params: Params, env: str) -> Path:
    if env not in params.deploy.environments:
        raise DeployError(f"unknown environment {env!r}: params deploy.environments lists {params.deploy.environments}")
    return params.deploy.manifests / f"{env}.yaml"


def parse_manifest(*, text: str, source: str, params: Params) -> Manifest:
    """Validate manifest text; every problem is named by its field (or line) in one DeployError."""
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except _DuplicateKey as exc:
        raise DeployError(ERR_DUPLICATE_KEY.format(source=source, line=exc.line, key=exc.key, first=exc.first)) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        problem = exc.problem or exc.context or "unreadable"
        raise DeployError(ERR_YAML.format(source=source, line=line, column=column, problem=problem)) from exc
    except yaml.YAMLError as exc:
        raise DeployError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from exc
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
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DeployError(ERR_NOT_UTF8.format(source=path, line=line, byte=data[exc.start])) from exc
    return parse_manifest(text=text, source=str(path), params=params)


def guardrails(*, manifest: Manifest, params: Params) -> GuardrailsSection:
    """The effective guardrails: the manifest's own, params' defaults for the rest."""
    overrides = manifest.guardrails.model_dump(exclude_none=True)
    return params.deploy.guardrails.model_copy(update=overrides)


def render_manifest(*, manifest: Manifest, env: str) -> str:
    """Canonical YAML, so a proposed change is a small, reviewable diff."""
    body = manifest.model_dump(exclude={"guardrails"})
    for key in PIN_FIELDS:
        if body[key] is None:
            del body[key]
    overrides = manifest.guardrails.model_dump(exclude_none=True)
    if overrides:
        body["guardrails"] = overrides
    header = (
        f"# Desired state of the {env} deployment. Change it by pull request; the CD workflow runs\n"
        f"# `pipeline deploy apply --env {env}` to make the registry match. Rollback: git revert + apply.\n"
        "# Guardrails not set here come from params.yaml deploy.guardrails. `deploy propose` pins each\n"
        "# version to its artifact's sha256 (*_sha256): apply and serving refuse any other content.\n"
    )
    return header + yaml.safe_dump(body, sort_keys=False)


def write_manifest(*, manifest: Manifest, params: Params, env: str) -> Path:
    path = manifest_path(params=params, env=env)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_manifest(manifest=manifest, env=env), encoding="utf-8")
    return path


def manifest_sha256(manifest: Manifest) -> str:
    # Of the validated content, not the file: comments and key order are not deployment state.
    body = manifest.model_dump(mode="json")
    for key in PIN_FIELDS:
        if body[key] is None:
            del body[key]
    canonical = json.dumps(body, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# ---- edits (pure) ---------------------------------------------------------------------------


def propose(*, manifest: Manifest, version: int, strategy: str, share: float, sha256: str | None = None) -> Manifest:
    """The manifest with `version` rolled out: as champion (strategy none) or as challenger, pinned
    to `sha256` (without one, to the pin the manifest already holds for that version, if any).

    A version that already is the champion changes nothing but a missing pin, so reruns of the
    workflow are no-ops. With nothing deployed yet there is nothing to compare a canary or shadow
    with: the first version becomes the champion outright.
    """
    pin = sha256 or manifest.pins().get(version)
    if version == manifest.champion:
        return manifest if pin is None else Manifest.model_validate({**manifest.model_dump(), "champion_sha256": pin})
    if strategy == "none" or manifest.champion is None:
        update: dict[str, Any] = {
            "champion": version,
            "champion_sha256": pin,
            "challenger": None,
            "challenger_sha256": None,
            "strategy": "none",
            "traffic_share": 0.0,
        }
    else:
        update = {"challenger": version, "challenger_sha256": pin, "strategy": strategy, "traffic_share": share}
    return Manifest.model_validate({**manifest.model_dump(), **update})


def promote(*, manifest: Manifest) -> Manifest:
    """The challenger becomes the champion; nothing else is routed."""
    if manifest.challenger is None:
        raise DeployError("nothing to promote: the manifest has no challenger")
    return propose(manifest=manifest, version=manifest.challenger, strategy="none", share=0.0)


def rollback(*, manifest: Manifest) -> Manifest:
    """The challenger is withdrawn; the champion keeps all traffic."""
    return Manifest.model_validate(
        {
            **manifest.model_dump(),
            "challenger": None,
            "challenger_sha256": None,
            "strategy": "none",
            "traffic_share": 0.0,
        }
    )
