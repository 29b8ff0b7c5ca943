"""Batch scoring (`pipeline score`): a table scored in bounded batches by a registered model
(alias or version, verified like serving does) or a model file, with rows judged by the service's
input rules; predictions and rejects written as parquet parts under a completion manifest.

Layers, lowest first: `batch` (the pure per-batch core: frame in, predictions and rejects out),
`inputs` (files or fsspec URLs, columns, fingerprint, batches), `model` (which model, and its
verified bytes for a cluster), `output` (folder states, parts, the atomic commit),
`prediction_log` (scored rows appended to the prediction log as env `batch`), the two engines
(`local`: this process, a pool of scoring threads; `cluster` + `workers`: a Dask cluster, the
same parts from `dask.dataframe` spans) and `run` (the command).
"""

from pipeline.delivery.score.batch import BatchSpec, ModelInfo, judge, score_batch
from pipeline.delivery.score.inputs import ScoreError
from pipeline.delivery.score.output import MANIFEST, PREDICTIONS, REJECTS
from pipeline.delivery.score.run import Outcome, interrupt_on_sigterm, score, summary

__all__ = [
    "MANIFEST",
    "PREDICTIONS",
    "REJECTS",
    "BatchSpec",
    "ModelInfo",
    "Outcome",
    "ScoreError",
    "interrupt_on_sigterm",
    "judge",
    "score",
    "score_batch",
    "summary",
]
