"""The whole loop offline in a temporary git repository: train, deploy, monthly traffic,
quarterly drift checks, simulated drift, a retraining branch, CI, canary and promotion.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["loop", "service", "timeline", "workspace"],
    submod_attrs={
        "loop": ["run"],
        "workspace": ["DemoError"],
    },
)
