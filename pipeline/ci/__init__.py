"""Pull-request CI: the gate (candidate vs champion), fetching the champion, the PR report,
and `local.run`, the whole sequence ci.yml runs; and what every workflow job does first:
`preflight` (its secrets set and reachable), `changes` (what a push asks of cd.yml) and
`dvcfiles` (dvc.yaml's inputs and committed outputs).

Sits above delivery because the champion is the version production"s manifest names in the
registry.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["champion", "changes", "dvcfiles", "floors", "gate", "local", "preflight", "report"],
    submod_attrs={
        "gate": ["GateFailed", "GateInputError"],
        "champion": ["ChampionError"],
        "changes": ["ChangesError"],
        "preflight": ["PreflightError"],
    },
)
