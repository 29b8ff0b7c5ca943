"""The drift check's inputs: features gone missing or infinite are a "data quality" finding (exit 1,
like drift), while unusable scores, labels and report folders are bad input (exit 2, nothing written).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core.config import DriftSection, Params
from pipeline.monitoring import drift
from pipeline.monitoring.drift.verdicts import summarise
from tests.conftest import DEMO_PARAMS, REPO_ROOT, demo_params

pytestmark = pytest.mark.unit

ROWS = 2000


@pytest.fixture(scope="module")
def params() -> Params:
    return demo_params()


@pytest.fixture(scope="module")
def config(params: Params) -> DriftSection:
    return params.drift


def _frame(seed: int, rows: int = ROWS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=rows), "c": pd.array(rng.choice(["a", "b"], size=rows), dtype="str")})


def _judge(reference: pd.DataFrame, current: pd.DataFrame, config: DriftSection) -> dict[str, drift.FeatureResult]:
    results = drift.feature_drift(reference=reference, current=current, numeric=["x"], categorical=["c"], config=config)
    return {r.feature: r for r in results}


def _with_missing(frame: pd.DataFrame, column: str, share: float) -> pd.DataFrame:
    out = frame.copy()
    out.loc[: round(share * len(out)) - 1, column] = None
    return out


# --------------------------------------------------------------------------- data-quality verdicts


def test_all_missing_numeric_feature_fails_data_quality(config: DriftSection) -> None:
    current = _frame(1).assign(x=np.nan)
    results = _judge(_frame(0), current, config)
    x = results["x"]
    # Before: "not enough data" for x, and the batch as a whole "no drift".
    assert x.verdict == drift.DATA_QUALITY
    assert (x.missing_rows_current, x.missing_share_current, x.rows_current) == (ROWS, 1.0, 0)
    assert x.quality_issue == f"{ROWS} of {ROWS} rows missing (100.0%; reference 0.0%)"
    assert results["c"].verdict == drift.NO_DRIFT
    summary = summarise(features=list(results.values()), config=config)
    assert summary["verdict"] == drift.DATA_QUALITY
    assert summary["drift"] is True
    assert summary["data_drift"]["data_quality"] == {"x": x.quality_issue}
    assert summary["data_drift"]["features"]["x"]["missing_rows_current"] == ROWS


def test_infinite_values_fail_data_quality_even_below_the_missing_threshold(config: DriftSection) -> None:
    current = _frame(1)
    infinite = 20
    assert infinite / ROWS < config.max_null_share
    current.loc[: infinite - 1, "x"] = [np.inf, -np.inf] * (infinite // 2)
    x = _judge(_frame(0), current, config)["x"]
    # Before: the infinities were dropped silently and x was "no drift".
    assert x.verdict == drift.DATA_QUALITY
    assert x.infinite_rows_current == infinite
    assert x.infinite_share_current == pytest.approx(infinite / ROWS)
    assert f"{infinite} of {ROWS} rows infinite" in (x.quality_issue or "")


def test_missing_share_above_the_threshold_fails_and_below_is_tested(config: DriftSection) -> None:
    above = _judge(_frame(0), _with_missing(_frame(1), "x", 2 * config.max_null_share), config)["x"]
    assert above.verdict == drift.DATA_QUALITY
    share = config.max_null_share / 2
    below = _judge(_frame(0), _with_missing(_frame(1), "x", share), config)["x"]
    # The rest of the column is still judged, and the missing share is reported.
    assert below.verdict == drift.NO_DRIFT
    assert below.quality_issue is None
    assert below.effect is not None
    assert below.rows_current == ROWS - round(share * ROWS)
    assert below.missing_share_current == pytest.approx(share)


def test_missing_values_the_reference_already_has_are_not_a_finding(config: DriftSection) -> None:
    reference = _with_missing(_frame(0), "c", 0.3)
    similar = _judge(reference, _with_missing(_frame(1), "c", 0.3 + config.max_null_share / 2), config)["c"]
    assert similar.verdict == drift.NO_DRIFT
    assert similar.missing_share_reference == pytest.approx(0.3)
    gone = _judge(reference, _frame(1).assign(c=None), config)["c"]
    assert gone.verdict == drift.DATA_QUALITY
    assert gone.quality_issue == f"{ROWS} of {ROWS} rows missing (100.0%; reference 30.0%)"
    never = _judge(_frame(0).assign(x=np.nan), _frame(1).assign(x=np.nan), config)["x"]
    assert never.verdict == drift.NOT_ENOUGH_DATA


@pytest.mark.parametrize(
    "column",
    [
        pd.array([None] * ROWS, dtype="str"),
        pd.Series([None] * ROWS, dtype=object),
        # What a CSV reader makes of an empty column.
        pd.Series([np.nan] * ROWS, dtype=float),
    ],
    ids=["str", "object", "float-from-csv"],
)
def test_all_missing_categorical_feature_does_not_crash(config: DriftSection, column: pd.Series) -> None:
    # Before: chi-square divided by the empty column's zero total (ValueError), or the float
    # column was refused as "must hold category codes".
    c = _judge(_frame(0), _frame(1).assign(c=column), config)["c"]
    assert c.verdict == drift.DATA_QUALITY
    assert c.missing_rows_current == ROWS
    assert c.unseen_categories == {}


def test_data_quality_is_the_worst_verdict_and_exits_like_drift() -> None:
    assert drift.overall_verdict(verdicts=[drift.NO_DRIFT, drift.DRIFT, drift.DATA_QUALITY]) == drift.DATA_QUALITY
    assert drift.overall_verdict(verdicts=[drift.NOT_ENOUGH_DATA, drift.DATA_QUALITY]) == drift.DATA_QUALITY
    assert drift.overall_verdict(verdicts=[]) == drift.NOT_ENOUGH_DATA
    assert drift.EXIT_CODES[drift.DATA_QUALITY] == drift.EXIT_CODES[drift.DRIFT] == 1


# --------------------------------------------------------------------------- scores and labels


def _join(preds: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    return drift.join_labels(
        predictions=preds,
        labels=labels,
        id_column="id",
        target="y",
        score_column="score",
        predictions_source="p.parquet",
        labels_source="l.parquet",
    )


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        (["0.1", "0.2", "0.3"], "p.parquet: column 'score' must hold probabilities in [0, 1] but holds"),
        ([True, False, True], "p.parquet: column 'score' must hold probabilities in [0, 1] but holds bool"),
        ([0.1, -0.2, 1.5], "p.parquet: column 'score' must hold probabilities in [0, 1]; 2 of 3 rows"),
        ([0.1, np.nan, np.inf], "p.parquet: column 'score' must hold probabilities in [0, 1]; 2 of 3 rows"),
    ],
    ids=["text", "bool", "out-of-range", "nan-and-inf"],
)
def test_scores_that_are_not_probabilities_are_refused(scores: list[object], message: str) -> None:
    preds = pd.DataFrame({"id": [1, 2, 3], "score": scores})
    with pytest.raises(drift.DriftInputError) as caught:
        _join(preds, pd.DataFrame({"id": [1, 2, 3], "y": [0, 1, 0]}))
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("labels", "found"),
    [([0, 2, 1], "2"), ([0, -1, 1], "-1"), (["0", "yes", "1"], "yes"), ([0.0, 0.5, 1.0], "0.5")],
    ids=["two", "minus-one", "text", "fraction"],
)
def test_labels_other_than_0_and_1_are_refused(labels: list[object], found: str) -> None:
    preds = pd.DataFrame({"id": [1, 2, 3], "score": [0.1, 0.5, 0.9]})
    # Before: joined unchecked, then cast to int or crashing inside ROC AUC.
    with pytest.raises(
        drift.DriftInputError, match=rf"^l\.parquet: column 'y' must hold the labels 0 and 1; found {found}$"
    ):
        _join(preds, pd.DataFrame({"id": [1, 2, 3], "y": labels}))


def test_missing_labels_are_not_yet_labelled() -> None:
    preds = pd.DataFrame({"id": [1, 2, 3], "score": [0.1, 0.5, 0.9]})
    joined = _join(preds, pd.DataFrame({"id": [1, 2, 3], "y": [1.0, np.nan, 0.0]}))
    assert joined["id"].tolist() == [1, 3]
    assert joined["y"].tolist() == [1, 0]
    assert joined["y"].dtype == np.int64
    with pytest.raises(drift.DriftInputError, match=r"l\.parquet: column 'y' holds no label"):
        _join(preds, pd.DataFrame({"id": [1, 2, 3], "y": [np.nan] * 3}))


# --------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def batch(params: Params) -> pd.DataFrame:
    reference = pd.read_parquet(REPO_ROOT / params.data.raw)
    return reference.sample(n=ROWS, random_state=0).reset_index(drop=True)


def _write(frame: pd.DataFrame, path: Path) -> str:
    frame.to_parquet(path, index=False)
    return str(path)


def _invoke(args: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[int, str]:
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "github_output"))
    result = CliRunner().invoke(app, ["drift", *args, "--params", str(DEMO_PARAMS)])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("column", "values"),
    [("AGEP", np.nan), ("AGEP", np.inf), ("SCHL", None)],
    ids=["numeric-missing", "numeric-infinite", "categorical-missing"],
)
def test_cli_data_quality_exits_1_and_reports_it(
    batch: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, column: str, values: float | None
) -> None:
    current = _write(batch.assign(**{column: values}), tmp_path / "batch.parquet")
    out = tmp_path / "out"
    code, output = _invoke(["--current", current, "--out-dir", str(out), "--no-plots"], monkeypatch, tmp_path)
    assert code == 1, output
    kind = "infinite" if values is np.inf else "missing"
    assert f"drift check: data quality ({column}: {ROWS} of {ROWS} rows {kind}" in output
    report = json.loads((out / "drift.json").read_text(encoding="utf-8"))
    assert report["verdict"] == drift.DATA_QUALITY
    assert list(report["data_drift"]["data_quality"]) == [column]
    feature = report["data_drift"]["features"][column]
    assert feature["verdict"] == drift.DATA_QUALITY
    assert feature[f"{kind}_rows_current"] == ROWS
    assert feature[f"{kind}_share_current"] == 1.0
    markdown = (out / "drift.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Drift check: **data quality**")
    assert f"- Data quality failed in `{column}`: {ROWS} of {ROWS} rows {kind}" in markdown
    assert (tmp_path / "github_output").read_text() == "drift=true\nverdict=data quality\n"


def test_cli_data_quality_with_plots_and_exit_zero_on_verdict(
    batch: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    current = _write(batch.assign(SCHL=None), tmp_path / "batch.parquet")
    out = tmp_path / "out"
    args = ["--current", current, "--out-dir", str(out), "--exit-zero-on-verdict"]
    code, output = _invoke(args, monkeypatch, tmp_path)
    # A finding, not an error: the workflow reads it from its outputs.
    assert code == 0, output
    assert "drift check: data quality" in output
    # An empty column has nothing to draw; the others are still drawn.
    assert not (out / "plots" / "SCHL.png").exists()
    assert (out / "plots" / "AGEP.png").is_file()
    assert (tmp_path / "github_output").read_text() == "drift=true\nverdict=data quality\n"


def _assert_refused(code: int, output: str, out: Path, tmp_path: Path, *needles: str) -> None:
    assert code == 2
    line = " ".join(output.split())
    assert "Traceback" not in output
    for needle in needles:
        assert needle in line
    assert not out.exists()
    assert not (tmp_path / "github_output").exists()


@pytest.mark.parametrize(
    "scores",
    [lambda n: np.full(n, "high"), lambda n: np.linspace(0, 1.5, n), lambda n: np.r_[np.nan, np.full(n - 1, 0.5)]],
    ids=["text", "out-of-range", "missing"],
)
def test_cli_bad_scores_are_bad_input(
    params: Params, batch: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scores: object
) -> None:
    id_column, score_column = params.base.id_column, params.drift.prediction.score_column
    preds = pd.DataFrame({id_column: batch[id_column], score_column: scores(len(batch))})  # type: ignore[operator]
    predictions = _write(preds, tmp_path / "preds.parquet")
    current = _write(batch, tmp_path / "batch.parquet")
    out = tmp_path / "out"
    args = ["--current", current, "--predictions", predictions, "--out-dir", str(out), "--exit-zero-on-verdict"]
    code, output = _invoke(args, monkeypatch, tmp_path)
    _assert_refused(code, output, out, tmp_path, predictions, f"column '{score_column}' must hold probabilities")


def test_cli_bad_reference_scores_are_bad_input(
    params: Params, batch: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    id_column, score_column = params.base.id_column, params.drift.prediction.score_column
    preds = pd.DataFrame({id_column: batch[id_column], score_column: 0.5})
    reference_scores = _write(pd.DataFrame({score_column: [0.2, 7.0]}), tmp_path / "ref.parquet")
    args = [
        *("--current", _write(batch, tmp_path / "batch.parquet")),
        *("--predictions", _write(preds, tmp_path / "preds.parquet")),
        *("--reference-predictions", reference_scores, "--out-dir", str(tmp_path / "out")),
    ]
    code, output = _invoke(args, monkeypatch, tmp_path)
    _assert_refused(code, output, tmp_path / "out", tmp_path, reference_scores, "1 of 2 rows are missing or outside")


def test_cli_labels_outside_0_and_1_are_bad_input(
    params: Params, batch: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    id_column, target, score_column = params.base.id_column, params.base.target, params.drift.prediction.score_column
    preds = pd.DataFrame({id_column: batch[id_column], score_column: 0.5})
    labels = _write(batch[[id_column, target]].assign(**{target: batch[target] * 2}), tmp_path / "labels.parquet")
    (tmp_path / "metrics.json").write_text(json.dumps({"roc_auc": 0.8, "accuracy": 0.8}), encoding="utf-8")
    args = [
        *("--current", _write(batch.drop(columns=[target]), tmp_path / "batch.parquet")),
        *("--predictions", _write(preds, tmp_path / "preds.parquet"), "--labels", labels),
        *("--reference-predictions", _write(preds[[score_column]], tmp_path / "ref.parquet")),
        *("--baseline", str(tmp_path / "metrics.json"), "--out-dir", str(tmp_path / "out")),
    ]
    code, output = _invoke(args, monkeypatch, tmp_path)
    _assert_refused(code, output, tmp_path / "out", tmp_path, labels, "values are neither base.positive_label")


@pytest.mark.parametrize("nested", [False, True], ids=["file", "under-a-file"])
def test_cli_out_dir_that_is_a_file_is_bad_input(
    batch: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nested: bool
) -> None:
    blocker = tmp_path / "report.txt"
    blocker.write_text("keep me\n", encoding="utf-8")
    out = blocker / "drift" if nested else blocker
    current = _write(batch, tmp_path / "batch.parquet")
    code, output = _invoke(["--current", current, "--out-dir", str(out), "--no-plots"], monkeypatch, tmp_path)
    # Before: FileExistsError / NotADirectoryError from mkdir, as a traceback.
    assert code == 2
    assert "Traceback" not in output
    assert f"{blocker} exists and is not a folder" in " ".join(output.split())
    assert blocker.read_text(encoding="utf-8") == "keep me\n"
    assert not (tmp_path / "github_output").exists()
