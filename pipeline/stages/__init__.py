"""The DVC stages, one module each: ingest (a database table, when there is one), validate,
prepare, train, evaluate, fairness, card; and `compiled`, train's ONNX compilation of the chosen
model with its parity check (and the onnxruntime scoring that serving reuses).

Each stage is a pure function of frames and params under a thin `main(params=...)` that
reads and writes the files dvc.yaml lists. Stages import only `pipeline.core`.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["card", "compiled", "evaluate", "fairness", "ingest", "prepare", "train", "validate"],
    submod_attrs={
        "ingest": ["IngestError", "add_ingest_stage", "ingest_stage_text", "snapshot"],
        "validate": ["ValidationFailed", "build_suite", "run_suite"],
        "prepare": ["PrepareFailed", "clean", "split"],
        "train": ["MODEL_ARTIFACT", "build_pipeline", "fit_candidates"],
        "evaluate": ["classification_metrics"],
        "fairness": ["FairnessFailed", "assess"],
    },
)
