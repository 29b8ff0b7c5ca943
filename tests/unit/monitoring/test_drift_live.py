"""`pipeline drift` from the prediction log: the window of params drift.window for drift.env, the
labels that have arrived joined by association id, performance per period (the week of the
prediction, or a logged period column) and per sensitive group with the label coverage; proxy
monitoring without any label; retention never crossed; no production data at all exits 3.
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
from pipeline.monitoring.drift.live import period_of
from pipeline.monitoring.drift.quality import EXIT_NO_DATA
from tests import live_support as live
from tests.conftest import DEMO_PARAMS, REPO_ROOT

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z, a Friday
DAY = live.DAY
ROWS = 1200


@pytest.fixture(autouse=True)
def _no_live_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own log or remote must not leak into these runs.
    for name in ("PREDICTION_LOG_URL", "DVC_REMOTE_URL", "GITHUB_OUTPUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(REPO_ROOT)


@pytest.fixture(scope="module")
def month(params: Params) -> pd.DataFrame:
    return live.demo_month(REPO_ROOT, params, year=2016, rows=ROWS, seed=4)


@pytest.fixture
def files(tmp_path: Path, params: Params) -> dict[str, Path]:
    """Reference scores and a champion baseline, so the check needs no model file."""
    rng = np.random.default_rng(0)
    reference = tmp_path / "reference_scores.parquet"
    pd.DataFrame({params.drift.prediction.score_column: rng.beta(2, 2, 4000)}).to_parquet(reference, index=False)
    baseline = tmp_path / "metrics.json"
    baseline.write_text(json.dumps({"roc_auc": 0.9, "accuracy": 0.8}), encoding="utf-8")
    return {"reference": reference, "baseline": baseline}


def _log(
    tmp_path: Path, params: Params, frame: pd.DataFrame, *, start: float, end: float, env: str = "production"
) -> str:
    url = str(tmp_path / "log.db")
    times = live.spread(start=start, end=end, count=len(frame))
    return live.write_log(
        url, live.answers(frame, params, times=times, scores=live.scores_for(frame, params, seed=1), env=env)
    )


def _check(params: Params, url: str, files: dict[str, Path], out: Path, **kwargs: object) -> dict[str, object]:
    return drift.run(
        params=params,
        log_url=url,
        out_dir=out,
        plots=False,
        reference_predictions_path=files["reference"],
        baseline_path=files["baseline"],
        now=NOW,
        **kwargs,  # type: ignore[arg-type]
    )


def _with_drift(params: Params, **changes: object) -> Params:
    return params.model_copy(update={"drift": params.drift.model_copy(update=changes)})


def test_periods_are_the_day_week_or_month_of_the_prediction() -> None:
    ts = pd.Series([NOW, NOW - 5 * DAY, NOW - 40 * DAY])
    assert period_of(ts=ts, unit="day").tolist() == ["2027-01-15", "2027-01-10", "2026-12-06"]
    assert period_of(ts=ts, unit="week").tolist() == ["2027-W02", "2027-W01", "2026-W49"]
    assert period_of(ts=ts, unit="month").tolist() == ["2027-01", "2027-01", "2026-12"]


def test_window_joins_arrived_labels_per_period_and_group_with_coverage(
    params: Params, month: pd.DataFrame, tmp_path: Path, files: dict[str, Path]
) -> None:
    url = _log(tmp_path, params, month, start=NOW - 21 * DAY, end=NOW - 60)
    labelled = month.iloc[: ROWS // 2]
    predlog.write_labels(
        url=url, records=live.labels(labelled, params, observed=NOW - 3600), duplicates="refuse", now=NOW
    )
    # Periods of a few hundred rows are judged at this size.
    summary = _check(_with_drift(params, window="30d", min_rows=100), url, files, tmp_path / "out")
    labels = summary["labels"]
    assert (labels["env"], labels["predicted"], labels["labelled"]) == ("production", ROWS, ROWS // 2)
    assert labels["coverage"] == pytest.approx(0.5)
    perf = summary["performance"]
    assert perf["overall"]["rows"] == ROWS // 2
    assert perf["overall"]["predicted"] == ROWS
    # Three weeks of predictions over four ISO weeks (2026 has 53); the labelled half is the
    # older half, so the newest week has none.
    weeks = perf["periods"]
    assert list(weeks) == ["2026-W52", "2026-W53", "2027-W01", "2027-W02"]
    assert sum(w["predicted"] for w in weeks.values()) == ROWS
    assert sum(w["rows"] for w in weeks.values()) == ROWS // 2
    newest = weeks[max(weeks)]
    assert newest["rows"] == 0
    assert newest["coverage"] == 0.0
    assert newest["verdict"] == drift.NOT_ENOUGH_DATA
    assert weeks[min(weeks)]["coverage"] == 1.0
    assert weeks[min(weeks)]["roc_auc"] > 0.8
    sex = perf["groups"]["SEX"]
    assert set(sex) == {"male", "female"}
    assert sum(g["rows"] for g in sex.values()) == ROWS // 2
    assert sum(g["predicted"] for g in sex.values()) == ROWS
    markdown = (tmp_path / "out" / "drift.md").read_text(encoding="utf-8")
    assert f"- Labels: {ROWS // 2} of {ROWS} answers of env `production` labelled (50.0%)" in markdown
    assert f"| overall | {ROWS // 2} of {ROWS} (50.0%) |" in markdown


def test_the_default_window_is_params_drift_window(
    params: Params, month: pd.DataFrame, tmp_path: Path, files: dict[str, Path]
) -> None:
    url = _log(tmp_path, params, month, start=NOW - 14 * DAY, end=NOW)
    summary = _check(params, url, files, tmp_path / "out")
    assert params.drift.window == "7d"
    # Evenly spread over 14 days: the last 7 hold half of them.
    assert summary["labels"]["predicted"] == ROWS // 2
    assert summary["labels"]["since"] == predlog.iso(NOW - 7 * DAY)


def test_without_labels_only_the_proxy_checks_run(
    params: Params, month: pd.DataFrame, tmp_path: Path, files: dict[str, Path]
) -> None:
    url = _log(tmp_path, params, month, start=NOW - 6 * DAY, end=NOW)
    summary = _check(params, url, files, tmp_path / "out")
    assert summary["performance"] is None
    assert summary["prediction_drift"]["rows_current"] == ROWS
    assert summary["prediction_drift"]["verdict"] in (drift.DRIFT, drift.NO_DRIFT)
    assert summary["labels"]["labelled"] == 0
    assert summary["labels"]["coverage"] == 0.0
    assert sum(p["predicted"] for p in summary["labels"]["periods"].values()) == ROWS
    markdown = (tmp_path / "out" / "drift.md").read_text(encoding="utf-8")
    assert "## Labels" in markdown
    assert "## Performance" not in markdown


def test_only_drift_env_is_read_unless_env_says_otherwise(
    params: Params, month: pd.DataFrame, tmp_path: Path, files: dict[str, Path]
) -> None:
    url = str(tmp_path / "log.db")
    half = ROWS // 2
    times = live.spread(start=NOW - 5 * DAY, end=NOW, count=ROWS)
    scores = live.scores_for(month, params, seed=2)
    live.write_log(url, live.answers(month.iloc[:half], params, times=times[:half], scores=scores[:half]))
    live.write_log(
        url, live.answers(month.iloc[half:], params, times=times[half:], scores=scores[half:], env="staging")
    )
    assert _check(params, url, files, tmp_path / "a")["labels"]["predicted"] == half
    staging = _check(params, url, files, tmp_path / "b", env="staging")
    assert (staging["labels"]["env"], staging["labels"]["predicted"]) == ("staging", ROWS - half)


def test_a_logged_period_column_wins_over_the_prediction_time(
    params: Params, month: pd.DataFrame, tmp_path: Path, files: dict[str, Path]
) -> None:
    url = _log(tmp_path, params, month, start=NOW - 5 * DAY, end=NOW)
    predlog.write_labels(url=url, records=live.labels(month, params, observed=NOW - 60), duplicates="refuse", now=NOW)
    # A declared column the service logs stands in for a period column here.
    performance = params.drift.performance.model_copy(update={"period_column": "SEX"})
    summary = _check(_with_drift(params, performance=performance), url, files, tmp_path / "out")
    assert summary["labels"]["period_column"] == "SEX"
    assert set(summary["performance"]["periods"]) == {"1", "2"}


def test_no_window_reads_past_the_retention(
    params: Params, month: pd.DataFrame, tmp_path: Path, files: dict[str, Path]
) -> None:
    days = params.serve.log.retention_days
    old, recent = month.iloc[:600], month.iloc[600:]
    url = str(tmp_path / "log.db")
    scores = live.scores_for(month, params, seed=3)
    live.write_log(url, live.answers(old, params, times=[NOW - (days + 10) * DAY] * len(old), scores=scores[:600]))
    live.write_log(url, live.answers(recent, params, times=[NOW - 2 * DAY] * len(recent), scores=scores[600:]))
    summary = _check(params, url, files, tmp_path / "out", since="400d")
    assert summary["labels"]["predicted"] == len(recent)
    assert summary["labels"]["since"] == predlog.iso(NOW - days * DAY)


def test_cli_reads_prediction_log_url_and_current_still_wins(
    params: Params, month: pd.DataFrame, tmp_path: Path, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    url = _log(tmp_path, params, month, start=now - 3 * DAY, end=now - 60)
    monkeypatch.setenv("PREDICTION_LOG_URL", url)
    common = ["--no-plots", "--exit-zero-on-verdict", "--params", str(DEMO_PARAMS)]
    common += ["--reference-predictions", str(files["reference"]), "--baseline", str(files["baseline"])]
    result = CliRunner().invoke(app, ["drift", "--out-dir", str(tmp_path / "log"), *common])
    assert result.exit_code == 0, result.output
    assert "current batch:" not in result.output
    assert json.loads((tmp_path / "log" / "drift.json").read_text(encoding="utf-8"))["labels"]["predicted"] == ROWS
    batch = tmp_path / "batch.parquet"
    month.drop(columns=[params.base.target]).iloc[:700].to_parquet(batch, index=False)
    result = CliRunner().invoke(app, ["drift", "--current", str(batch), "--out-dir", str(tmp_path / "file"), *common])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "file" / "drift.json").read_text(encoding="utf-8"))
    assert "labels" not in report
    assert report["data_drift"]["features"]["AGEP"]["rows_current"] == 700


@pytest.mark.parametrize("case", ["empty window", "other env only"])
@pytest.mark.parametrize("exit_zero", [False, True], ids=["plain", "exit-zero-on-verdict"])
def test_no_answer_in_the_window_is_no_production_data(
    params: Params, month: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, exit_zero: bool
) -> None:
    now = time.time()
    if case == "empty window":
        url = _log(tmp_path, params, month.iloc[:50], start=now - 30 * DAY, end=now - 20 * DAY)
    else:
        url = _log(tmp_path, params, month.iloc[:50], start=now - DAY, end=now, env="staging")
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            *("drift", "--log-url", url, "--out-dir", str(out), "--params", str(DEMO_PARAMS)),
            *(["--exit-zero-on-verdict"] if exit_zero else []),
        ],
    )
    assert result.exit_code == (0 if exit_zero else EXIT_NO_DATA), result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "no production data: prediction log" in lines[0]
    assert "no scored answer for env 'production'" in lines[0]
    assert not out.exists()
    assert output.read_text(encoding="utf-8").startswith("drift=false\nverdict=no data\nreason=")


def test_a_reference_tracked_by_dvc_is_pulled_when_the_checkout_lacks_it(
    params: Params,
    raw_frame: pd.DataFrame,
    month: pd.DataFrame,
    tmp_path: Path,
    files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # After a retraining merged, data.raw is in the DVC remote and only its pointer is in git.
    project, remote = tmp_path / "project", tmp_path / "remote"
    project.mkdir()
    remote.mkdir()
    live.git_dvc_project(project, remote=remote)
    table = Path("data/raw/retrain-abc.parquet")
    (project / table).parent.mkdir(parents=True)
    raw_frame.iloc[:3000].to_parquet(project / table, index=False)
    live.must([str(live.BIN / "dvc"), "add", "-q", table.as_posix()], project)
    live.must([str(live.BIN / "dvc"), "push", "-q"], project)
    (project / table).unlink()
    url = _log(tmp_path, params, month, start=NOW - 5 * DAY, end=NOW)
    monkeypatch.chdir(project)
    retrained = params.model_copy(update={"data": params.data.model_copy(update={"raw": table})})
    summary = _check(retrained, url, files, tmp_path / "out")
    assert (project / table).is_file()
    assert summary["data_drift"]["features"]["AGEP"]["rows_reference"] == 3000
