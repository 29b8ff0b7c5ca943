"""The pieces of the dask engine that need no cluster: spans cut in whole batches, a span read as
exactly its rows across files and row groups, model bytes checked before loading, and inputs named
by an fsspec URL (checked, fingerprinted and scored like local files).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core.config import Params
from pipeline.core.io import plain_dtypes
from pipeline.delivery.score import PREDICTIONS, ScoreError
from pipeline.delivery.score.batch import BatchSpec, ModelInfo
from pipeline.delivery.score.cluster import SPAN_MAX_ROWS, span_batches
from pipeline.delivery.score.inputs import fingerprint, open_input
from pipeline.delivery.score.model import ModelPayload, file_sha256, load_payload
from pipeline.delivery.score.output import prediction_schema, reject_schema
from pipeline.delivery.score.reading import batches
from pipeline.delivery.score.workers import Job, as_batch, read_span
from tests.score_support import demo_rows, fit_model, params_text

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("rows", "batch_rows", "workers", "group", "expected"),
    [
        (2_000, 300, 2, 170, 1),  # small input: one batch per span keeps both workers busy
        (10_000_000, 100_000, 2, 100_000, 10),  # capped at SPAN_MAX_ROWS
        (2_000_000, 100_000, 2, 1_048_576, 10),  # a span of about one row group, not a tenth of one
        (2_000_000, 100_000, 64, 10_000, 1),
        (50, 100_000, 2, 50, 1),
    ],
)
def test_a_span_is_whole_batches_within_bounds(
    rows: int, batch_rows: int, workers: int, group: int, expected: int
) -> None:
    per_span = span_batches(rows=rows, batch_rows=batch_rows, workers=workers, row_group_rows=group)
    assert per_span == expected
    assert per_span * batch_rows <= max(SPAN_MAX_ROWS, batch_rows)


def _job(params: Params, folder: Path, *, batch_rows: int, span_batches: int) -> Job:
    source = open_input(str(folder), params)
    id_type = source.schema.field("id").type
    return Job(
        spec=BatchSpec(params=params, info=ModelInfo(name="m", version="1", sha256="0" * 64)),
        files=tuple(str(Path(f).resolve()) for f in source.files),
        rows=tuple(int(n or 0) for n in source.rows),
        schema=source.schema,
        prediction_schema=prediction_schema(params, id_type),
        reject_schema=reject_schema(params, id_type),
        batch_rows=batch_rows,
        span_batches=span_batches,
        partial=str(folder),
        plugin="unused",
        log=False,
    )


def test_a_span_is_exactly_its_rows_as_the_local_engine_reads_them(tmp_path: Path, params: Params) -> None:
    frame = demo_rows(1000)
    (tmp_path / "in").mkdir()
    frame.iloc[:430].to_parquet(tmp_path / "in" / "a.parquet", index=False, row_group_size=70)
    frame.iloc[430:].to_parquet(tmp_path / "in" / "b.parquet", index=False, row_group_size=400)
    job = _job(params, tmp_path / "in", batch_rows=90, span_batches=2)
    spans = job.spans()
    assert spans[0] == (0, 180)
    assert spans[-1] == (900, 1000)
    assert sum(stop - start for start, stop in spans) == 1000
    local = list(batches(open_input(str(tmp_path / "in"), params), rows=90))
    for number, bounds in enumerate(spans):
        span = read_span(bounds, job=job)
        assert span["id"].tolist() == frame["id"].iloc[bounds[0] : bounds[1]].tolist()
        for k in range(2):
            index = number * 2 + k
            if index >= len(local):
                break
            piece = as_batch(span.iloc[k * 90 : (k + 1) * 90])
            pd.testing.assert_frame_equal(piece, plain_dtypes(local[index].to_pandas()))


def test_model_bytes_are_checked_before_they_are_loaded(tmp_path: Path, params: Params) -> None:
    path = fit_model(params, tmp_path / "model.skops", rows=300)
    info = ModelInfo(name="model.skops", version="file", sha256=file_sha256(path))
    content = path.read_bytes()
    model = load_payload(ModelPayload(info=info, source="file", files={"model.skops": content}))
    assert hasattr(model, "predict_proba")
    tampered = ModelPayload(info=info, source="file", files={"model.skops": content[:-4] + b"XXXX"})
    with pytest.raises(
        ScoreError, match=rf"the copy on this worker hashes to [0-9a-f]{{64}}, not the verified {info.sha256}"
    ):
        load_payload(tampered)
    escaping = ModelPayload(info=info, source="registry", files={"../outside": b"x"})
    with pytest.raises(ScoreError, match="leaves the model folder"):
        load_payload(escaping)


@pytest.fixture
def memory_input() -> Iterator[str]:
    fs = fsspec.filesystem("memory")
    root = "/score-test-input"
    frame = demo_rows(700, offset=100)
    for name, part in (("a.parquet", frame.iloc[:300]), ("b.parquet", frame.iloc[300:])):
        with fs.open(f"{root}/{name}", "wb") as fh:
            part.to_parquet(fh, index=False)
    with fs.open(f"{root}/_SUCCESS", "wb") as fh:
        fh.write(b"")
    try:
        yield f"memory://{root}"
    finally:
        fs.rm(root, recursive=True)


def test_an_input_named_by_url_is_checked_and_scored_like_a_local_one(
    memory_input: str, tmp_path: Path, params: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = open_input(memory_input, params)
    assert source.files == (f"{memory_input}/a.parquet", f"{memory_input}/b.parquet")
    assert source.rows == (300, 400)
    assert fingerprint(source.files) == fingerprint(open_input(f"{memory_input}/*.parquet", params).files)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(params_text(batch_rows=250), encoding="utf-8")
    fit_model(params, tmp_path / "model.skops", rows=300)
    demo_rows(700, offset=100).to_parquet(tmp_path / "in.parquet", index=False)
    for spec, output in ((memory_input, "remote"), ("in.parquet", "local")):
        result = CliRunner().invoke(app, ["score", "--model", "model.skops", "--input", spec, "--output", output])
        assert result.exit_code == 0, result.output
    remote, local = (pd.read_parquet(tmp_path / name / PREDICTIONS) for name in ("remote", "local"))
    pd.testing.assert_frame_equal(remote, local)
    np.testing.assert_array_equal(remote["id"], demo_rows(700, offset=100)["id"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("memory:///score-test-input/nothing-here.parquet", "not found"),
        ("memory:///score-test-input/*.csv", "matches no file"),
        ("nosuchprotocol://bucket/x.parquet", "cannot open its file system"),
    ],
)
def test_a_url_that_names_nothing_is_refused(memory_input: str, params: Params, spec: str, message: str) -> None:
    with pytest.raises(ScoreError, match=message):
        open_input(spec, params)
