"""Retraining: window policy, joins, refusals that write nothing, the params edit, the PR body,
and the `retrain` command's exit codes.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core.config import Params, load_params
from pipeline.core.periods import discover_periods
from pipeline.monitoring import retrain
from tests.conftest import DEMO_PARAMS

pytestmark = pytest.mark.unit


def _period(frame: pd.DataFrame, *, directory: Path, name: str, target: str, labelled: bool = True) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    frame.drop(columns=[target]).to_parquet(directory / f"{name}_features.parquet", index=False)
    if labelled:
        frame[["id", target]].to_parquet(directory / f"{name}_labels.parquet", index=False)


@pytest.fixture
def project(tmp_path: Path, params: Params, raw_frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with params.yaml, a small reference and three periods (the newest unlabelled)."""
    target = params.base.target
    shutil.copy(DEMO_PARAMS, tmp_path / "params.yaml")
    reference_path = tmp_path / params.retrain.reference
    reference_path.parent.mkdir(parents=True)
    raw_frame.iloc[:2000].to_parquet(reference_path, index=False)
    production = tmp_path / params.retrain.production_dir
    for i, name in enumerate(["2016-01", "2016-02", "2016-03"]):
        rows = raw_frame.iloc[2000 + i * 3000 : 5000 + i * 3000]
        _period(rows, directory=production, name=name, target=target, labelled=name != "2016-03")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _with(params: Params, **changes: object) -> Params:
    return params.model_copy(update={"retrain": params.retrain.model_copy(update=changes)})


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_window_keeps_newest_labelled_periods(tmp_path: Path, params: Params) -> None:
    names = ["2016_features.parquet", "2016_labels.parquet", "2017_features.parquet", "2017_labels.parquet"]
    names += ["2018_features.parquet", "notes.txt"]
    periods = discover_periods(names=names, directory=tmp_path)
    assert [p.name for p in periods] == ["2016", "2017", "2018"]
    assert periods[2].labels is None
    kept, skipped = retrain.select_window(periods=periods, policy=params.retrain.model_copy(update={"max_periods": 1}))
    assert [p.name for p in kept] == ["2017"]
    assert [p.name for p in skipped] == ["2016"]


def test_plan_joins_labels_and_keeps_reference_columns(project: Path, params: Params) -> None:
    plan = retrain.plan(params=_with(params, min_labelled_rows=100))
    assert plan.periods == ("2016-01", "2016-02")
    assert plan.labelled_rows == 6000
    assert len(plan.frame) == 8000
    reference = pd.read_parquet(params.retrain.reference)
    assert list(plan.frame.columns) == list(reference.columns)
    assert plan.frame.dtypes.equals(reference.dtypes)


