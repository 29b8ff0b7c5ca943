"""Pull-request CI: the gate (candidate vs champion), fetching the champion, the PR report,
and `local.run`, the whole sequence ci.yml runs.

Sits above delivery because the champion is the version production"s manifest names in the
registry.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["champion", "floors", "gate", "local", "report"],
    submod_attrs={
        "gate": ["GateFailed", "GateInputError"],
        "champion": ["ChampionError"],
    },
)
