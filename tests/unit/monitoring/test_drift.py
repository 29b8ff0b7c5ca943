"""Drift statistics against scipy, verdict rules, bad input and the CLI's exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core.config import DriftSection, Params
from pipeline.monitoring import drift
from tests.conftest import DEMO_PARAMS, REPO_ROOT, demo_params

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def params() -> Params:
    return demo_params()


@pytest.fixture(scope="module")
def config(params: Params) -> DriftSection:
    return params.drift


def _frame(rng: np.random.Generator, rows: int, *, shift: float = 0.0, share_b: float = 0.3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": rng.normal(loc=shift, size=rows),
            "c": pd.array(np.where(rng.random(rows) < share_b, "b", "a"), dtype="str"),
        }
    )


# --------------------------------------------------------------------------- statistics vs scipy


@pytest.mark.parametrize(("n", "m"), [(800, 800), (1000, 1500), (5000, 333)])
def test_numeric_stats_match_scipy(n: int, m: int) -> None:
    rng = np.random.default_rng(n + m)
    # Rounding creates ties, the case where a hand-written KS most easily goes wrong.
    ref = rng.normal(size=n).round(1)
    cur = rng.normal(0.2, 1.3, size=m).round(1)
    got = drift.numeric_stats(reference=ref, current=cur, psi_bins=10, psi_epsilon=1e-4)
    want = stats.ks_2samp(ref, cur, method="asymp")
    assert got.ks_statistic == pytest.approx(want.statistic, abs=1e-12)
    assert got.p_value == pytest.approx(want.pvalue, rel=1e-9, abs=1e-300)
    assert got.wasserstein == pytest.approx(stats.wasserstein_distance(ref, cur), rel=1e-9)
    assert got.normalised_wasserstein == pytest.approx(got.wasserstein / np.std(ref))


def test_large_sample_p_value_is_close_to_scipy() -> None:
    rng = np.random.default_rng(11)
    ref, cur = rng.normal(size=30_000), rng.normal(0.02, size=25_000)
    got = drift.numeric_stats(reference=ref, current=cur, psi_bins=10, psi_epsilon=1e-4)
    want = stats.ks_2samp(ref, cur, method="asymp")
    assert got.ks_statistic == pytest.approx(want.statistic, abs=1e-12)
    # Kolmogorov's limit distribution above scipy's exact-method size: within 1% at this size.
    assert got.p_value == pytest.approx(want.pvalue, rel=0.01)


def test_numeric_psi_is_zero_for_identical_and_grows_with_shift() -> None:
    ref = np.random.default_rng(0).normal(size=5000)
    same = drift.numeric_stats(reference=ref, current=ref.copy(), psi_bins=10, psi_epsilon=1e-4)
    small = drift.numeric_stats(reference=ref, current=ref + 0.1, psi_bins=10, psi_epsilon=1e-4)
    large = drift.numeric_stats(reference=ref, current=ref + 1.0, psi_bins=10, psi_epsilon=1e-4)
    assert same.psi == pytest.approx(0.0, abs=1e-12)
    assert 0 < small.psi < large.psi


def test_psi_from_shares_known_value() -> None:
    got = drift.psi_from_shares(reference=np.array([0.5, 0.5]), current=np.array([0.25, 0.75]), epsilon=1e-4)
    assert got == pytest.approx(0.25 * np.log(2) + 0.25 * np.log(1.5))


def test_categorical_stats_match_scipy_and_name_unseen_codes() -> None:
    ref = pd.Series({"1": 500, "2": 300, "3": 200})
    cur = pd.Series({"1": 400, "2": 300, "9": 100})
    got = drift.categorical_stats(reference=ref, current=cur, psi_epsilon=1e-4)
    table = np.array([[500, 300, 200, 0], [400, 300, 0, 100]], dtype=float)
    want = stats.chi2_contingency(table, correction=False)
    assert got.chi2_statistic == pytest.approx(want.statistic)
    assert got.p_value == pytest.approx(want.pvalue, abs=1e-300)
    assert got.jensen_shannon == pytest.approx(jensenshannon(table[0] / 1000, table[1] / 800, base=2))
    assert got.unseen == {"9": 100}


def test_categorical_single_category_is_no_evidence() -> None:
    got = drift.categorical_stats(reference=pd.Series({"1": 50}), current=pd.Series({"1": 70}), psi_epsilon=1e-4)
    assert (got.p_value, got.jensen_shannon, got.psi) == (1.0, 0.0, 0.0)


def test_p_value_corrections() -> None:
    raw = [0.01, 0.04, np.nan, 0.03, 0.5]
    bh = drift.correct_p_values(p_values=raw, method="benjamini_hochberg")
    bonf = drift.correct_p_values(p_values=raw, method="bonferroni")
    # Benjamini-Hochberg by hand over the four tested values: sorted 0.01, 0.03, 0.04, 0.5.
    assert bh[0] == pytest.approx(0.04)
    assert bh[1] == pytest.approx(0.04 * 4 / 3)
    assert bh[3] == pytest.approx(0.04 * 4 / 3)
    assert bh[4] == pytest.approx(0.5)
    assert np.isnan(bh[2])
    assert np.isnan(bonf[2])
    assert bonf[:2] == pytest.approx([0.04, 0.16])
    assert bonf[4] == 1.0


# --------------------------------------------------------------------------- verdict rules


def test_planted_shift_is_drift_and_named(config: DriftSection) -> None:
    rng = np.random.default_rng(1)
    rows = config.min_rows * 10
    ref = _frame(rng, rows)
    cur = _frame(rng, rows, shift=3 * config.min_numeric_effect, share_b=0.9)
    results = drift.feature_drift(reference=ref, current=cur, numeric=["x"], categorical=["c"], config=config)
    assert {r.feature: r.verdict for r in results} == {"x": drift.DRIFT, "c": drift.DRIFT}


def test_significant_but_trivial_shift_is_not_drift(config: DriftSection) -> None:
    rng = np.random.default_rng(2)
    rows = 400_000
    ref = _frame(rng, rows)
    cur = _frame(rng, rows, shift=config.min_numeric_effect / 4)
    (x,) = [
        r
        for r in drift.feature_drift(reference=ref, current=cur, numeric=["x"], categorical=["c"], config=config)
        if r.feature == "x"
    ]
    # At this size the test alone would call it; the effect size keeps the verdict quiet.
    assert x.p_value_corrected is not None
    assert x.p_value_corrected < config.alpha
    assert x.effect is not None
    assert x.effect < config.min_numeric_effect
    assert x.verdict == drift.NO_DRIFT


def test_small_batch_is_not_enough_data(config: DriftSection) -> None:
    rng = np.random.default_rng(3)
    ref = _frame(rng, config.min_rows * 4)
    cur = _frame(rng, config.min_rows - 1, shift=5.0, share_b=1.0)
    results = drift.feature_drift(reference=ref, current=cur, numeric=["x"], categorical=["c"], config=config)
    assert all(r.verdict == drift.NOT_ENOUGH_DATA for r in results)
    assert drift.overall_verdict(verdicts=[r.verdict for r in results]) == drift.NOT_ENOUGH_DATA


def test_integer_codes_compare_as_strings(config: DriftSection) -> None:
    rng = np.random.default_rng(4)
    ref = pd.DataFrame({"c": pd.array(rng.choice(["1", "2"], size=config.min_rows * 2), dtype="str")})
    cur = pd.DataFrame({"c": ref["c"].astype(int)})
    (result,) = drift.feature_drift(reference=ref, current=cur, numeric=[], categorical=["c"], config=config)
    assert result.effect == pytest.approx(0.0)
    assert not result.unseen_categories


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("current", "message"),
    [
        (pd.DataFrame({"x": pd.Series([], dtype=float), "c": pd.Series([], dtype="str")}), "empty"),
        (pd.DataFrame({"x": [1.0, 2.0]}), "lacks required columns: c"),
        (pd.DataFrame({"x": ["1", "2"], "c": ["a", "b"]}), "'x' of the current batch must be numeric"),
        (pd.DataFrame({"x": [1.0, 2.0], "c": [0.5, 1.5]}), "'c' of the current batch must hold category codes"),
        (pd.DataFrame({"x": [True, False], "c": ["a", "b"]}), "must be numeric"),
    ],
    ids=["empty", "missing-column", "text-in-numeric", "float-in-categorical", "bool-in-numeric"],
)
def test_bad_current_batch_is_refused(config: DriftSection, current: pd.DataFrame, message: str) -> None:
    ref = _frame(np.random.default_rng(5), 100)
    with pytest.raises(drift.DriftInputError, match=message):
        drift.feature_drift(reference=ref, current=current, numeric=["x"], categorical=["c"], config=config)


def test_join_refuses_duplicate_ids_and_bad_scores() -> None:
    preds = pd.DataFrame({"id": [1, 2, 2], "score": [0.1, 0.2, 0.3]})
    labels = pd.DataFrame({"id": [1, 2], "y": [0, 1]})
    with pytest.raises(drift.DriftInputError, match="repeats 1 id"):
        drift.join_labels(predictions=preds, labels=labels, id_column="id", target="y", score_column="score")
    preds = pd.DataFrame({"id": [1, 2], "score": [0.1, 1.7]})
    with pytest.raises(drift.DriftInputError, match=r"probabilities in \[0, 1\]"):
        drift.join_labels(predictions=preds, labels=labels, id_column="id", target="y", score_column="score")
    preds = pd.DataFrame({"id": [7, 8], "score": [0.1, 0.2]})
    with pytest.raises(drift.DriftInputError, match="no prediction id matches"):
        drift.join_labels(predictions=preds, labels=labels, id_column="id", target="y", score_column="score")


# --------------------------------------------------------------------------- predictions and performance


def test_prediction_drift(config: DriftSection, params: Params) -> None:
    rng = np.random.default_rng(6)
    rows = config.min_rows * 4
    ref = rng.beta(2, 2, size=rows)
    same = drift.prediction_drift(
        reference_scores=ref,
        current_scores=rng.beta(2, 2, size=rows),
        threshold=params.evaluate.threshold,
        config=config,
    )
    moved = drift.prediction_drift(
        reference_scores=ref,
        current_scores=rng.beta(4, 2, size=rows),
        threshold=params.evaluate.threshold,
        config=config,
    )
    assert same["verdict"] == drift.NO_DRIFT
    assert moved["verdict"] == drift.DRIFT
    assert moved["positive_share_change"] > 0
    few = drift.prediction_drift(
        reference_scores=ref,
        current_scores=ref[: config.min_rows - 1],
        threshold=params.evaluate.threshold,
        config=config,
    )
    assert few["verdict"] == drift.NOT_ENOUGH_DATA


def _scored(rng: np.random.Generator, rows: int, *, noise: float) -> pd.DataFrame:
    y = rng.integers(0, 2, size=rows)
    score = np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(0, noise, size=rows), 0, 1)
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "score": score,
            "employed": y,
            "SEX": rng.choice(["1", "2"], size=rows),
            "year": np.repeat([2016, 2017], rows // 2),
        }
    )


def test_performance_judged_against_baseline(config: DriftSection, params: Params) -> None:
    rng = np.random.default_rng(7)
    rows = config.min_rows * 8
    good = _scored(rng, rows, noise=0.2)
    kwargs = {
        "target": "employed",
        "score_column": "score",
        "threshold": params.evaluate.threshold,
        "groups": params.fairness.groups,
        "min_group_size": params.fairness.min_group_size,
        "config": config,
    }
    base = drift.performance(joined=good, baseline={"roc_auc": 1.0, "accuracy": 1.0}, **kwargs)  # type: ignore[arg-type]
    baseline = {"roc_auc": base["overall"]["roc_auc"], "accuracy": base["overall"]["accuracy"]}
    quiet = drift.performance(joined=_scored(rng, rows, noise=0.2), baseline=baseline, **kwargs)  # type: ignore[arg-type]
    worse = drift.performance(joined=_scored(rng, rows, noise=0.6), baseline=baseline, **kwargs)  # type: ignore[arg-type]
    assert quiet["verdict"] == drift.NO_DRIFT
    assert worse["verdict"] == drift.DRIFT
    assert worse["overall"]["degraded"]
    assert set(worse["periods"]) == {"2016", "2017"}
    assert set(worse["groups"]["SEX"]) == {"male", "female"}


# --------------------------------------------------------------------------- CLI and report


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def reference(params: Params) -> pd.DataFrame:
    return pd.read_parquet(REPO_ROOT / params.data.raw)


def _invoke(args: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[int, str]:
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "github_output"))
    result = CliRunner().invoke(app, [*args, "--params", str(DEMO_PARAMS)])
    return result.exit_code, result.output


def test_cli_reports_drift_with_exit_1(
    params: Params, reference: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.monitoring.simulate import simulate

    batch = simulate(reference=reference, kind="new_category", params=params, seed=1)
    current = _write(batch, tmp_path / "batch.parquet")
    out = tmp_path / "report"
    code, _ = _invoke(["drift", "--current", str(current), "--out-dir", str(out)], monkeypatch, tmp_path)
    assert code == 1
    report = json.loads((out / "drift.json").read_text())
    column = params.simulate.new_category.column
    assert report["verdict"] == drift.DRIFT
    assert column in report["data_drift"]["drifted_features"]
    spec = params.simulate.new_category
    assert report["data_drift"]["unseen_categories"][column] == {spec.code: round(spec.share * len(batch))}
    markdown = (out / "drift.md").read_text()
    assert markdown.startswith("# Drift check: **drift**")
    assert f"(plots/{column}.png)" in markdown
    assert (out / "plots" / f"{column}.png").is_file()
    assert (tmp_path / "github_output").read_text() == "drift=true\nverdict=drift\n"


def test_cli_is_deterministic_and_quiet_on_no_drift(
    params: Params, reference: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.monitoring.simulate import simulate

    current = _write(simulate(reference=reference, kind="none", params=params, seed=2), tmp_path / "b.parquet")
    outputs = []
    for run in ("a", "b"):
        code, _ = _invoke(
            ["drift", "--current", str(current), "--out-dir", str(tmp_path / run), "--no-plots"], monkeypatch, tmp_path
        )
        assert code == 0
        outputs.append((tmp_path / run / "drift.json").read_bytes())
    assert outputs[0] == outputs[1]


def test_cli_prediction_and_performance(
    params: Params, reference: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.monitoring.simulate import simulate

    rng = np.random.default_rng(8)
    batch = simulate(reference=reference, kind="none", params=params, seed=3)
    id_col, target, score = params.base.id_column, params.base.target, params.drift.prediction.score_column
    y = batch[target].to_numpy()
    preds = pd.DataFrame(
        {id_col: batch[id_col], score: np.clip(0.5 + (y - 0.5) * 0.5 + rng.normal(0, 0.2, len(y)), 0, 1)}
    )
    ref_preds = pd.DataFrame({score: rng.permutation(preds[score].to_numpy())})
    (tmp_path / "metrics.json").write_text(json.dumps({"roc_auc": 0.99, "accuracy": 0.99}))
    args = [
        "drift",
        "--current",
        str(_write(batch.drop(columns=[target]), tmp_path / "f.parquet")),
        "--predictions",
        str(_write(preds, tmp_path / "p.parquet")),
        "--labels",
        str(_write(batch[[id_col, target]], tmp_path / "l.parquet")),
        "--reference-predictions",
        str(_write(ref_preds, tmp_path / "r.parquet")),
        "--baseline",
        str(tmp_path / "metrics.json"),
        "--out-dir",
        str(tmp_path / "out"),
        "--no-plots",
    ]
    code, _ = _invoke(args, monkeypatch, tmp_path)
    report = json.loads((tmp_path / "out" / "drift.json").read_text())
    # Features and predictions are unchanged, but the model is far below its (inflated) baseline.
    assert report["data_drift"]["verdict"] == drift.NO_DRIFT
    assert report["prediction_drift"]["verdict"] == drift.NO_DRIFT
    assert report["performance"]["verdict"] == drift.DRIFT
    assert set(report["performance"]["groups"]) == set(params.fairness.groups)
    assert code == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.iloc[:0], "empty"),
        (lambda f: f.drop(columns=["AGEP"]), "lacks required columns: AGEP"),
        (lambda f: f.assign(AGEP=f["AGEP"].astype(str)), "'AGEP' of the current batch must be numeric"),
    ],
    ids=["empty", "missing-column", "wrong-type"],
)
def test_cli_bad_input_exits_2(
    reference: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: object, message: str
) -> None:
    current = _write(change(reference.head(50)), tmp_path / "bad.parquet")  # type: ignore[operator]
    code, output = _invoke(
        ["drift", "--current", str(current), "--out-dir", str(tmp_path / "o")], monkeypatch, tmp_path
    )
    assert code == 2
    assert message in output


def test_cli_tiny_batch_exits_2(reference: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    current = _write(reference.head(20), tmp_path / "tiny.parquet")
    code, _ = _invoke(
        ["drift", "--current", str(current), "--out-dir", str(tmp_path / "o"), "--no-plots"], monkeypatch, tmp_path
    )
    assert code == 2
    assert (tmp_path / "github_output").read_text() == f"drift=false\nverdict={drift.NOT_ENOUGH_DATA}\n"


def test_cli_exit_zero_on_verdict_leaves_the_verdict_to_the_outputs(
    params: Params, reference: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.monitoring.simulate import simulate

    drifted = _write(simulate(reference=reference, kind="new_category", params=params, seed=1), tmp_path / "d.parquet")
    tiny = _write(reference.head(20), tmp_path / "tiny.parquet")
    expected = []
    for current, verdict in ((drifted, drift.DRIFT), (tiny, drift.NOT_ENOUGH_DATA)):
        args = ["drift", "--current", str(current), "--out-dir", str(tmp_path / "o"), "--no-plots"]
        code, output = _invoke([*args, "--exit-zero-on-verdict"], monkeypatch, tmp_path)
        assert code == 0, output
        assert f"drift check: {verdict}" in output
        expected.append(f"drift={'true' if verdict == drift.DRIFT else 'false'}\nverdict={verdict}\n")
    assert (tmp_path / "github_output").read_text() == "".join(expected)


def test_cli_exit_zero_on_verdict_still_fails_on_bad_input(
    reference: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    current = _write(reference.head(50).drop(columns=["AGEP"]), tmp_path / "bad.parquet")
    args = ["drift", "--current", str(current), "--out-dir", str(tmp_path / "o"), "--exit-zero-on-verdict"]
    code, output = _invoke(args, monkeypatch, tmp_path)
    assert code == 2
    assert "lacks required columns: AGEP" in output
    assert not (tmp_path / "github_output").exists()
