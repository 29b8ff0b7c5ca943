"""The live loop on PostgreSQL and a DVC remote, no committed production file involved: two months
of real 2016-2017 demo traffic in the prediction log with association ids, today's requests
through the real service, the first month's labels late through its POST /feedback and the
second month's imported from a CSV, the drift check from the log (performance per week from the
joined labels, label coverage), retraining from the log window into the DVC remote, and a
retraining commit that holds a `.dvc` pointer and no table, which `dvc pull` restores in a fresh
clone where the pipeline is up to date.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from pipeline.core import io, params_edit, predlog
from pipeline.core.config import Params, load_params
from pipeline.core.schema import conform, request_features
from pipeline.delivery import loadgen
from tests import live_support as live
from tests.conftest import REPO_ROOT, copy_template, tool_env
from tests.predlog_support import postgres_database

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
MONTH_ROWS = 2500
SERVED_ROWS = 60
DAY = live.DAY


def _run(repo: Path, *cmd: str, timeout: int = 900, **env: str) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH: the copy's own code answers `pipeline`, as on the team's machine.
    return subprocess.run(
        list(cmd),
        cwd=repo,
        env=tool_env(PYTHONPATH=str(repo), **env),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(map(str, result.args))}:\n{output[-5000:]}"
    return output


def _make(repo: Path, target: str, *variables: str, **env: str) -> str:
    # `-o env`: the environment is this test run's; never rebuild it from the copy.
    return _ok(_run(repo, "make", "-o", "env", target, f"VENV={BIN.parent}", *variables, **env))


def _set_params(repo: Path, values: dict[str, str]) -> None:
    path = repo / "params.yaml"
    text = path.read_text(encoding="utf-8")
    for key, value in values.items():
        text = params_edit.set_scalar(text=text, key=key, value=value)
    path.write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template with a committed folder remote and the live windows, after one pipeline run."""
    root = tmp_path_factory.mktemp("live")
    repo = copy_template(root / "repo", sample_rows=6000)
    remote = root / "remote"
    remote.mkdir()
    _ok(_run(repo, str(BIN / "dvc"), "remote", "add", "-d", "storage", str(remote)))
    # Two months of traffic in both windows; the floor is what two labelled months hold.
    _set_params(
        repo,
        {"drift.window": "70d", "retrain.window": "70d", "retrain.min_labelled_rows": str(2 * MONTH_ROWS)},
    )
    _ok(_run(repo, str(BIN / "dvc"), "repro"))
    _ok(_run(repo, "git", "add", "-A"))
    _ok(_run(repo, "git", "commit", "-qm", "A DVC remote, the live windows and the first model"))
    return repo


@pytest.fixture(scope="module")
def log_url(postgres_url: str) -> Iterator[str]:
    with postgres_database(postgres_url, prefix="live") as url:
        yield url


