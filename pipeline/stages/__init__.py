"""The DVC stages, one module each: validate, prepare, train, evaluate, fairness, card.

Each stage is a pure function of frames and params under a thin `main(params=...)` that
reads and writes the files dvc.yaml lists. Stages import only `pipeline.core`.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["card", "evaluate", "fairness", "prepare", "train", "validate"],
    submod_attrs={
        "validate": ["ValidationFailed", "build_suite", "run_suite"],
        "prepare": ["PrepareFailed", "clean", "split"],
        "train": ["MODEL_ARTIFACT", "build_pipeline", "fit_candidates"],
        "evaluate": ["classification_metrics"],
        "fairness": ["FairnessFailed", "assess"],
    },
)
