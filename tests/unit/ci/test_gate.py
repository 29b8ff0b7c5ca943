"""The gate's decision rules on fixed evaluations, and how the champion is found."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from pipeline.ci import champion, gate
from pipeline.core import io
from pipeline.core.config import Params

pytestmark = pytest.mark.unit


def _evaluation(*, primary: float, recall: tuple[float, float], parity: float, odds: float) -> dict[str, Any]:
    return {
        "metrics": {
            "roc_auc": primary,
            "accuracy": primary,
            "f1": primary,
            "average_precision": primary,
            "per_class": {"0": {"recall": recall[0]}, "1": {"recall": recall[1]}},
        },
        "fairness": {
            "breaches": [],
            "features": {
                "SEX": {
                    "differences": {"demographic_parity": parity, "equalized_odds": odds},
                    "thresholds": {"demographic_parity": 0.5, "equalized_odds": 0.5},
                },
                # Reported only (null thresholds): never judged, whatever it does.
                "AGEP": {
                    "differences": {"demographic_parity": parity * 9, "equalized_odds": odds * 9},
                    "thresholds": {"demographic_parity": None, "equalized_odds": None},
                },
            },
        },
    }


BASE = {"primary": 0.85, "recall": (0.80, 0.85), "parity": 0.05, "odds": 0.05}


def _decide(params: Params, champion_eval: dict[str, Any] | None, **candidate: Any) -> dict[str, Any]:
    return gate.decide(
        candidate=_evaluation(**{**BASE, **candidate}),
        champion=champion_eval,
        primary_metric=params.train.primary_metric,
        section=params.gate,
    )


@pytest.fixture
def champ() -> dict[str, Any]:
    return _evaluation(**BASE)


def test_better_candidate_passes(params: Params, champ: dict[str, Any]) -> None:
    decision = _decide(params, champ, primary=BASE["primary"] + 0.02)
    assert decision["passed"]
    assert not decision["first_model"]
    assert decision["reasons"] == []


def test_worse_candidate_fails_naming_the_metric(params: Params, champ: dict[str, Any]) -> None:
    drop = params.gate.primary_margin + 0.01
    decision = _decide(params, champ, primary=BASE["primary"] - drop)
    assert not decision["passed"]
    assert len(decision["reasons"]) == 1
    assert params.train.primary_metric in decision["reasons"][0]
    assert "below the champion" in decision["reasons"][0]


def test_worse_within_margin_passes(params: Params, champ: dict[str, Any]) -> None:
    decision = _decide(params, champ, primary=BASE["primary"] - params.gate.primary_margin / 2)
    assert decision["passed"], decision["reasons"]


def test_exactly_at_margin_passes(params: Params, champ: dict[str, Any]) -> None:
    decision = _decide(params, champ, primary=BASE["primary"] - params.gate.primary_margin)
    assert decision["passed"], decision["reasons"]


def test_fairness_regression_fails(params: Params, champ: dict[str, Any]) -> None:
    rise = params.gate.max_fairness_increase + 0.01
    decision = _decide(params, champ, primary=BASE["primary"] + 0.05, parity=BASE["parity"] + rise)
    assert not decision["passed"]
    assert len(decision["reasons"]) == 1
    assert decision["reasons"][0].startswith("SEX: demographic parity difference rose")


def test_reported_only_feature_is_not_judged(params: Params, champ: dict[str, Any]) -> None:
    decision = _decide(params, champ)
    assert decision["passed"]
    assert not [c for c in decision["checks"] if c["name"].startswith("AGEP")]


def test_per_class_recall_drop_fails(params: Params, champ: dict[str, Any]) -> None:
    drop = params.gate.max_recall_drop + 0.01
    decision = _decide(params, champ, primary=BASE["primary"] + 0.05, recall=(BASE["recall"][0] - drop, 0.99))
    assert not decision["passed"]
    assert [r for r in decision["reasons"] if r.startswith("recall of class 0 dropped")]
    assert not [r for r in decision["reasons"] if "class 1" in r]


def test_no_champion_is_the_first_model(params: Params) -> None:
    decision = _decide(params, None)
    assert decision["passed"]
    assert decision["first_model"]
    assert "first model" in decision["summary"]


def test_first_model_still_needs_its_own_fairness(params: Params) -> None:
    candidate = _evaluation(**BASE)
    candidate["fairness"]["breaches"] = ["SEX: demographic parity difference 0.300 exceeds 0.1"]
    decision = gate.decide(
        candidate=candidate, champion=None, primary_metric=params.train.primary_metric, section=params.gate
    )
    assert not decision["passed"]
    assert decision["reasons"] == ["candidate fairness: SEX: demographic parity difference 0.300 exceeds 0.1"]


def test_unmeasurable_difference_is_skipped(params: Params, champ: dict[str, Any]) -> None:
    other = copy.deepcopy(champ)
    other["fairness"]["features"]["SEX"]["differences"]["equalized_odds"] = None
    decision = _decide(params, other, odds=0.49)
    assert decision["passed"]
    assert [c["name"] for c in decision["checks"] if c["kind"] == "fairness"] == ["SEX demographic parity"]


# --------------------------------------------------------------------------- finding the champion


def _no_manifest(params: Params, tmp_path: Path) -> Params:
    return params.model_copy(update={"deploy": params.deploy.model_copy(update={"manifests": tmp_path / "deploy"})})


def test_missing_champion_file_is_an_error_not_a_first_model(params: Params, tmp_path: Path) -> None:
    with pytest.raises(io.ModelFileError, match="model file not found"):
        gate.find_champion(params=_no_manifest(params, tmp_path), champion_model=tmp_path / "nope.skops")


def test_none_marker_means_first_model(params: Params, tmp_path: Path) -> None:
    out = tmp_path / "model.skops"
    io.write_json({"source": "none", "rev": "main", "detail": "no model yet"}, champion.marker_path(out=out))
    found = gate.find_champion(params=_no_manifest(params, tmp_path), champion_model=out)
    assert found.model is None
    assert found.source["kind"] == "none"


def test_corrupt_champion_file_is_refused(params: Params, tmp_path: Path) -> None:
    out = tmp_path / "model.skops"
    out.write_bytes(b"not a zip")
    with pytest.raises(io.ModelFileError, match="not a readable skops model file"):
        gate.find_champion(params=_no_manifest(params, tmp_path), champion_model=out)


def test_bad_manifest_is_refused(params: Params, tmp_path: Path) -> None:
    config = _no_manifest(params, tmp_path)
    manifest = config.deploy.manifests / f"{config.gate.champion_env}.yaml"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("champion: [1\n", encoding="utf-8")
    with pytest.raises(gate.GateInputError, match="not valid YAML"):
        gate.find_champion(params=config, champion_model=None)


def test_unknown_champion_env_is_refused(params: Params, tmp_path: Path) -> None:
    config = _no_manifest(params, tmp_path)
    config = config.model_copy(update={"gate": config.gate.model_copy(update={"champion_env": "nowhere"})})
    with pytest.raises(gate.GateInputError, match="unknown environment 'nowhere'"):
        gate.find_champion(params=config, champion_model=None)


def test_model_stage_is_found_in_a_lock_file() -> None:
    lock = "schema: '2.0'\nstages:\n  train:\n    outs:\n    - path: models/m.skops\n      md5: abc\n"
    assert champion.model_stage(lock_text=lock, model_path="models/m.skops") == ("train", "abc")
    assert champion.model_stage(lock_text=lock, model_path="other.skops") is None


def test_unknown_revision_is_refused(tmp_path: Path) -> None:
    with pytest.raises(champion.ChampionError, match="not found in this repository"):
        champion.fetch(rev="no-such-branch-xyz", out=tmp_path / "m.skops", default_model_path="models/model.skops")
    assert not (tmp_path / "m.skops").exists()


def test_champion_fetch_command_refuses_an_unknown_revision(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipeline.cli import app

    out = tmp_path / "m.skops"
    result = CliRunner().invoke(app, ["champion", "fetch", "--rev", "no-such-branch-xyz", "--out", str(out)])
    assert result.exit_code == 1
    assert "revision 'no-such-branch-xyz' not found" in result.output
    assert not out.exists()
    assert not champion.marker_path(out=out).exists()
