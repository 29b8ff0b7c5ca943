"""The real pipeline, as a fork runs it: `dvc repro` in a fresh git repository."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.core.config import load_params
from tests.conftest import BIN, run

pytestmark = pytest.mark.e2e

OUTPUTS = (
    "reports/validation/validation.json",
    "reports/validation/data_docs/index.html",
    "reports/prepare.json",
    "reports/train.json",
    "reports/run.json",
    "reports/metrics.json",
    "reports/importance.json",
    "reports/fairness.json",
    "reports/fairness.md",
    "reports/plots/roc.csv",
    "reports/plots/confusion.csv",
    "models/model.skops",
    "model_card.md",
    "dvc.lock",
)


def test_repro_writes_every_output(pipeline_repo: Path) -> None:
    missing = [p for p in OUTPUTS if not (pipeline_repo / p).is_file()]
    assert not missing
    metrics = json.loads((pipeline_repo / "reports/metrics.json").read_text())
    assert metrics["roc_auc"] > 0.8
    assert set(metrics["per_class"]) == {"0", "1"}
    card = (pipeline_repo / "model_card.md").read_text()
    for section in ("## Model details", "## Intended use", "## Factors", "## Metrics", "## Ethical considerations"):
        assert section in card
    assert f"{metrics['roc_auc']:.4f}" in card


def test_run_is_logged_to_mlflow_with_lineage(pipeline_repo: Path) -> None:
    import os

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient

    params = load_params(pipeline_repo / "params.yaml")
    run_info = json.loads((pipeline_repo / "reports/run.json").read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{pipeline_repo / 'mlflow.db'}")
    logged = client.get_run(run_info["run_id"])
    head = run(["git", "rev-parse", "HEAD"], pipeline_repo).stdout.strip()
    assert logged.data.tags["git.commit"] == head
    lock = (pipeline_repo / "dvc.lock").read_text()
    assert logged.data.tags["data.raw.md5"] in lock  # the same hash DVC recorded
    assert logged.data.params["primary_metric"] == params.train.primary_metric
    children = client.search_runs(
        [logged.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{logged.info.run_id}'"
    )
    assert sorted(r.data.tags["candidate"] for r in children) == sorted(params.train.candidates)
    artifacts = [a.path for a in client.list_artifacts(logged.info.run_id)]
    assert artifacts or client.search_logged_models([logged.info.experiment_id])


def test_noop_repro_changes_nothing(pipeline_repo: Path) -> None:
    result = run([str(BIN / "dvc"), "status"], pipeline_repo)
    assert "up to date" in result.stdout


def test_forced_rerun_is_byte_identical(pipeline_repo: Path) -> None:
    # The model file too: the same model must keep its hash in dvc.lock, or no cache ever hits.
    paths = load_params(pipeline_repo / "params.yaml").paths
    files = (paths.reports / "metrics.json", paths.reports / "fairness.json", paths.model)
    before = {name: (pipeline_repo / name).read_bytes() for name in files}
    run([str(BIN / "dvc"), "repro", "--force"], pipeline_repo)
    after = {name: (pipeline_repo / name).read_bytes() for name in files}
    assert after == before


def test_pipeline_run_prints_summary(pipeline_repo: Path) -> None:
    result = run([str(BIN / "pipeline"), "run"], pipeline_repo)
    for word in ("ROC AUC", "fairness", "model card", "mlflow ui"):
        assert word in result.stdout
