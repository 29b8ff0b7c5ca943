"""From a trained model to traffic: the registry, GitOps deploy manifests applied under a
crash-safe lock with sealed states, serving with canary and shadow routing, canary analysis,
smoke checks, lineage, batch scoring of tables and a load generator.

Imports `pipeline.core` and `pipeline.stages` only.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=[
        "artifacts",
        "canary",
        "compiled",
        "deploy",
        "lineage",
        "loadgen",
        "lock",
        "manifest",
        "proposal",
        "registry",
        "registry_client",
        "registry_state",
        "score",
        "serve",
        "service_smoke",
        "smoke",
    ],
    submod_attrs={
        "registry_client": ["RegistryError"],
        "artifacts": ["load_model_version"],
        "registry": ["register"],
        "registry_state": ["resolve_alias"],
        "manifest": ["DeployError", "Manifest"],
        "canary": ["CanaryInputError"],
        "smoke": ["SmokeFailed"],
        "service_smoke": ["ServiceSmokeFailed"],
        "serve": ["ServeError"],
    },
)
