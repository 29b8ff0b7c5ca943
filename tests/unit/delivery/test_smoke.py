"""`pipeline smoke`: a good model passes; a missing, corrupt or slow model fails with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core.config import Params
from pipeline.delivery import smoke
from tests.conftest import REPO_ROOT, demo_params_text, quick_model_file

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def model_file(params: Params, raw_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A quick model of the real kind: what matters here is loading and output, not quality.
    return quick_model_file(
        params, raw_frame, tmp_path_factory.mktemp("model") / "model.skops", rows=2000, seed=params.base.seed
    )


def _params_file(tmp_path: Path, *, model: Path, **smoke_overrides: float) -> Path:
    """params.yaml with absolute paths, reports in tmp_path and optional smoke overrides."""
    raw = yaml.safe_load(demo_params_text())
    raw["data"]["raw"] = str(REPO_ROOT / raw["data"]["raw"])
    raw["paths"]["reports"] = str(tmp_path / "reports")
    raw["paths"]["model"] = str(model)
    raw["smoke"].update(smoke_overrides)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _smoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["smoke", *args])
    return result.exit_code, result.output


def test_good_model_passes(params: Params, model_file: Path, tmp_path: Path) -> None:
    code, output = _smoke("--params", str(_params_file(tmp_path, model=model_file)))
    assert code == 0, output
    written = json.loads((tmp_path / "reports" / smoke.SMOKE_REPORT).read_text())
    assert written["passed"]
    assert written["rows"] == params.smoke.rows
    assert written["single_row_ms"] <= params.smoke.max_single_row_ms


def test_model_option_overrides_params(model_file: Path, tmp_path: Path) -> None:
    params_file = _params_file(tmp_path, model=tmp_path / "absent.skops")
    code, output = _smoke("--params", str(params_file), "--model", str(model_file))
    assert code == 0, output


def test_missing_model_file_fails_clearly(tmp_path: Path) -> None:
    missing = tmp_path / "absent.skops"
    code, output = _smoke("--params", str(_params_file(tmp_path, model=missing)))
    assert code == 1
    assert f"{missing}: model file not found" in output
    assert "Traceback" not in output


def test_corrupt_model_file_fails_clearly(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.skops"
    corrupt.write_bytes(b"PK\x03\x04 this is not a model")
    code, output = _smoke("--params", str(_params_file(tmp_path, model=corrupt)))
    assert code == 1
    assert "not a readable skops model file" in output
    assert not (tmp_path / "reports" / smoke.SMOKE_REPORT).exists()


def test_slow_prediction_fails_with_the_bound(model_file: Path, tmp_path: Path) -> None:
    code, output = _smoke("--params", str(_params_file(tmp_path, model=model_file, max_single_row_ms=1e-6)))
    assert code == 1
    assert "one-row prediction took" in output
    assert not json.loads((tmp_path / "reports" / smoke.SMOKE_REPORT).read_text())["passed"]


def test_model_and_version_together_are_refused(model_file: Path) -> None:
    code, output = _smoke("--model", str(model_file), "--version", "1")
    assert code == 2
    assert "either --model or --version" in output


@pytest.mark.parametrize(
    ("proba", "rows", "problem"),
    [
        (np.full((3, 2), 0.5), 3, None),
        (np.full(3, 0.5), 3, "two probability columns"),
        (np.full((2, 2), 0.5), 3, "expected 3 rows"),
        (np.array([[0.5, np.nan]]), 1, "NaN"),
        (np.array([[-0.5, 1.5]]), 1, "outside [0, 1]"),
        (np.array([[0.2, 0.2]]), 1, "do not sum to 1"),
    ],
    ids=["good", "one-column", "short", "nan", "out-of-range", "not-summing"],
)
def test_output_problems(proba: np.ndarray, rows: int, problem: str | None) -> None:
    problems = smoke.output_problems(proba=proba, rows=rows)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems
