"""Production watch and continuous training: the drift and performance check, simulated
drift, labelling samples, importing late labels into the prediction log, retraining from
labelled production data, and the GitHub calls the drift workflow makes.

Imports core, stages, delivery and ci (retraining is gated like any pull request).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["drift", "github", "labels", "retrain", "sample", "simulate"],
    submod_attrs={
        "drift": ["DriftInputError", "feature_drift"],
        "retrain": ["RetrainInputError", "RetrainRefused"],
        "simulate": ["SimulationError"],
        "sample": ["SampleError"],
        "github": ["GitHubError"],
        "labels": ["LabelImportError"],
    },
)
