"""Without --current, `pipeline drift` checks the newest production batch by name (the policy the
retraining window uses); --current still wins; the Makefile and the drift workflow name no file.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core import periods
from pipeline.core.config import Params
from pipeline.monitoring.drift.check import default_batch
from pipeline.monitoring.drift.quality import EXIT_NO_DATA, NoProductionData
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


def _with_production(params: Params, directory: Path) -> Params:
    return params.model_copy(update={"retrain": params.retrain.model_copy(update={"production_dir": directory})})


def test_newest_batch_is_the_last_features_file_by_name(tmp_path: Path) -> None:
    for name in ("2024-02_features.parquet", "2024-10_features.parquet", "2024-11_labels.parquet", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "2025-01_features.parquet").mkdir()  # a folder is not a batch
    assert periods.newest_batch(tmp_path) == tmp_path / "2024-10_features.parquet"
    assert [p.name for p in periods.periods_in(tmp_path)] == ["2024-02", "2024-10"]
    assert periods.newest_batch(tmp_path / "missing") is None
    assert periods.periods_in(tmp_path / "missing") == []


def test_default_batch_refuses_an_empty_folder_naming_it(params: Params, tmp_path: Path) -> None:
    (tmp_path / "2024-01_labels.parquet").write_bytes(b"")
    with pytest.raises(NoProductionData) as caught:
        default_batch(params=_with_production(params, tmp_path))
    assert str(caught.value) == (
        f"{tmp_path}: no production batch (<period>_features.parquet) to check; give --current or --log-url, "
        "or set PREDICTION_LOG_URL"
    )


@pytest.fixture
def production(params: Params, tmp_path: Path) -> Path:
    """Two batches: the older quiet, the newer with a category the reference never had."""
    from pipeline.monitoring.simulate import simulate

    reference = pd.read_parquet(REPO_ROOT / params.data.raw)
    directory = tmp_path / "production"
    directory.mkdir()
    simulate(reference=reference, kind="none", params=params, seed=2).to_parquet(
        directory / "2024-01_features.parquet", index=False
    )
    simulate(reference=reference, kind="new_category", params=params, seed=1).to_parquet(
        directory / "2024-02_features.parquet", index=False
    )
    return directory


def _invoke(params: Params, args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setattr("pipeline.core.config.load_params", lambda _path: params)
    result = CliRunner().invoke(app, ["drift", "--no-plots", "--exit-zero-on-verdict", *args])
    return result.exit_code, result.output


def test_drift_without_current_checks_the_newest_batch_and_says_which(
    params: Params, production: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "report"
    code, output = _invoke(_with_production(params, production), ["--out-dir", str(out)], monkeypatch)
    assert code == 0, output
    newest = production / "2024-02_features.parquet"
    assert f"current batch: {newest} (newest in params retrain.production_dir)" in output
    report = json.loads((out / "drift.json").read_text(encoding="utf-8"))
    assert params.simulate.new_category.column in report["data_drift"]["drifted_features"]


def test_current_still_wins(params: Params, production: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "report"
    older = production / "2024-01_features.parquet"
    code, output = _invoke(
        _with_production(params, production), ["--current", str(older), "--out-dir", str(out)], monkeypatch
    )
    assert code == 0, output
    assert "current batch:" not in output
    report = json.loads((out / "drift.json").read_text(encoding="utf-8"))
    assert params.simulate.new_category.column not in report["data_drift"]["drifted_features"]


@pytest.mark.parametrize("folder", ["empty", "missing"])
@pytest.mark.parametrize("exit_zero", [False, True], ids=["plain", "exit-zero-on-verdict"])
def test_no_production_data_is_one_line_and_the_output(
    params: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str, exit_zero: bool
) -> None:
    # A team without shipped production files and without a prediction log: an alert, not a red job.
    production = tmp_path / "production"
    if folder == "empty":
        production.mkdir()
    out = tmp_path / "report"
    monkeypatch.delenv("PREDICTION_LOG_URL", raising=False)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "github_output"))
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setattr("pipeline.core.config.load_params", lambda _path: _with_production(params, production))
    args = ["drift", "--no-plots", "--out-dir", str(out), *(["--exit-zero-on-verdict"] if exit_zero else [])]
    result = CliRunner().invoke(app, args)
    # Exit 3 on its own; with --exit-zero-on-verdict the workflow reads verdict=no data instead.
    assert result.exit_code == (0 if exit_zero else EXIT_NO_DATA), result.output
    assert EXIT_NO_DATA == 3
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "no production data: " in lines[0]
    assert "no production batch (<period>_features.parquet) to check" in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()
    written = (tmp_path / "github_output").read_text(encoding="utf-8").splitlines()
    assert written[:2] == ["drift=false", "verdict=no data"]
    assert written[2].startswith("reason=")


def _make_drift_check(*variables: str) -> str:
    result = subprocess.run(
        ["make", "-n", "-o", "env", "drift-check", "BIN=bin", *variables],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_makefile_passes_current_only_when_set() -> None:
    assert _make_drift_check() == "bin/pipeline drift  --exit-zero-on-verdict"
    assert _make_drift_check("DRIFT_CURRENT=") == "bin/pipeline drift  --exit-zero-on-verdict"
    assert (
        _make_drift_check("DRIFT_CURRENT=b.parquet")
        == 'bin/pipeline drift --current "b.parquet" --exit-zero-on-verdict'
    )


def test_drift_workflow_step_is_one_make_command_naming_no_file() -> None:
    text = (REPO_ROOT / ".github" / "workflows" / "drift.yml").read_text(encoding="utf-8")
    workflow = yaml.safe_load(text)
    step = next(s for s in workflow["jobs"]["check"]["steps"] if s.get("id") == "drift")
    assert step["run"] == "make drift-check"
    assert "_features.parquet" not in text