def test_too_few_labelled_rows_is_refused(project: Path, params: Params) -> None:
    before = _snapshot(project)
    with pytest.raises(retrain.RetrainRefused, match="only 6000 labelled production rows"):
        retrain.plan(params=_with(params, min_labelled_rows=6001))
    assert _snapshot(project) == before


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no_labels", "no labelled production period"),
        ("no_join", "no label id matches"),
        ("label_values", "must hold base.positive_label / base.negative_label (1 / 0), found ['7']"),
        ("label_columns", "labels need the columns"),
        ("id_clash", "repeats 3000 ids"),
        ("no_dir", "does not exist"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(project: Path, params: Params, damage: str, message: str) -> None:
    production = project / params.retrain.production_dir
    target = params.base.target
    labels = sorted(production.glob("*_labels.parquet"))
    if damage == "no_labels":
        for path in labels:
            path.unlink()
    elif damage == "no_join":
        frame = pd.read_parquet(labels[0])
        frame.assign(id=frame["id"] + 10**9).to_parquet(labels[0], index=False)
    elif damage == "label_values":
        pd.read_parquet(labels[0]).assign(**{target: 7}).to_parquet(labels[0], index=False)
    elif damage == "label_columns":
        pd.read_parquet(labels[0]).rename(columns={target: "label"}).to_parquet(labels[0], index=False)
    elif damage == "id_clash":
        shutil.copy(production / "2016-01_features.parquet", production / "2016-00_features.parquet")
        shutil.copy(labels[0], production / "2016-00_labels.parquet")
    else:
        shutil.rmtree(production)
    before = _snapshot(project)
    result = CliRunner().invoke(app, ["retrain"])
    assert result.exit_code == retrain.EXIT_CODES["bad input"], result.output
    assert message in result.output
    assert _snapshot(project) == before


def test_refusal_exit_code_and_github_output(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (project / "params.yaml").read_text(encoding="utf-8")
    # One more row than the fixture's two labelled periods hold.
    (project / "params.yaml").write_text(re.sub(r"(?m)^(\s+min_labelled_rows:).*$", r"\1 6001", text), encoding="utf-8")
    assert load_params(project / "params.yaml").retrain.min_labelled_rows == 6001
    output = project / "gh_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    result = CliRunner().invoke(app, ["retrain"])
    assert result.exit_code == retrain.EXIT_CODES[retrain.REFUSED], result.output
    assert "retraining refused" in result.output
    assert output.read_text(encoding="utf-8") == "status=refused\n"


def test_exit_zero_on_refusal_reports_refused_through_the_output(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (project / "params.yaml").read_text(encoding="utf-8")
    (project / "params.yaml").write_text(re.sub(r"(?m)^(\s+min_labelled_rows:).*$", r"\1 6001", text), encoding="utf-8")
    output = project / "gh_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    before = _snapshot(project)
    result = CliRunner().invoke(app, ["retrain", "--exit-zero-on-refusal"])
    assert result.exit_code == 0, result.output
    assert "retraining refused: only 6000 labelled production rows" in result.output
    assert output.read_text(encoding="utf-8") == "status=refused\n"
    output.unlink()
    assert _snapshot(project) == before


def test_exit_zero_on_refusal_still_fails_on_bad_input(
    project: Path, params: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.rmtree(project / params.retrain.production_dir)
    monkeypatch.setenv("GITHUB_OUTPUT", str(project / "gh_output"))
    result = CliRunner().invoke(app, ["retrain", "--exit-zero-on-refusal"])
    assert result.exit_code == retrain.EXIT_CODES["bad input"], result.output
    assert "does not exist" in result.output
    assert not (project / "gh_output").exists()


def test_set_raw_path_edits_only_that_key() -> None:
    text = "base:\n  raw: keep\ndata:\n  raw: data/raw/a.parquet  # note\n  sample_rows: 0\nother:\n  raw: keep\n"
    edited = retrain.set_raw_path(text=text, path="data/raw/b.parquet")
    assert edited == text.replace("data/raw/a.parquet", "data/raw/b.parquet")
    with pytest.raises(retrain.RetrainInputError, match=r"no `data\.raw` key"):
        retrain.set_raw_path(text="data:\n  sample_rows: 0\n", path="x")


def test_content_name_is_stable_and_content_addressed(raw_frame: pd.DataFrame) -> None:
    a = retrain.content_name(raw_frame.iloc[:100])
    assert a == retrain.content_name(raw_frame.iloc[:100].copy())
    assert a != retrain.content_name(raw_frame.iloc[1:101])
    assert a.startswith("retrain-")
    assert a.endswith(".parquet")


def test_pr_body_explains_why_what_and_verdict(params: Params) -> None:
    drift = {
        "verdict": "drift",
        "data_drift": {
            "drifted_features": ["AGEP"],
            "features": {"AGEP": {"effect_name": "normalised_wasserstein", "effect": 0.31, "effect_threshold": 0.1}},
            "unseen_categories": {"ANC": {"9": 12}},
        },
        "prediction_drift": None,
        "performance": {
            "baseline": {"roc_auc": 0.9},
            "max_drop": 0.03,
            "overall": {"roc_auc": 0.8, "degraded": ["roc_auc"]},
            "periods": {"2018": {"verdict": "drift", "degraded": ["roc_auc"]}},
        },
    }
    gate = {
        "passed": True,
        "summary": "candidate within the margins",
        "reasons": [],
        "champion_source": {"kind": "registry", "version": "1"},
        "candidate": {
            "metrics": {"roc_auc": 0.91, "rows": 10},
            "fairness": {"features": {"SEX": {"differences": {"demographic_parity": 0.05}, "thresholds": {}}}},
        },
        "champion": {"metrics": {"roc_auc": 0.85}, "fairness": {"features": {}}},
        "deltas": {"metrics": {"roc_auc": 0.06}},
    }
    source = retrain.Source("reference", "data/raw/r.parquet", 10, "abc")
    body = retrain.pr_body(
        drift=drift,
        sources=[source],
        previous=source,
        new=retrain.Source("new", "data/raw/retrain-x.parquet", 20, "def"),
        policy=params.retrain,
        skipped=["2015-12"],
        gate=gate,
    )
    for expected in (
        "## Why",
        "`AGEP`",
        "`9` (12 rows)",
        "roc_auc 0.8000 against the champion's 0.9000",
        "Period 2018",
        "data/raw/retrain-x.parquet",
        "| 20 |",
        "Gate **passed**",
        "version 1",
        "| roc_auc | 0.9100 | 0.8500 | +0.0600 |",
        "SEX demographic_parity",
        "2015-12",
    ):
        assert expected in body, expected
    assert "rows |" not in body.split("## New model")[1].split("| metric")[1].split("\n")[2]
