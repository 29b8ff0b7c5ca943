"""What every loop shares: the typed params and their comment-preserving edits, file formats,
sensitive groups, production periods on disk, MLflow set-up, subprocess tools and the
prediction-log store. Imports nothing else from the package.

Names load on first use, so importing one module never pulls in every library.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["config", "groups", "io", "params_edit", "periods", "predlog", "redact", "runner", "tracking"],
    submod_attrs={
        "config": ["ConfigError", "Params", "load_params"],
        "io": [
            "DataFileError",
            "ModelFileError",
            "read_table",
            "write_table",
            "read_json",
            "write_json",
            "load_model",
            "save_model",
        ],
        "groups": ["group_labels", "sensitive_frame"],
        "tracking": ["connect", "git_commit", "mlflow_module", "tracking_uri"],
        "runner": ["ReproFailed", "stop_group", "tool_env"],
        "predlog": ["LogRecord", "LogWriter", "PredictionLogError", "open_store", "prune", "read_log"],
    },
)
