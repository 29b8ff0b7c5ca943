"""The drift check fed straight from the prediction log: the log's association id becomes the id
column, and the report matches the one built from the same rows written as files.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core import predlog
from pipeline.core.config import Params
from pipeline.monitoring import drift
from tests.conftest import DEMO_PARAMS, REPO_ROOT

pytestmark = pytest.mark.unit

ROWS = 1500
DAY = 86400.0


def _records(
    frame: pd.DataFrame, params: Params, *, scores: np.ndarray, ts: float, roles: list[str]
) -> list[predlog.LogRecord]:
    features = list(params.data.features)
    return [
        predlog.record(
            association_id=str(row[params.base.id_column]),
            env="production",
            model_name="m",
            model_version="1",
            role=role,
            inputs={c: (float(row[c]) if c in params.data.numeric else str(row[c])) for c in features},
            score=float(score),
            latency_ms=1.0,
            ts=ts + i,
        )
        for i, ((_, row), score, role) in enumerate(zip(frame.iterrows(), scores, roles, strict=True))
    ]


def _log(path: Path, rows: list[predlog.LogRecord]) -> str:
    store = predlog.open_store(str(path))
    try:
        store.write(rows)
    finally:
        store.close()
    return str(path)


def test_batch_from_log_names_the_id_and_keeps_answers(params: Params, raw_frame: pd.DataFrame, tmp_path: Path) -> None:
    frame = raw_frame.iloc[:4]
    rows = _records(
        frame,
        params,
        scores=np.array([0.1, 0.2, 0.3, 0.4]),
        ts=1000.0,
        roles=["champion", "challenger", *["shadow"] * 2],
    )
    failed = predlog.record(
        association_id="failed", env="production", model_name="m", model_version="1", role="champion",
        inputs={}, score=None, latency_ms=1.0, error="boom", ts=2000.0,
    )  # fmt: skip
    log = predlog.read_log(url=_log(tmp_path / "log.db", [*rows, failed]))
    current, predictions = drift.batch_from_log(log=log, params=params)
    id_column, score_column = params.base.id_column, params.drift.prediction.score_column
    ids = frame[id_column].astype(str).tolist()[:2]
    assert current.columns.tolist() == [id_column, *params.data.features]
    assert current[id_column].tolist() == ids
    assert current["AGEP"].tolist() == frame["AGEP"].astype(float).tolist()[:2]
    assert predictions.columns.tolist() == [id_column, score_column]
    assert predictions[score_column].tolist() == [0.1, 0.2]


def test_cli_from_the_log_matches_the_files(
    params: Params, raw_frame: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(5)
    id_column, target, score_column = params.base.id_column, params.base.target, params.drift.prediction.score_column
    batch = raw_frame.iloc[:ROWS]
    y = batch[target].to_numpy()
    scores = np.clip(0.5 + (y - 0.5) * 0.5 + rng.normal(0, 0.2, ROWS), 0, 1)
    now = time.time()
    recent = _records(batch, params, scores=scores, ts=now - ROWS - 60, roles=["champion"] * ROWS)
    # Older than the window: left out by --since.
    stale = _records(
        raw_frame.iloc[ROWS : 2 * ROWS], params, scores=scores, ts=now - 10 * DAY, roles=["champion"] * ROWS
    )
    url = _log(tmp_path / "log.db", [*stale, *recent])
    labels = tmp_path / "labels.parquet"
    batch[[id_column, target]].to_parquet(labels, index=False)
    reference_predictions = tmp_path / "ref.parquet"
    pd.DataFrame({score_column: rng.permutation(scores)}).to_parquet(reference_predictions, index=False)
    baseline = tmp_path / "metrics.json"
    baseline.write_text(json.dumps({"roc_auc": 0.8, "accuracy": 0.75}), encoding="utf-8")
    current = tmp_path / "current.parquet"
    batch[[id_column, *params.data.features]].to_parquet(current, index=False)
    predictions = tmp_path / "predictions.parquet"
    pd.DataFrame({id_column: batch[id_column], score_column: scores}).to_parquet(predictions, index=False)

    monkeypatch.chdir(REPO_ROOT)
    common = [
        *("--labels", str(labels), "--reference-predictions", str(reference_predictions)),
        *("--baseline", str(baseline), "--no-plots"),
    ]
    from_log = CliRunner().invoke(
        app,
        [
            "drift",
            "--log-url",
            url,
            "--env",
            "production",
            "--since",
            "1d",
            "--out-dir",
            str(tmp_path / "log"),
            *common,
            *("--params", str(DEMO_PARAMS)),
        ],
    )
    from_files = CliRunner().invoke(
        app,
        [
            *("drift", "--current", str(current), "--predictions", str(predictions)),
            *("--out-dir", str(tmp_path / "files"), *common, "--params", str(DEMO_PARAMS)),
        ],
    )
    assert from_log.exit_code in (0, 1), from_log.output
    assert from_log.exit_code == from_files.exit_code
    report = json.loads((tmp_path / "log" / "drift.json").read_text(encoding="utf-8"))
    assert report["performance"]["overall"]["rows"] == ROWS
    assert report == json.loads((tmp_path / "files" / "drift.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "args",
    [
        ["--current", "batch.parquet", "--log-url", "log.db"],
        ["--log-url", "log.db", "--predictions", "p.parquet"],
        # Predictions belong to one batch: the newest production batch is never guessed for them.
        ["--predictions", "p.parquet"],
    ],
    ids=["both", "predictions-with-log", "predictions-without-batch"],
)
def test_cli_needs_one_source(args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    result = CliRunner().invoke(
        app, ["drift", "--out-dir", str(tmp_path), "--no-plots", *args, "--params", str(DEMO_PARAMS)]
    )
    assert result.exit_code == drift.EXIT_CODES[drift.NOT_ENOUGH_DATA]
    assert "give either --current" in result.output


def test_cli_missing_log_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    missing = str(tmp_path / "missing.db")
    result = CliRunner().invoke(
        app, ["drift", "--log-url", missing, "--out-dir", str(tmp_path), "--no-plots", "--params", str(DEMO_PARAMS)]
    )
    assert result.exit_code == drift.EXIT_CODES[drift.NOT_ENOUGH_DATA]
    assert "prediction log not found" in result.output


def test_cli_log_scores_outside_0_and_1_are_bad_input(
    params: Params, raw_frame: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = 600
    scores = np.full(rows, 0.5)
    # A broken model wrapper logging logits instead of probabilities.
    scores[:3] = [1.5, -0.25, 3.0]
    url = _log(
        tmp_path / "log.db",
        _records(raw_frame.iloc[:rows], params, scores=scores, ts=time.time() - 60, roles=["champion"] * rows),
    )
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "github_output"))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["drift", "--log-url", url, "--out-dir", str(out), "--exit-zero-on-verdict", "--params", str(DEMO_PARAMS)]
    )
    # Before: the scores went unchecked into the prediction-drift statistics.
    assert result.exit_code == drift.EXIT_CODES[drift.NOT_ENOUGH_DATA], result.output
    line = " ".join(result.output.split())
    score_column = params.drift.prediction.score_column
    assert f"prediction log {url}: column '{score_column}' must hold probabilities in [0, 1]; 3 of {rows} rows" in line
    assert not out.exists()
    assert not (tmp_path / "github_output").exists()
