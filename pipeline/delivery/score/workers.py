"""What a Dask worker runs for `pipeline score --engine dask`: the model, loaded once per worker
by a plugin that hashes its bytes first; a span of the input, read by row range; and the span
scored batch by batch with the same pure `score_batch`, each batch written as the part the local
engine would write (same number, same rows, same bytes).

A span is a whole number of batches, so part boundaries still depend on score.batch_rows alone.
Rows travel as Arrow-backed columns between the read and the scoring: converting each batch on
its own afterwards gives exactly the frame the local engine gives that batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from distributed.diagnostics.plugin import WorkerPlugin

from pipeline.core.io import plain_dtypes
from pipeline.delivery.score import output as out
from pipeline.delivery.score.batch import BatchSpec, score_batch
from pipeline.delivery.score.inputs import ScoreError
from pipeline.delivery.score.model import ModelPayload, load_payload
from pipeline.delivery.score.prediction_log import log_rows
from pipeline.delivery.score.reading import parquet_batches, parquet_file

if TYPE_CHECKING:
    import pyarrow as pa

PLUGIN = "pipeline-score-model-{sha:.16}"
ERR_NO_PLUGIN = "worker {address} has no model {name}: it joined without it or failed to load it"
# One row per part a span wrote; `log` holds the part's prediction-log rows when asked for.
RESULT = pd.DataFrame(
    {
        "part": pd.Series(dtype="int64"),
        "read": pd.Series(dtype="int64"),
        "scored": pd.Series(dtype="int64"),
        "rejected": pd.Series(dtype="int64"),
        "log": pd.Series(dtype=object),
    }
)


class ModelPlugin(WorkerPlugin):
    """Loads the model on every worker, present and future, after checking its sha256 there."""

    def __init__(self, payload: ModelPayload) -> None:
        self.payload = payload
        self.name = PLUGIN.format(sha=payload.info.sha256)
        self.model: Any = None

    def setup(self, worker: Any) -> None:
        self.model = load_payload(self.payload, where=f"on worker {worker.address}")


def worker_model(name: str) -> Any:
    from distributed import get_worker

    worker = get_worker()
    plugin = worker.plugins.get(name)
    if not isinstance(plugin, ModelPlugin) or plugin.model is None:
        raise ScoreError(ERR_NO_PLUGIN.format(address=worker.address, name=name))
    return plugin.model


@dataclass(frozen=True)
class Job:
    """Everything a span needs, picklable: where the files are, how to cut and score them."""

    spec: BatchSpec
    files: tuple[str, ...]  # absolute paths or URLs, in reading order
    rows: tuple[int, ...]  # rows per file
    schema: pa.Schema  # the unified input schema (what the local engine reads with)
    prediction_schema: pa.Schema
    reject_schema: pa.Schema
    batch_rows: int
    span_batches: int
    partial: str
    plugin: str
    log: bool

    @property
    def span_rows(self) -> int:
        return self.batch_rows * self.span_batches

    def spans(self) -> list[tuple[int, int]]:
        total = sum(self.rows)
        return [(start, min(start + self.span_rows, total)) for start in range(0, total, self.span_rows)]

    def meta(self) -> pd.DataFrame:
        return _plain(self.schema).empty_table().to_pandas(types_mapper=pd.ArrowDtype)


def _rows_of(location: str, low: int, high: int, job: Job) -> pa.Table:
    """Rows [low, high) of one parquet file, read from the row groups that hold them only, cast
    as the local engine casts them.
    """
    import pyarrow as pa

    with parquet_file(location) as reader:
        metadata = reader.metadata
        wanted: list[int] = []
        first = offset = 0
        for group in range(metadata.num_row_groups):
            size = metadata.row_group(group).num_rows
            if offset < high and offset + size > low:
                first = offset if not wanted else first
                wanted.append(group)
            offset += size
        pieces, position = [], first
        for batch in parquet_batches(reader, job.schema, batch_size=job.batch_rows, row_groups=wanted):
            start, stop = max(low - position, 0), min(high - position, batch.num_rows)
            if start < stop:
                pieces.append(batch.slice(start, stop - start))
            position += batch.num_rows
            if position >= high:
                break
    return pa.Table.from_batches(pieces, schema=_plain(job.schema))


def _plain(schema: pa.Schema) -> pa.Schema:
    """The schema with dictionary columns as their values (what conformed batches hold)."""
    import pyarrow as pa

    return pa.schema(pa.field(f.name, f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in schema)


def read_span(bounds: tuple[int, int], *, job: Job) -> pd.DataFrame:
    """Input rows [start, stop), across files, as Arrow-backed columns."""
    import pyarrow as pa

    start, stop = bounds
    tables, offset = [], 0
    try:
        for location, count in zip(job.files, job.rows, strict=True):
            low, high = max(start - offset, 0), min(stop - offset, count)
            if low < high:
                tables.append(_rows_of(location, low, high, job))
            offset += count
            if offset >= stop:
                break
    except (pa.ArrowException, OSError) as exc:
        raise ScoreError(f"cannot read the input rows {start}-{stop}: {exc}") from exc
    return pa.concat_tables(tables).to_pandas(types_mapper=pd.ArrowDtype)


def as_batch(rows: pd.DataFrame) -> pd.DataFrame:
    """Arrow-backed rows as the frame the local engine builds from the same rows."""
    import pyarrow as pa

    arrow = pa.Table.from_pandas(rows, preserve_index=False)
    # Without the pandas metadata, to_pandas converts as it does for the local engine's batch.
    return plain_dtypes(arrow.replace_schema_metadata(None).to_pandas())


def score_span(frame: pd.DataFrame, *, job: Job, partition_info: dict[str, Any] | None = None) -> pd.DataFrame:
    """Score one span batch by batch, writing each batch's parts; one result row per part."""
    if partition_info is None:  # dask computing the result's metadata
        return RESULT
    model = worker_model(job.plugin)
    first_batch = int(partition_info["number"]) * job.span_batches
    partial = Path(job.partial)
    results = []
    for k, start in enumerate(range(0, len(frame), job.batch_rows)):
        batch = as_batch(frame.iloc[start : start + job.batch_rows])
        index = first_batch + k
        first_row = index * job.batch_rows
        started = time.perf_counter()
        predictions, rejects = score_batch(batch, model=model, spec=job.spec, first_row=first_row)
        seconds = time.perf_counter() - started
        name = out.PART.format(index=index)
        out.write_part(predictions, job.prediction_schema, partial / out.PREDICTIONS / name)
        if len(rejects):
            out.write_part(rejects, job.reject_schema, partial / out.REJECTS / name)
        log = (
            log_rows(batch, predictions, rejects, params=job.spec.params, first_row=first_row, seconds=seconds)
            if job.log
            else None
        )
        results.append(
            {"part": index, "read": len(batch), "scored": len(predictions), "rejected": len(rejects), "log": log}
        )
    return pd.DataFrame(results, columns=list(RESULT.columns)).astype(RESULT.dtypes.to_dict())
