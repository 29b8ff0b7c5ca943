"""Canary verdicts from fixed prediction logs, the manifest edit of --apply, and the log itself."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core import predlog
from pipeline.core.config import Params
from pipeline.delivery import canary
from tests.conftest import demo_params_text

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0


def _records(
    *,
    version: str,
    role: str,
    n: int,
    rng: np.random.Generator,
    latency_ms: float,
    error_rate: float = 0.0,
    score_shift: float = 0.0,
    prefix: str,
    env: str = "staging",
) -> list[predlog.LogRecord]:
    scores = np.clip(rng.beta(2, 2, size=n) + score_shift, 0, 1)
    failed = rng.random(n) < error_rate
    return [
        predlog.record(
            association_id=f"{prefix}-{i}",
            env=env,
            model_name="m",
            model_version=version,
            role=role,
            inputs={"x": i},
            score=None if failed[i] else float(scores[i]),
            latency_ms=latency_ms * (1 + 0.1 * rng.random()),
            error="boom" if failed[i] else None,
            ts=NOW - 60 + i * 1e-3,
        )
        for i in range(n)
    ]


def _log(records: list[predlog.LogRecord], path: Path) -> str:
    store = predlog.open_store(str(path))
    store.write(records)
    store.close()
    return str(path)


def _scenario(params: Params, tmp_path: Path, **challenger: float) -> pd.DataFrame:
    g = params.deploy.guardrails
    rng = np.random.default_rng(0)
    n = g.min_requests * 2
    fast = g.max_p99_latency_ms / 4
    rows = _records(version="1", role="champion", n=n * 4, rng=rng, latency_ms=fast, prefix="a")
    rows += _records(
        version="2",
        role="challenger",
        n=int(challenger.pop("n", n)),
        rng=rng,
        latency_ms=challenger.pop("latency_ms", fast),
        prefix="b",
        **challenger,
    )
    return predlog.read_log(url=_log(rows, tmp_path / "log.db"))


def _verdict(params: Params, log: pd.DataFrame, labels: pd.DataFrame | None = None) -> canary.Verdict:
    return canary.evaluate_log(
        log=log, champion="1", challenger="2", guardrails=params.deploy.guardrails, labels=labels, params=params
    )


def test_healthy_challenger_is_promoted(params: Params, tmp_path: Path) -> None:
    verdict = _verdict(params, _scenario(params, tmp_path))
    assert verdict.decision == "promote", verdict.reasons
    assert verdict.challenger.requests == params.deploy.guardrails.min_requests * 2


def test_thin_traffic_holds(params: Params, tmp_path: Path) -> None:
    verdict = _verdict(params, _scenario(params, tmp_path, n=params.deploy.guardrails.min_requests - 1))
    assert verdict.decision == "hold"
    assert "not enough traffic" in verdict.reasons[0]


@pytest.mark.parametrize(
    ("change", "guardrail"),
    [
        ("errors", "error rate"),
        ("latency", "p99 latency"),
        ("scores", "prediction distance"),
    ],
)
def test_breached_guardrail_rolls_back(params: Params, tmp_path: Path, change: str, guardrail: str) -> None:
    g = params.deploy.guardrails
    kwargs = {
        "errors": {"error_rate": min(1.0, g.max_error_rate * 5 + 0.05)},
        "latency": {"latency_ms": g.max_p99_latency_ms * 2},
        "scores": {"score_shift": 0.6},
    }[change]
    verdict = _verdict(params, _scenario(params, tmp_path, **kwargs))
    assert verdict.decision == "roll back"
    assert any(r.startswith(guardrail) for r in verdict.reasons), verdict.reasons


def test_hopeless_error_count_rolls_back_before_minimum(params: Params, tmp_path: Path) -> None:
    g = params.deploy.guardrails
    verdict = _verdict(params, _scenario(params, tmp_path, n=g.min_requests - 1, error_rate=1.0))
    assert verdict.decision == "roll back"


def test_accuracy_from_late_labels(params: Params, tmp_path: Path) -> None:
    log = _scenario(params, tmp_path)
    target, id_column = params.base.target, params.base.id_column
    challenger = log[log["model_version"] == "2"]
    # Labels that contradict every challenger prediction: accuracy 0.
    wrong = (challenger["score"] < params.evaluate.threshold).astype(int)
    labels = pd.DataFrame({id_column: challenger["association_id"], target: wrong})
    if len(labels) < params.canary.min_labelled:
        pytest.skip("params need more labelled rows than this scenario logs")
    verdict = _verdict(params, log, labels)
    assert verdict.challenger.accuracy == 0.0
    assert verdict.decision == "roll back"
    assert any(r.startswith("accuracy") for r in verdict.reasons)
    right = labels.assign(**{target: 1 - wrong})
    assert _verdict(params, log, right).decision == "promote"


def test_accuracy_is_judged_against_the_champion_without_a_floor(params: Params, tmp_path: Path) -> None:
    g = params.deploy.guardrails.model_copy(update={"min_accuracy": None, "max_accuracy_drop": 0.02})
    log = _scenario(params, tmp_path)
    target, id_column = params.base.target, params.base.id_column
    predicted = (log["score"] >= params.evaluate.threshold).astype(int)
    challenger = (log["model_version"] == "2").to_numpy()
    # Every champion answer right; a tenth of the challenger's wrong: a drop of 0.1.
    wrong = challenger & (np.cumsum(challenger) % 10 == 0)
    labels = pd.DataFrame({id_column: log["association_id"], target: np.where(wrong, 1 - predicted, predicted)})

    def verdict(frame: pd.DataFrame) -> canary.Verdict:
        return canary.evaluate_log(log=log, champion="1", challenger="2", guardrails=g, labels=frame, params=params)

    dropped = verdict(labels)
    assert dropped.decision == "roll back"
    assert any(r.startswith("accuracy drop from champion") for r in dropped.reasons), dropped.reasons
    assert not any(c.name == "accuracy (labelled)" for c in dropped.checks)
    assert verdict(labels.assign(**{target: predicted})).decision == "promote"


def test_score_distance_bounds() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(5000)
    assert canary.score_distance(reference=a, current=a, bins=20) == pytest.approx(0.0)
    assert canary.score_distance(reference=a * 0.1, current=0.9 + a * 0.1, bins=20) == pytest.approx(1.0)


def _workspace(params: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str = "canary") -> Path:
    monkeypatch.chdir(tmp_path)
    manifests = tmp_path / params.deploy.manifests
    manifests.mkdir(parents=True)
    share = params.deploy.canary_share if strategy == "canary" else 0.0
    body = {
        "model": params.tracking.registered_model,
        "champion": 1,
        "challenger": 2,
        "strategy": strategy,
        "traffic_share": share,
    }
    path = manifests / "staging.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


@pytest.mark.parametrize(("scenario", "decision"), [({}, "promote"), ({"score_shift": 0.6}, "roll back")])
def test_apply_edits_the_manifest(
    params: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scenario: dict[str, float], decision: str
) -> None:
    manifest = _workspace(params, tmp_path, monkeypatch)
    _scenario(params, tmp_path, **scenario)
    outcome = canary.analyze(
        params=params, env="staging", log_url=str(tmp_path / "log.db"), apply=True, now=NOW, out_dir=tmp_path / "r"
    )
    assert outcome.verdict is not None
    assert outcome.verdict.decision == decision
    edited = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    assert edited["champion"] == (2 if decision == "promote" else 1)
    assert edited["challenger"] is None
    assert edited["strategy"] == "none"
    report = (tmp_path / "r" / "staging.md").read_text(encoding="utf-8")
    assert f"Verdict: {decision}" in report
    assert json.loads((tmp_path / "r" / "staging.json").read_text(encoding="utf-8"))["decision"] == decision


def test_hold_leaves_the_manifest_and_window_excludes_old_rows(
    params: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _workspace(params, tmp_path, monkeypatch, strategy="shadow")
    before = manifest.read_text(encoding="utf-8")
    _scenario(params, tmp_path)
    later = NOW + params.canary.window_hours * 3600 + 120
    outcome = canary.analyze(
        params=params, env="staging", log_url=str(tmp_path / "log.db"), apply=True, now=later, out_dir=tmp_path
    )
    assert outcome.verdict is not None
    assert outcome.verdict.decision == "hold"
    assert outcome.manifest is None
    assert manifest.read_text(encoding="utf-8") == before


def test_cli_reports_verdict_and_refuses_missing_log(
    params: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _workspace(params, tmp_path, monkeypatch)
    (tmp_path / "params.yaml").write_text(demo_params_text(), encoding="utf-8")
    missing = CliRunner().invoke(app, ["canary", "analyze", "--env", "staging", "--log-url", str(tmp_path / "nope.db")])
    assert missing.exit_code == 2
    assert "prediction log not found" in missing.output
    rows = _records(
        version="1",
        role="champion",
        n=3,
        rng=np.random.default_rng(0),
        latency_ms=1,
        prefix="c",
    )
    _log([dataclasses.replace(r, ts=time.time() - 5) for r in rows], tmp_path / "now.db")
    result = CliRunner().invoke(
        app, ["canary", "analyze", "--env", "staging", "--log-url", str(tmp_path / "now.db"), "--out-dir", "out"]
    )
    assert result.exit_code == 0, result.output
    assert "canary verdict: hold" in result.output
    assert (tmp_path / "out" / "staging.md").is_file()


# --------------------------------------------------------------------------- prediction log


def test_log_round_trip_window_and_env(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = _records(version="1", role="champion", n=10, rng=rng, latency_ms=2, prefix="x")
    rows += _records(version="1", role="champion", n=5, rng=rng, latency_ms=2, prefix="y", env="production")
    url = _log(rows, tmp_path / "log.db")
    everything = predlog.read_log(url=url)
    assert len(everything) == 15
    staging = predlog.read_log(url=url, env="staging", start=NOW - 60, end=NOW - 60 + 5e-3)
    assert list(staging["association_id"]) == [f"x-{i}" for i in range(5)]
    assert str(staging["timestamp"].dt.tz) == "UTC"
    assert json.loads(staging.loc[0, "inputs"]) == {"x": 0}


def test_writer_flushes_in_background_and_on_close(tmp_path: Path, params: Params) -> None:
    store = predlog.open_store(str(tmp_path / "w.db"))
    log = params.serve.log
    writer = predlog.LogWriter(
        store=store, flush_rows=log.flush_rows, flush_seconds=log.flush_seconds, queue_rows=log.queue_rows
    )
    rows = _records(
        version="1", role="champion", n=log.flush_rows + 7, rng=np.random.default_rng(0), latency_ms=1, prefix="w"
    )
    writer.submit(rows)
    writer.close()
    assert writer.stats.written == len(rows)
    assert len(predlog.read_log(url=str(tmp_path / "w.db"))) == len(rows)


def test_writer_drops_instead_of_blocking_when_full(tmp_path: Path) -> None:
    class Slow:
        def write(self, rows: object) -> None:
            time.sleep(0.2)

        def read(self, **_: object) -> pd.DataFrame:
            raise NotImplementedError

        def close(self) -> None:
            pass

    writer = predlog.LogWriter(store=Slow(), flush_rows=1, flush_seconds=0.01, queue_rows=2)
    rows = _records(version="1", role="champion", n=20, rng=np.random.default_rng(0), latency_ms=1, prefix="d")
    started = time.perf_counter()
    writer.submit(rows)
    assert time.perf_counter() - started < 0.1
    assert writer.stats.dropped >= 15
    writer.close()


def test_bad_log_urls_are_refused(tmp_path: Path) -> None:
    with pytest.raises(predlog.PredictionLogError, match="unsupported"):
        predlog.open_store("mysql://nope")
    with pytest.raises(predlog.PredictionLogError, match="not found"):
        predlog.read_log(url=str(tmp_path / "absent.db"))
    with pytest.raises(predlog.PredictionLogError, match="role"):
        predlog.record(
            association_id="a", env="e", model_name="m", model_version="1", role="x", inputs={}, score=0.5, latency_ms=1
        )
