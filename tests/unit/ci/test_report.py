"""The PR report rendered from fixed JSON inputs, checked against a golden markdown file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.ci import report
from pipeline.core.config import Params
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "report"
GOLDEN = FIXTURES / "pr_report.md"
# Set UPDATE_GOLDEN=1 to rewrite the golden file after an intended change, then review its diff.
UPDATE_ENV = "UPDATE_GOLDEN"


def _load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def _inputs() -> dict[str, Any]:
    return {
        "base": "0123abcd",
        "gate": _load("gate"),
        "smoke": _load("smoke"),
        "metrics": _load("metrics"),
        "fairness": _load("fairness"),
        "prepare": _load("prepare"),
        "validation": _load("validation"),
        "mlflow": report.mlflow_link(run=_load("run"), tracking_uri="sqlite:///mlflow.db"),
        "metrics_diff": _load("metrics_diff"),
        "params_diff": _load("params_diff"),
    }


def test_report_matches_golden_file(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    rendered = report.render(inputs=_inputs())
    if os.environ.get(UPDATE_ENV):
        GOLDEN.write_text(rendered, encoding="utf-8")
    assert rendered == GOLDEN.read_text(encoding="utf-8")


def test_verdict_comes_first() -> None:
    lines = report.render(inputs=_inputs()).splitlines()
    assert lines[0] == report.COMMENT_MARKER
    assert lines[3] == "## Verdict: gate FAILED"


def test_missing_gate_says_not_run() -> None:
    inputs = {**_inputs(), "gate": None}
    text = report.render(inputs=inputs)
    assert "## Verdict: gate NOT RUN" in text
    assert "| gate vs champion | not run |" in text


def test_first_model_is_named() -> None:
    gate = {**_load("gate"), "passed": True, "first_model": True, "reasons": [], "checks": [], "champion": None}
    gate["champion_source"] = {"kind": "none", "detail": "abc has no model yet"}
    text = report.render(inputs={**_inputs(), "gate": gate})
    assert "## Verdict: gate PASSED (first model)" in text
    assert "Champion: none: abc has no model yet." in text


def test_diff_failure_is_shown_not_raised() -> None:
    text = report.render(inputs={**_inputs(), "metrics_diff": "ERROR: unknown revision"})
    assert "Metrics diff against `0123abcd` unavailable: ERROR: unknown revision" in text


def test_mlflow_link_for_a_server_only() -> None:
    run = {"run_id": "abc", "experiment": "e"}
    assert report.mlflow_link(run=run, tracking_uri="http://mlflow:5000/")["url"] == "http://mlflow:5000/#/runs/abc"
    assert report.mlflow_link(run=run, tracking_uri="sqlite:///mlflow.db")["url"] is None
    assert report.mlflow_link(run=None, tracking_uri="sqlite:///mlflow.db") is None


def test_run_writes_file_and_job_summary(params: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reports = tmp_path / "reports"
    (reports / "validation").mkdir(parents=True)
    for name in ("gate", "smoke", "metrics", "fairness", "prepare", "run"):
        (reports / f"{name}.json").write_text((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    (reports / "validation" / "validation.json").write_text((FIXTURES / "validation.json").read_text())
    config = params.model_copy(update={"paths": params.paths.model_copy(update={"reports": reports})})
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv(report.SUMMARY_ENV, str(summary))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "pr_report.md"
    text = report.run(params=config, out=out, base=None)
    assert out.read_text(encoding="utf-8") == text
    assert summary.read_text(encoding="utf-8") == "earlier step\n" + text
    assert "No base revision given: no diff." in text


def test_report_command_writes_the_file(params: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml
    from typer.testing import CliRunner

    from pipeline.cli import app

    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "metrics.json").write_text((FIXTURES / "metrics.json").read_text(encoding="utf-8"))
    raw = yaml.safe_load((FIXTURES.parents[2] / "params.yaml").read_text(encoding="utf-8"))
    raw["paths"]["reports"] = str(reports)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    monkeypatch.delenv(report.SUMMARY_ENV, raising=False)
    out = tmp_path / "out.md"
    result = CliRunner().invoke(app, ["report", "--out", str(out), "--params", str(params_file)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert "## Verdict: gate NOT RUN" in text
    assert "Test split (1000 rows)" in text