@pytest.fixture(scope="module")
def months(params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (
        live.demo_month(REPO_ROOT, params, year=2016, rows=MONTH_ROWS, seed=1),
        live.demo_month(REPO_ROOT, params, year=2017, rows=MONTH_ROWS, seed=2),
    )


def _scores(repo: Path, params: Params, frame: pd.DataFrame) -> list[float]:
    model = io.load_model(repo / params.paths.model)
    features = conform(frame, params, with_target=False)[list(params.data.features)]
    return [float(s) for s in model.predict_proba(features)[:, 1]]


@pytest.fixture(scope="module")
def service(repo: Path, log_url: str) -> Iterator[str]:
    """`pipeline serve` of the trained model, logging to PostgreSQL."""
    port = loadgen.free_port()
    cmd = [sys.executable, "-m", "pipeline", "serve", "--env", "production", "--model", "models/model.skops"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-url", log_url]
    with (repo.parent / "serve.log").open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=repo, env=tool_env(PYTHONPATH=str(repo)), stdout=out, stderr=subprocess.STDOUT)
    try:
        loadgen.wait_until_ok(url=f"http://127.0.0.1:{port}/ready", timeout=120, process=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


@pytest.fixture(scope="module")
def traffic(
    repo: Path, log_url: str, service: str, months: tuple[pd.DataFrame, pd.DataFrame], params: Params
) -> dict[str, list[str]]:
    """Two months of answers with association ids (the older first), then today's through the service."""
    now = time.time()
    first, second = months
    for frame, start, end in ((first, now - 60 * DAY, now - 31 * DAY), (second, now - 30 * DAY, now - DAY)):
        times = live.spread(start=start, end=end, count=len(frame))
        live.write_log(log_url, live.answers(frame, params, times=times, scores=_scores(repo, params, frame)))
    today = live.demo_month(REPO_ROOT, params, year=2018, rows=SERVED_ROWS, seed=3)
    served = []
    for row in today.to_dict(orient="records"):
        association_id = f"today-{row[params.base.id_column]}"
        answer = httpx.post(
            f"{service}/predict",
            json={"association_id": association_id, "features": request_features(row, params.data)},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        served.append(answer.json()["association_id"])
    deadline = time.monotonic() + 30
    while not set(served) <= set(predlog.read_log(url=log_url)["association_id"]):
        assert time.monotonic() < deadline, "the service's answers never reached the log"
        time.sleep(0.2)
    return {"first": [str(i) for i in first[params.base.id_column]], "served": served}


@pytest.fixture(scope="module")
def labelled(
    repo: Path, log_url: str, service: str, traffic: dict[str, list[str]], months: tuple[pd.DataFrame, pd.DataFrame]
) -> str:
    """The first month's labels posted late to the service; the second's imported from a CSV."""
    params = load_params(repo / "params.yaml")
    first, second = months
    target, id_column = params.base.target, params.base.id_column
    body = [{"association_id": str(i), "label": int(v)} for i, v in zip(first[id_column], first[target], strict=True)]
    for start in range(0, len(body), params.labels.max_batch):
        answer = httpx.post(f"{service}/feedback", json=body[start : start + params.labels.max_batch], timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["unmatched"] == []
    export = repo.parent / "outcomes.csv"
    pd.DataFrame(
        {params.labels.id_column: second[id_column].astype(str), params.labels.label_column: second[target]}
    ).to_csv(export, index=False)
    return _ok(_run(repo, str(BIN / "pipeline"), "labels", "import", str(export), PREDICTION_LOG_URL=log_url))


def test_labels_arrive_by_feedback_and_import(labelled: str, log_url: str) -> None:
    assert f"{MONTH_ROWS} ids matched a logged prediction, 0 unmatched" in labelled
    assert predlog.label_count(log_url) == 2 * MONTH_ROWS
    joined = predlog.labelled_predictions(log_url, environment="production")
    assert set(joined["label_source"]) == {"feedback", "import:outcomes.csv"}


def test_drift_check_reads_the_log_and_reports_performance_per_week(
    repo: Path, log_url: str, labelled: str, tmp_path: Path
) -> None:
    output = tmp_path / "github_output"
    _make(repo, "drift-check", PREDICTION_LOG_URL=log_url, GITHUB_OUTPUT=str(output))
    params = load_params(repo / "params.yaml")
    summary = json.loads((repo / params.drift.out_dir / "drift.json").read_text(encoding="utf-8"))
    labels = summary["labels"]
    assert (labels["predicted"], labels["labelled"]) == (2 * MONTH_ROWS + SERVED_ROWS, 2 * MONTH_ROWS)
    perf = summary["performance"]
    weeks = perf["periods"]
    assert len(weeks) >= 9
    assert sum(w["rows"] for w in weeks.values()) == 2 * MONTH_ROWS
    judged = [w for w in weeks.values() if w.get("roc_auc") is not None]
    assert len(judged) >= 6
    assert all(w["roc_auc"] > 0.8 for w in judged)
    # Today's answers wait for their labels: the newest week is the one not fully covered.
    assert weeks[max(weeks)]["coverage"] < 1.0
    assert set(perf["groups"]["SEX"]) == {"male", "female"}
    assert summary["prediction_drift"] is not None
    written = output.read_text(encoding="utf-8")
    assert f"verdict={summary['verdict']}" in written


def test_retraining_commits_a_pointer_and_a_fresh_clone_pulls_the_table(
    repo: Path, log_url: str, labelled: str, traffic: dict[str, list[str]], tmp_path: Path
) -> None:
    params = load_params(repo / "params.yaml")
    champion = repo / ".champion" / "model.skops"
    champion.parent.mkdir(exist_ok=True)
    shutil.copy2(repo / params.paths.model, champion)
    output = tmp_path / "github_output"
    printed = _make(repo, "retrain", PREDICTION_LOG_URL=log_url, GITHUB_OUTPUT=str(output))
    assert "retraining ready: retrained on data/raw/retrain-" in printed
    assert "-> DVC remote 'storage'" in printed
    assert output.read_text(encoding="utf-8").startswith("status=ready\n")
    retrained = load_params(repo / "params.yaml")
    table = retrained.data.raw
    pointer = Path(f"{table.as_posix()}.dvc")
    assert table != params.data.raw
    assert (repo / pointer).is_file()
    frame = pd.read_parquet(repo / table)
    assert len(frame) == len(pd.read_parquet(repo / params.retrain.reference)) + 2 * MONTH_ROWS
    # The labelled ids are in; today's answers, unlabelled, stay out.
    ids = set(frame[params.base.id_column].astype(str))
    assert set(traffic["first"]) <= ids
    assert not ids & set(traffic["served"])
    paths = _ok(_run(repo, str(BIN / "pipeline"), "retrain", "paths")).split()
    assert pointer.as_posix() in paths
    assert "dvc.lock" in paths
    assert not [p for p in paths if p.endswith(".parquet")]
    _ok(_run(repo, "git", "checkout", "-qb", "retrain/drift"))
    _ok(_run(repo, "git", "add", "--", *paths))
    _ok(_run(repo, "git", "commit", "-qm", "Retrain on recent labelled production data"))
    committed = _ok(_run(repo, "git", "show", "--name-only", "--format=", "HEAD")).split()
    assert pointer.as_posix() in committed
    assert not [p for p in committed if p.endswith(".parquet")]
    # The table stays out of git even uncommitted: DVC ignored it.
    assert table.as_posix() not in _ok(_run(repo, "git", "status", "--porcelain", "--untracked-files=all"))
    digest = hashlib.md5((repo / table).read_bytes(), usedforsecurity=False).hexdigest()
    fresh = tmp_path / "fresh"
    _ok(_run(tmp_path, "git", "clone", "-q", "-b", "retrain/drift", str(repo), str(fresh)))
    assert not (fresh / table).exists()
    _ok(_run(fresh, str(BIN / "dvc"), "pull"))
    assert hashlib.md5((fresh / table).read_bytes(), usedforsecurity=False).hexdigest() == digest
    # Everything the branch's dvc.lock names came back: CI on it need not rebuild anything.
    status = _ok(_run(fresh, str(BIN / "dvc"), "status"))
    assert "up to date" in status
