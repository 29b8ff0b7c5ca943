"""A champion fitted on other input columns (a retargeted fork's first pull request): the gate
names the difference and follows gate.incomparable_champion, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.ci import floors, gate, report
from pipeline.core import io
from pipeline.core.config import Params

pytestmark = pytest.mark.unit

HOLDOUT_ROWS = 1500
# The champion's own table: one column shared with the candidate, one the candidate never had.
CHAMPION_COLUMNS = ["AGEP", "tenure_months"]


def _tiny_candidate(params: Params, frame: pd.DataFrame, path: Path, *, seed: int) -> Path:
    """A logistic model of the params' own features: fits in a second where boosting takes minutes
    on a busy machine.
    """
    from pipeline.stages.train import build_pipeline

    spec = next(s for s in params.train.estimators.values() if s.kind == "logistic_regression")
    sample = frame.sample(1500, random_state=seed)
    model = build_pipeline(data=params.data, spec=spec, seed=params.base.seed)
    model.fit(sample[list(params.data.features)], sample[params.base.target])
    io.save_model(model, path)
    return path


def _tiny_champion(path: Path, *, target: str, named: bool = True) -> Path:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({c: rng.normal(size=200) for c in CHAMPION_COLUMNS})
    labels = (frame["tenure_months"] > 0).astype(int).rename(target)
    model = make_pipeline(StandardScaler(), LogisticRegression())
    # Fitted on a bare array, a model records no column names: only its refusal tells.
    model.fit(frame if named else frame.to_numpy(), labels)
    io.save_model(model, path)
    return path


def _setup(params: Params, raw_frame: pd.DataFrame, tmp_path: Path, *, rule: str, min_recall: float) -> Params:
    """Params pointing at a tmp holdout, a tiny candidate and no deploy manifest."""
    config = params.model_copy(
        update={
            "paths": params.paths.model_copy(
                update={"prepared": tmp_path / "prepared", "model": tmp_path / "model.skops", "reports": tmp_path / "r"}
            ),
            "deploy": params.deploy.model_copy(update={"manifests": tmp_path / "deploy"}),
            "gate": params.gate.model_copy(update={"incomparable_champion": rule}),
            "evaluate": params.evaluate.model_copy(
                update={"min_recall": params.evaluate.min_recall.model_copy(update={"per_class": min_recall})}
            ),
            # Thresholds out of reach: these tests judge the schema rule, not the tiny model's fairness.
            "fairness": params.fairness.model_copy(
                update={
                    "thresholds": {
                        f: t.model_copy(update={"demographic_parity": 1.0, "equalized_odds": 1.0})
                        for f, t in params.fairness.thresholds.items()
                    }
                }
            ),
        }
    )
    holdout = raw_frame.sample(HOLDOUT_ROWS, random_state=1)
    io.write_table(holdout, config.paths.prepared / "test.parquet")
    _tiny_candidate(config, raw_frame.drop(holdout.index), config.paths.model, seed=2)
    return config


@pytest.fixture
def champion_file(tmp_path: Path, params: Params) -> Path:
    return _tiny_champion(tmp_path / "champion.skops", target=params.base.target)


def _expected_line(params: Params) -> str:
    new = ", ".join(c for c in params.data.features if c not in CHAMPION_COLUMNS)
    return f"no comparable champion: the champion's features differ (missing: tenure_months, new: {new})"


# --------------------------------------------------------------------------- pure pieces


def test_schema_difference_names_both_sides_and_ignores_order() -> None:
    assert floors.schema_difference(champion=["a", "b", "x"], candidate=["b", "a", "y", "z"]) == {
        "missing": ["x"],
        "new": ["y", "z"],
    }
    assert floors.schema_difference(champion=["a", "b"], candidate=["b", "a"]) is None
    line = floors.incomparable_line({"missing": [], "new": ["c"]})
    assert line == "no comparable champion: the champion's features differ (missing: none, new: c)"


def test_model_features_reads_the_fitted_columns(tmp_path: Path, params: Params) -> None:
    named = io.load_model(_tiny_champion(tmp_path / "a.skops", target=params.base.target))
    bare = io.load_model(_tiny_champion(tmp_path / "b.skops", target=params.base.target, named=False))
    assert floors.model_features(named) == tuple(CHAMPION_COLUMNS)
    assert floors.model_features(bare) is None


def _evaluation(recall: tuple[float, float], breaches: list[str] | None = None) -> dict[str, Any]:
    per_class = {"0": {"recall": recall[0]}, "1": {"recall": recall[1]}}
    return {"metrics": {"per_class": per_class}, "fairness": {"breaches": breaches or [], "features": {}}}


@pytest.mark.parametrize("rule", ["floors", "fail"])
def test_decide_follows_the_rule(params: Params, rule: str) -> None:
    section = params.gate.model_copy(update={"incomparable_champion": rule})
    decision = gate.decide(
        candidate=_evaluation((0.9, 0.9)),
        champion=None,
        primary_metric="roc_auc",
        section=section,
        min_recall=0.75,
        incomparable={"missing": ["x"], "new": ["y"]},
    )
    line = "no comparable champion: the champion's features differ (missing: x, new: y)"
    assert not decision["first_model"]
    assert decision["incomparable"] == {"missing": ["x"], "new": ["y"]}
    assert [c["kind"] for c in decision["checks"]] == ["floor", "floor"]
    if rule == "floors":
        assert decision["passed"]
        assert decision["summary"] == f"{line}; judged on absolute floors (gate.incomparable_champion: floors)"
        assert decision["reasons"] == []
    else:
        assert not decision["passed"]
        assert decision["reasons"] == [f"{line}; refused (gate.incomparable_champion: fail)"]


def test_floors_fail_a_class_below_its_recall_floor(params: Params) -> None:
    decision = gate.decide(
        candidate=_evaluation((0.6, 0.9)),
        champion=None,
        primary_metric="roc_auc",
        section=params.gate,
        min_recall=0.75,
        incomparable={"missing": ["x"], "new": []},
    )
    assert not decision["passed"]
    assert decision["reasons"] == ["recall of class 0 is 0.6000, below the floor 0.75 (evaluate.min_recall.per_class)"]


def test_floors_include_validation_and_own_fairness(params: Params) -> None:
    decision = gate.decide(
        candidate=_evaluation((0.9, 0.9), breaches=["SEX: demographic parity 0.3 exceeds 0.1"]),
        champion=None,
        primary_metric="roc_auc",
        section=params.gate,
        min_recall=0.75,
        validation_passed=False,
        incomparable={"missing": ["x"], "new": []},
    )
    assert not decision["passed"]
    assert decision["reasons"][0].startswith("data validation failed")
    assert decision["reasons"][1] == "candidate fairness: SEX: demographic parity 0.3 exceeds 0.1"


def test_first_model_is_held_to_the_same_floors(params: Params) -> None:
    decision = gate.decide(
        candidate=_evaluation((0.9, 0.5)), champion=None, primary_metric="roc_auc", section=params.gate, min_recall=0.75
    )
    assert decision["first_model"]
    assert not decision["passed"]
    assert decision["reasons"] == ["recall of class 1 is 0.5000, below the floor 0.75 (evaluate.min_recall.per_class)"]


# --------------------------------------------------------------------------- the whole gate run


def test_floors_rule_passes_on_absolute_checks_and_the_report_says_why(
    params: Params, raw_frame: pd.DataFrame, tmp_path: Path, champion_file: Path
) -> None:
    config = _setup(params, raw_frame, tmp_path, rule="floors", min_recall=0.0)
    result = gate.run(params=config, champion_model=champion_file)
    line = _expected_line(config)
    assert result["passed"]
    assert not result["first_model"]
    assert result["summary"] == f"{line}; judged on absolute floors (gate.incomparable_champion: floors)"
    assert result["champion"] is None
    assert result["champion_source"]["kind"] == "file"
    assert {c["kind"] for c in result["checks"]} == {"floor"}
    written = json.loads((config.paths.reports / gate.GATE_REPORT).read_text(encoding="utf-8"))
    assert written["incomparable"]["missing"] == ["tenure_months"]

    out = tmp_path / "pr_report.md"
    text = report.run(params=config, out=out, base=None)
    assert out.read_text(encoding="utf-8") == text
    assert "## Verdict: gate PASSED (no comparable champion)" in text
    assert f"{line}; judged on absolute floors (gate.incomparable_champion: floors)" in text
    assert "Not compared (see the verdict above)" in text
    assert "| floor: class 1 recall |" in text


def test_floors_rule_still_fails_a_candidate_below_its_floor(
    params: Params, raw_frame: pd.DataFrame, tmp_path: Path, champion_file: Path
) -> None:
    config = _setup(params, raw_frame, tmp_path, rule="floors", min_recall=0.999)
    result = gate.run(params=config, champion_model=champion_file)
    assert not result["passed"]
    assert any("below the floor 0.999" in r for r in result["reasons"])
    assert result["summary"].startswith(_expected_line(config))


def test_fail_rule_refuses_with_the_line(
    params: Params, raw_frame: pd.DataFrame, tmp_path: Path, champion_file: Path
) -> None:
    config = _setup(params, raw_frame, tmp_path, rule="fail", min_recall=0.0)
    result = gate.run(params=config, champion_model=champion_file)
    assert not result["passed"]
    assert result["reasons"] == [f"{_expected_line(config)}; refused (gate.incomparable_champion: fail)"]
    text = report.render(inputs={"gate": result, "base": None})
    assert "## Verdict: gate FAILED (no comparable champion)" in text
    assert f"- {_expected_line(config)}; refused (gate.incomparable_champion: fail)" in text


# Scoring a frame with a model fitted on an array warns; here the refusal that follows is the point.
@pytest.mark.filterwarnings("ignore:X has feature names")
def test_champion_without_column_names_that_cannot_score_is_incomparable(
    params: Params, raw_frame: pd.DataFrame, tmp_path: Path
) -> None:
    config = _setup(params, raw_frame, tmp_path, rule="floors", min_recall=0.0)
    bare = _tiny_champion(tmp_path / "bare.skops", target=params.base.target, named=False)
    result = gate.run(params=config, champion_model=bare)
    assert result["passed"]
    assert result["summary"].startswith("no comparable champion: the champion cannot score the candidate's holdout (")
    assert "error" in result["incomparable"]


def test_same_columns_in_another_order_are_compared(params: Params, raw_frame: pd.DataFrame, tmp_path: Path) -> None:
    config = _setup(params, raw_frame, tmp_path, rule="fail", min_recall=0.0)
    reordered = params.data.model_copy(update={"features": tuple(reversed(params.data.features))})
    champion = _tiny_candidate(config.model_copy(update={"data": reordered}), raw_frame, tmp_path / "c.skops", seed=3)
    result = gate.run(params=config, champion_model=champion)
    assert "incomparable" not in result
    assert result["champion"] is not None
    assert result["checks"][0]["kind"] == "primary"


@pytest.mark.parametrize(("rule", "code"), [("floors", 0), ("fail", 1)])
def test_gate_command_prints_the_line_and_no_traceback(
    params: Params,
    raw_frame: pd.DataFrame,
    tmp_path: Path,
    champion_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    rule: str,
    code: int,
) -> None:
    from pipeline.cli import app

    config = _setup(params, raw_frame, tmp_path, rule=rule, min_recall=0.0)
    monkeypatch.setattr("pipeline.core.config.load_params", lambda _path: config)
    result = CliRunner().invoke(app, ["gate", "--champion-model", str(champion_file)])
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert _expected_line(config) in result.output
