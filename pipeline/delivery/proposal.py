"""`pipeline deploy propose`: the manifest edit that rolls a registered version out, pinned to the
sha256 of its verified artifact, for a workflow to commit or open as a pull request.

The pin is what anchors integrity in git: apply and serving refuse an artifact that no longer
hashes to it, whatever the registry's own tag says.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from pipeline.core.config import Params
from pipeline.delivery import artifacts, registry, registry_client
from pipeline.delivery.manifest import DeployError, Manifest, load_manifest, propose, write_manifest

if TYPE_CHECKING:
    from mlflow import MlflowClient

REGISTERED = "registered"


def propose_version(
    *,
    params: Params,
    env: str,
    version: str,
    strategy: str,
    share: float | None,
    mlflow_client: MlflowClient | None = None,
) -> Path | None:
    """Edit deploy/<env>.yaml to roll `version` out ("registered": the last `pipeline register`),
    pinned to its verified artifact hash; returns the path when the manifest changed, None when it
    already said so. Refuses a version the registry does not have, or whose artifact is damaged.

    Versions the manifest names without a pin get one too, so old manifests gain pins as they move.
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
    mlflow_client = mlflow_client or registry_client.client(params=params)
    pins = updated.pins()
    for named in (updated.champion, updated.challenger):
        # The proposed version is looked up even when pinned already: the registry must have it.
        if named is None or (named in pins and named != int(version)):
            continue
        try:
            pins[named] = artifacts.verify_version(
                name=updated.model, version=str(named), mlflow_client=mlflow_client, pinned=pins.get(named)
            )
        except registry_client.RegistryUnavailable:
            raise
        except registry_client.RegistryError as exc:
            raise DeployError(f"refusing to propose version {version} for {env}: {exc}") from exc
    updated = Manifest.model_validate(
        {
            **updated.model_dump(),
            "champion_sha256": None if updated.champion is None else pins.get(updated.champion),
            "challenger_sha256": None if updated.challenger is None else pins.get(updated.challenger),
        }
    )
    if updated == manifest:
        return None
    return write_manifest(manifest=updated, params=params, env=env)
