"""`pipeline score --engine dask` with no scheduler named: a local cluster sized to the machine is
started for the run and stopped after it, and the output is the local engine's.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core.config import Params
from pipeline.delivery.score import MANIFEST, PREDICTIONS
from pipeline.delivery.score import cluster as dask_cluster
from tests.score_support import demo_rows, fit_model, params_text

pytestmark = pytest.mark.e2e


def test_without_a_scheduler_a_local_cluster_runs_the_job(
    params: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(dask_cluster.SCHEDULER_ENV, raising=False)
    (tmp_path / "params.yaml").write_text(params_text(batch_rows=150, engine="dask"), encoding="utf-8")
    fit_model(params, tmp_path / "model.skops", rows=500)
    demo_rows(600, offset=40_000).to_parquet(tmp_path / "in.parquet", index=False)
    runner = CliRunner()
    base = ["score", "--model", "model.skops", "--input", "in.parquet"]
    result = runner.invoke(app, [*base, "--output", "dask"])
    assert result.exit_code == 0, result.output
    assert f"starting a local Dask cluster: {dask_cluster.machine_workers()} worker processes" in caplog.text
    assert json.loads((tmp_path / "dask" / MANIFEST).read_text(encoding="utf-8"))["engine"] == "dask"
    # Stopped with the run: no worker process outlives it.
    assert not multiprocessing.active_children()
    result = runner.invoke(app, [*base, "--output", "local", "--engine", "local"])
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "local" / PREDICTIONS), pd.read_parquet(tmp_path / "dask" / PREDICTIONS)
    )
