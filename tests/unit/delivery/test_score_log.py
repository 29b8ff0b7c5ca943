"""`pipeline score --log`: every scored row appended to the prediction log as environment `batch`
(association id = the row's id, the model's version, the row's declared columns as the service
logs them), read back by the drift check like served traffic; an unusable log refused first.
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
from pipeline.delivery.score import PREDICTIONS
from pipeline.delivery.score.batch import canonical
from pipeline.delivery.score.prediction_log import BATCH_ENV, WRITE_ROWS
from tests.conftest import DEMO_PARAMS, REPO_ROOT
from tests.score_support import demo_rows, fit_model, params_text

pytestmark = pytest.mark.unit

ROWS = 900
BATCH = 400
BAD = (10, 650)


@pytest.fixture(scope="module")
def model_file(params: Params, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fit_model(params, tmp_path_factory.mktemp("model") / "model.skops")


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_file: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(predlog.LOG_URL_ENV, raising=False)
    (tmp_path / "params.yaml").write_text(params_text(batch_rows=BATCH), encoding="utf-8")
    (tmp_path / "model.skops").write_bytes(model_file.read_bytes())
    frame = demo_rows(ROWS)
    frame.loc[BAD[0], "AGEP"] = 130.0
    frame.loc[BAD[1], "RAC1P"] = "0"
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    return tmp_path


def _score(*args: str, output: str = "out") -> tuple[int, str]:
    base = ["score", "--model", "model.skops", "--input", "in.parquet", "--output", output, "--no-rejects-fail"]
    result = CliRunner().invoke(app, [*base, *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def _batch_rows(url: str) -> pd.DataFrame:
    return predlog.read_log(url=url, env=BATCH_ENV)


def test_each_scored_row_is_logged_as_a_batch_answer(ws: Path, params: Params) -> None:
    url = f"sqlite:///{ws / 'log.db'}"
    code, output = _score("--log", "--log-url", url)
    assert code == 0, output
    logged = _batch_rows(url)
    predictions = pd.read_parquet(ws / "out" / PREDICTIONS)
    assert len(logged) == len(predictions) == ROWS - len(BAD)
    assert logged["association_id"].tolist() == predictions["id"].astype(str).tolist()
    np.testing.assert_array_equal(logged["score"].to_numpy(), predictions["score"].to_numpy())
    assert set(logged["env"]) == {"batch"}
    assert set(logged["role"]) == {"champion"}
    assert set(logged["model_name"]) == {"model.skops"}
    assert set(logged["model_version"]) == {"file"}
    assert logged["error"].isna().all()
    assert logged["ts"].nunique() == 1  # the run's start, on every row
    # The inputs are the row's declared columns in canonical form, exactly what was scored.
    kept = demo_rows(ROWS).drop(index=list(BAD)).reset_index(drop=True)
    expected = canonical(kept, params)[list(params.data.columns)]
    inputs = pd.DataFrame([json.loads(text) for text in logged["inputs"]])[list(params.data.columns)]
    for column in params.data.numeric:
        np.testing.assert_array_equal(inputs[column].astype("float64"), expected[column].to_numpy())
    for column in params.data.categorical:
        assert inputs[column].tolist() == expected[column].tolist()
    manifest = json.loads((ws / "out" / "_SUCCESS.json").read_text(encoding="utf-8"))
    assert manifest["log"] == {"env": "batch", "rows": ROWS - len(BAD)}


def test_the_log_comes_from_params_and_the_environment(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (ws / "params.yaml").write_text(params_text(batch_rows=BATCH, log="true"), encoding="utf-8")
    url = str(ws / "from-env.db")
    monkeypatch.setenv(predlog.LOG_URL_ENV, url)
    code, output = _score()
    assert code == 0, output
    assert len(_batch_rows(url)) == ROWS - len(BAD)
    # --no-log wins over params.
    code, output = _score("--no-log", "--force", output="unlogged")
    assert code == 0, output
    assert len(_batch_rows(url)) == ROWS - len(BAD)


def test_a_rerun_logs_once(ws: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = str(ws / "log.db")
    assert _score()[0] == 0
    parts = {p.name: p.read_bytes() for p in (ws / "out" / PREDICTIONS).iterdir()}
    # The output is complete but was never logged: asking for the log scores it again.
    code, output = _score("--log", "--log-url", url)
    assert code == 0, output
    assert "its rows were never logged" in caplog.text
    assert {p.name: p.read_bytes() for p in (ws / "out" / PREDICTIONS).iterdir()} == parts
    assert len(_batch_rows(url)) == ROWS - len(BAD)
    # Logged once: the same run again is a no-op, with or without --log.
    for extra in (("--log", "--log-url", url), ()):
        code, output = _score(*extra)
        assert code == 0
        assert "already complete, nothing written" in output
    assert len(_batch_rows(url)) == ROWS - len(BAD)


def test_a_large_batch_is_written_in_several_transactions(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.delivery.score import prediction_log

    monkeypatch.setattr(prediction_log, "WRITE_ROWS", 100)
    writes: list[int] = []
    original = predlog.SqliteStore.write

    def counting(self: predlog.SqliteStore, rows: list[predlog.LogRecord]) -> None:
        writes.append(len(rows))
        original(self, rows)

    monkeypatch.setattr(predlog.SqliteStore, "write", counting)
    assert _score("--log", "--log-url", str(ws / "log.db"))[0] == 0
    assert max(writes) == 100
    assert sum(writes) == ROWS - len(BAD)
    assert WRITE_ROWS >= 1000  # the shipped transaction size: a batch of 100k rows in 10+ commits


def test_the_drift_check_reads_batch_traffic(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = str(ws / "log.db")
    assert _score("--log", "--log-url", url)[0] == 0
    monkeypatch.chdir(REPO_ROOT)
    out = ws / "drift"
    # The reference's scores from the scored output itself: a clean clone has no trained model to
    # score the reference with, and the check must not depend on one.
    reference_scores = ws / "reference_scores.parquet"
    pd.read_parquet(ws / "out" / PREDICTIONS)[["score"]].to_parquet(reference_scores)
    args = ["drift", "--log-url", url, "--env", "batch", "--out-dir", str(out), "--no-plots", "--exit-zero-on-verdict"]
    args += ["--reference-predictions", str(reference_scores)]
    result = CliRunner().invoke(app, [*args, "--params", str(DEMO_PARAMS)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "drift.json").read_text(encoding="utf-8"))
    assert summary["labels"]["env"] == "batch"
    assert summary["prediction_drift"]["rows_current"] == ROWS - len(BAD)
    assert summary["verdict"] in {"no drift", "drift"}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://user:secret@db/log", "unsupported prediction log URL"),
        ("{ws}/a-file/log.db", "cannot open the prediction log"),
    ],
    ids=["unsupported-url", "unopenable-path"],
)
def test_an_unusable_log_is_refused_before_anything_is_written(ws: Path, url: str, message: str) -> None:
    (ws / "a-file").write_text("not a folder", encoding="utf-8")
    code, output = _score("--log", "--log-url", url.format(ws=ws))
    assert code == 2, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert message in errors[0]
    assert "secret" not in output
    assert not (ws / "out").exists()
    assert not list(ws.glob(".out.*"))
