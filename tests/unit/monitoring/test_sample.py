"""Manual sampling from the prediction log: seeded shares, windows, and labels that come back
joined by id through the drift check.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core import predlog
from pipeline.core.config import Params
from pipeline.monitoring import sample
from pipeline.monitoring.drift import join_labels
from tests.conftest import demo_params_text

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0


def _write_log(path: Path, frame: pd.DataFrame, params: Params, *, roles: list[str] | None = None) -> None:
    store = predlog.open_store(str(path))
    features = list(params.data.features)
    rows = []
    for i, (_, row) in enumerate(frame.iterrows()):
        inputs = {c: (float(row[c]) if c in params.data.numeric else str(row[c])) for c in features}
        rows.append(
            predlog.record(
                association_id=str(row[params.base.id_column]),
                env="production",
                model_name="m",
                model_version="1",
                role=(roles[i] if roles else "champion"),
                inputs=inputs,
                score=0.1 + 0.8 * (i % 2),
                latency_ms=1.0,
                ts=NOW - 3600 * (len(frame) - i),
            )
        )
    store.write(rows)
    store.close()


@pytest.fixture
def log_path(tmp_path: Path, raw_frame: pd.DataFrame, params: Params) -> Path:
    path = tmp_path / "log.db"
    _write_log(path, raw_frame.iloc[:200], params)
    return path


def test_export_is_seeded_and_joins_labels_by_id(
    tmp_path: Path, log_path: Path, raw_frame: pd.DataFrame, params: Params
) -> None:
    out = tmp_path / "sample.csv"
    first = sample.export(params=params, out=out, share=0.25, seed=3, log_url=str(log_path), now=NOW)
    again = sample.export(params=params, out=tmp_path / "again.csv", share=0.25, seed=3, log_url=str(log_path), now=NOW)
    other = sample.export(params=params, out=tmp_path / "other.csv", share=0.25, seed=4, log_url=str(log_path), now=NOW)
    assert len(first) == 50
    assert first[params.base.id_column].tolist() == again[params.base.id_column].tolist()
    assert first[params.base.id_column].tolist() != other[params.base.id_column].tolist()
    written = pd.read_csv(out)
    assert {params.base.id_column, "score", *params.data.features} <= set(written.columns)
    # A person labels the rows: the labels file (id, target) joins the export by id.
    truth = raw_frame.set_index(params.base.id_column)[params.base.target]
    labels = pd.DataFrame({"id": written["id"], params.base.target: truth.loc[written["id"]].to_numpy()})
    joined = join_labels(
        predictions=written, labels=labels, id_column="id", target=params.base.target, score_column="score"
    )
    assert len(joined) == 50
    inputs = written.set_index("id")["AGEP"]
    assert np.allclose(inputs.to_numpy(), raw_frame.set_index("id").loc[inputs.index, "AGEP"].to_numpy())


def test_window_and_roles(tmp_path: Path, raw_frame: pd.DataFrame, params: Params) -> None:
    path = tmp_path / "log.db"
    _write_log(path, raw_frame.iloc[:10], params, roles=["champion", "shadow", "challenger", *["champion"] * 7])
    rows = sample.export(params=params, out=tmp_path / "s.csv", share=1.0, since="5h", log_url=str(path), now=NOW)
    assert len(rows) == 5
    assert set(rows["role"]) == {"champion"}
    every = sample.export(params=params, out=tmp_path / "a.csv", share=1.0, log_url=str(path), now=NOW)
    assert "shadow" not in set(every["role"])
    assert len(every) == 9


def test_parse_time() -> None:
    assert sample.parse_time(value="2d", now=NOW) == NOW - 2 * 86400
    assert sample.parse_time(value="2027-01-15", now=NOW) == pd.Timestamp("2027-01-15", tz="UTC").timestamp()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--share", "0"], "--share must be in (0, 1]"),
        (["--share", "1.5"], "--share must be in (0, 1]"),
        (["--share", "0.5", "--since", "yesterday"], "is neither an ISO date/time"),
        (["--share", "0.5", "--since", "1h", "--until", "2h"], "must be before --until"),
        (["--share", "0.5", "--env", "staging"], "no scored answers for env 'staging'"),
        (["--share", "0.5", "--log-url", "missing.db"], "prediction log not found"),
        (["--share", "0.5", "--out", "sample.parquet"], "give a path ending in .csv"),
    ],
)
def test_bad_input_is_refused(
    tmp_path: Path, log_path: Path, args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(demo_params_text(), encoding="utf-8")
    base = ["sample", "export", "--out", "sample.csv", "--log-url", str(log_path)]
    result = CliRunner().invoke(app, [*base, *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "sample.csv").exists()
    assert not (tmp_path / "sample.parquet").exists()


def test_cli_export(tmp_path: Path, log_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(demo_params_text(), encoding="utf-8")
    result = CliRunner().invoke(
        app, ["sample", "export", "--out", "s.csv", "--share", "0.1", "--seed", "1", "--log-url", str(log_path)]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 20 rows" in result.output


def test_unreadable_inputs_are_named(params: Params) -> None:
    log = pd.DataFrame(
        {
            "association_id": ["a"],
            "ts": [NOW],
            "env": ["production"],
            "model_version": ["1"],
            "role": ["champion"],
            "score": [0.4],
            "flags": [json.dumps([])],
            "inputs": ["{not json"],
        }
    )
    with pytest.raises(sample.SampleError, match="row 'a' has unreadable inputs"):
        sample.answers(log=log, id_column="id", features=params.data.features)


def test_export_never_reads_past_the_log_retention(tmp_path: Path, log_path: Path, params: Params) -> None:
    # The fixture logs one row an hour for 200 hours; a 2-day retention leaves the last 48.
    log = params.serve.log.model_copy(update={"retention_days": 2})
    short = params.model_copy(update={"serve": params.serve.model_copy(update={"log": log})})
    out = sample.export(params=short, out=tmp_path / "s.csv", share=1.0, seed=0, log_url=str(log_path), now=NOW)
    assert len(out) == 48
    everything = sample.export(
        params=params, out=tmp_path / "all.csv", share=1.0, seed=0, log_url=str(log_path), now=NOW
    )
    assert len(everything) == 200
