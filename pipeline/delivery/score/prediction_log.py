"""Batch predictions in the prediction log, so they are monitored like served ones: one row per
scored row, association id = the row's id, environment `batch`, the model's name and version, the
row's declared columns in canonical form (as the service logs a request), its score and flags.

`log_rows` is pure (it runs wherever the batch was scored, a cluster worker included);
`BatchLog` appends the rows to the store in transactions of `WRITE_ROWS`, on the machine that
runs the command. Every row of one run carries the run's start time.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.config import Params
from pipeline.delivery.score.batch import FLAGS, ROW, SCORE, ModelInfo, canonical

logger = logging.getLogger(__name__)

BATCH_ENV = "batch"
# The log's answer roles: a batch row is the answer of record for its id, as a champion's is.
ROLE = "champion"
WRITE_ROWS = 10_000
LOG_COLUMNS = ("association_id", "score", "flags", "inputs", "latency_ms")


def log_rows(
    frame: pd.DataFrame,
    predictions: pd.DataFrame,
    rejects: pd.DataFrame,
    *,
    params: Params,
    first_row: int,
    seconds: float,
) -> pd.DataFrame:
    """The log's view of one scored batch (`frame` as score_batch got it, its two results), in the
    predictions' order; `latency_ms` is the batch's scoring time per row.
    """
    kept_mask = np.ones(len(frame), dtype=bool)
    kept_mask[(rejects[ROW] - first_row).to_numpy()] = False
    kept = frame.reset_index(drop=True)[kept_mask]
    inputs = canonical(kept, params)[list(params.data.columns)].astype(object)
    inputs = inputs.where(inputs.notna(), None)
    texts = [json.dumps(row, sort_keys=True, separators=(",", ":")) for row in inputs.to_dict("records")]
    per_row = seconds * 1000 / len(predictions) if len(predictions) else 0.0
    return pd.DataFrame(
        {
            "association_id": predictions[params.base.id_column].astype(str).to_numpy(dtype=object),
            "score": predictions[SCORE].to_numpy(dtype="float64"),
            "flags": [json.dumps(list(flags)) for flags in predictions[FLAGS]],
            "inputs": texts,
            "latency_ms": per_row,
        },
        columns=list(LOG_COLUMNS),
    )


@dataclass
class BatchLog:
    """An open store and what one run has appended to it."""

    store: Any
    url: str
    info: ModelInfo
    ts: float
    written: int = 0

    def append(self, rows: pd.DataFrame) -> None:
        from pipeline.core.predlog import LogRecord

        for start in range(0, len(rows), WRITE_ROWS):
            chunk = rows.iloc[start : start + WRITE_ROWS]
            self.store.write(
                [
                    LogRecord(
                        association_id=association_id,
                        ts=self.ts,
                        env=BATCH_ENV,
                        model_name=self.info.name,
                        model_version=self.info.version,
                        role=ROLE,
                        inputs=inputs,
                        score=float(score),
                        latency_ms=float(latency),
                        flags=flags,
                    )
                    for association_id, score, flags, inputs, latency in zip(
                        chunk["association_id"],
                        chunk["score"],
                        chunk["flags"],
                        chunk["inputs"],
                        chunk["latency_ms"],
                        strict=True,
                    )
                ]
            )
            self.written += len(chunk)

    def close(self) -> None:
        self.store.close()


def open_log(*, params: Params, url: str | None, info: ModelInfo, ts: float) -> BatchLog:
    """The store at `url` (else PREDICTION_LOG_URL, else params serve.log.path), opened before any
    scoring so an unusable log stops the run with nothing written.
    """
    from pipeline.core import predlog
    from pipeline.core.redact import redact

    resolved = predlog.resolve_url(configured=params.serve.log.path, override=url)
    store = predlog.open_store(resolved)
    logger.info("appending the scored rows to the prediction log %s (env %s)", redact(resolved), BATCH_ENV)
    return BatchLog(store=store, url=resolved, info=info, ts=ts)
