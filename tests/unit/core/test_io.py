from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from pipeline.core import io
from pipeline.core.config import Params

pytestmark = pytest.mark.unit


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(b"")
    with pytest.raises(io.DataFileError, match="empty"):
        io.read_table(path)


def test_parquet_suffix_but_not_parquet(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_text("id,AGEP\n1,2\n")
    with pytest.raises(io.DataFileError, match="not a parquet file"):
        io.read_table(path)


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "x.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(io.DataFileError, match="unsupported file type"):
        io.read_table(path)


def test_csv_reads_like_parquet(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("id,AGEP,SEX\n1,30.0,1\n2,40.5,2\n")
    frame = io.read_table(path)
    assert frame["id"].dtype == "int64"
    assert frame["AGEP"].dtype == "float64"


def test_json_is_deterministic_and_strict(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    io.write_json({"b": 1.123456789, "a": math.nan, "c": Path("x/y")}, path)
    first = path.read_bytes()
    io.write_json({"c": Path("x/y"), "a": math.nan, "b": 1.123456789}, path)
    assert path.read_bytes() == first
    assert json.loads(first) == {"a": None, "b": 1.123457, "c": "x/y"}


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(io.ModelFileError, match="not found"):
        io.load_model(tmp_path / "model.skops")


def test_corrupt_model_file(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    path.write_bytes(b"definitely not a zip archive")
    with pytest.raises(io.ModelFileError, match="not a readable skops model"):
        io.load_model(path)


def test_model_round_trip_needs_no_extra_trust(tmp_path: Path, params: Params, raw_frame: pd.DataFrame) -> None:
    from pipeline.stages.train import build_pipeline

    frame = raw_frame.head(400)
    features = list(params.data.features)
    for spec in params.train.estimators.values():
        model = build_pipeline(data=params.data, spec=spec, seed=params.base.seed)
        model.fit(frame[features], frame[params.base.target])
        io.save_model(model, tmp_path / "m.skops")
        loaded = io.load_model(tmp_path / "m.skops")
        pd.testing.assert_series_equal(
            pd.Series(loaded.predict_proba(frame[features])[:, 1]),
            pd.Series(model.predict_proba(frame[features])[:, 1]),
        )


def test_the_same_model_always_has_the_same_bytes(tmp_path: Path, params: Params, raw_frame: pd.DataFrame) -> None:
    # skops names entries after memory addresses and stamps the time: dvc.lock would change on
    # every rerun. Saved twice, and saved again after a reload (new objects, new addresses).
    from pipeline.stages.train import build_pipeline

    frame = raw_frame.head(400)
    features = list(params.data.features)
    spec = next(iter(params.train.estimators.values()))
    model = build_pipeline(data=params.data, spec=spec, seed=params.base.seed)
    model.fit(frame[features], frame[params.base.target])
    io.save_model(model, tmp_path / "a.skops")
    io.save_model(model, tmp_path / "b.skops")
    io.save_model(io.load_model(tmp_path / "a.skops"), tmp_path / "c.skops")
    first = (tmp_path / "a.skops").read_bytes()
    assert (tmp_path / "b.skops").read_bytes() == first
    assert (tmp_path / "c.skops").read_bytes() == first


def test_a_shared_array_stays_shared_after_renumbering(tmp_path: Path) -> None:
    import numpy as np
    import skops.io as sio

    shared = np.arange(5.0)
    data = sio.dumps({"a": shared, "b": shared})
    (tmp_path / "m.skops").write_bytes(io.canonical_skops(data))
    loaded = sio.load(tmp_path / "m.skops", trusted=sio.get_untrusted_types(file=tmp_path / "m.skops"))
    assert loaded["a"] is loaded["b"]
    np.testing.assert_array_equal(loaded["a"], shared)
