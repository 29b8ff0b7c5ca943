"""Reading the input's rows, for both engines: parquet file by file through
`ParquetFile.iter_batches` (memory of about one batch: a dataset scan decodes whole row groups,
ten times more here), CSV through a dataset scan; every batch cast to the input's unified schema
(an optional column a file lacks is all null, whole numbers widen to floats) with dictionaries
decoded, so the same rows give the same frames whichever engine reads them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from pipeline.delivery.score.inputs import Input, ScoreError, _first_line, _open, is_url

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq


def conformed(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch with exactly `schema`'s columns and types, dictionary columns decoded."""
    import pyarrow as pa

    arrays, names = [], []
    for field in schema:
        if field.name in batch.schema.names:
            array = batch.column(field.name)
            if array.type != field.type:
                array = array.cast(field.type)
        else:
            array = pa.nulls(batch.num_rows, field.type)
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        arrays.append(array)
        names.append(field.name)
    return pa.RecordBatch.from_arrays(arrays, names=names)


@contextlib.contextmanager
def parquet_file(location: str) -> Iterator[pq.ParquetFile]:
    import pyarrow.parquet as pq

    if not is_url(location):
        with pq.ParquetFile(location) as reader:
            yield reader
        return
    with _open(location) as fh, pq.ParquetFile(fh) as reader:
        yield reader


def parquet_batches(
    reader: pq.ParquetFile, schema: pa.Schema, *, batch_size: int, row_groups: Sequence[int] | None = None
) -> Iterator[pa.RecordBatch]:
    present = [name for name in schema.names if name in reader.schema_arrow.names]
    groups = list(range(reader.num_row_groups)) if row_groups is None else list(row_groups)
    for batch in reader.iter_batches(batch_size=batch_size, row_groups=groups, columns=present):
        yield conformed(batch, schema)


def _scanned(source: Input, rows: int) -> Iterator[pa.RecordBatch]:
    import pyarrow.dataset as ds

    if source.format == "parquet":
        for location in source.files:
            with parquet_file(location) as reader:
                yield from parquet_batches(reader, source.schema, batch_size=rows)
        return
    fs, paths = source.arrow_files()
    dataset = ds.dataset(paths, schema=source.schema, format=source.format, filesystem=fs)
    for batch in dataset.to_batches(columns=source.columns(), batch_size=rows, batch_readahead=1):
        yield conformed(batch, source.schema)


def batches(source: Input, *, rows: int) -> Iterator[pa.Table]:
    """The input in tables of exactly `rows` rows (the last may be shorter), in file order, so the
    output's parts do not depend on how the files happen to be chunked.
    """
    import pyarrow as pa

    try:
        held: list[pa.RecordBatch] = []
        count = 0
        for scanned_batch in _scanned(source, rows):
            rest = scanned_batch
            while rest.num_rows:
                take = min(rows - count, rest.num_rows)
                held.append(rest.slice(0, take))
                count += take
                rest = rest.slice(take)
                if count == rows:
                    yield pa.Table.from_batches(held)
                    held, count = [], 0
        if count:
            yield pa.Table.from_batches(held)
    except (pa.ArrowException, OSError) as exc:
        raise ScoreError(f"cannot read the input: {_first_line(exc)}") from exc
