"""From a trained model to traffic: the registry, GitOps deploy manifests, serving with
canary and shadow routing, canary analysis, smoke checks, lineage and a load generator.

Imports `pipeline.core` and `pipeline.stages` only.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["canary", "deploy", "lineage", "loadgen", "registry", "serve", "service_smoke", "smoke"],
    submod_attrs={
        "registry": ["RegistryError", "load_model_version", "register", "resolve_alias"],
        "deploy": ["DeployError", "Manifest"],
        "canary": ["CanaryInputError"],
        "smoke": ["SmokeFailed"],
        "service_smoke": ["ServiceSmokeFailed"],
        "serve": ["ServeError"],
    },
)
