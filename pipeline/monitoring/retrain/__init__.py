"""Retraining: the next training table from the reference plus labelled production data (from
the prediction log, or from labelled period files in the demo), stored with DVC in its remote,
a rerun of the pipeline, the gate against the champion, and the pull-request body and paths.

Raw data is immutable: the new table is a new file under data/raw/ named by its content, and
params.yaml `data.raw` is pointed at it with a one-line edit. `table` holds the pure core,
`live` the rows from the log, `snapshot` DVC and the paths to commit, `body` the pull-request
text, `run` the whole run.
"""

from pipeline.monitoring.retrain.body import model_lines, pr_body, why_lines
from pipeline.monitoring.retrain.live import plan_from_log, pseudonyms, row_problems
from pipeline.monitoring.retrain.run import PATHS_FILE, plan, run, write_github_output
from pipeline.monitoring.retrain.snapshot import commit_paths
from pipeline.monitoring.retrain.table import (
    EXIT_CODES,
    READY,
    REFUSED,
    Plan,
    RetrainInputError,
    RetrainRefused,
    Source,
    assemble,
    content_name,
    labelled_batch,
    select_window,
    set_raw_path,
)

__all__ = [
    "EXIT_CODES",
    "PATHS_FILE",
    "READY",
    "REFUSED",
    "Plan",
    "RetrainInputError",
    "RetrainRefused",
    "Source",
    "assemble",
    "commit_paths",
    "content_name",
    "labelled_batch",
    "model_lines",
    "plan",
    "plan_from_log",
    "pr_body",
    "pseudonyms",
    "row_problems",
    "run",
    "select_window",
    "set_raw_path",
    "why_lines",
    "write_github_output",
]
