"""Credentials in the tracking URI and the prediction-log URL reach no output of core: MLflow
gets the password apart from the URI, the run summary and the log's errors mask it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pipeline.core import io, predlog, runner, tracking
from pipeline.core.redact import MASK
from tests.conftest import DEMO_PARAMS, REPO_ROOT

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-Pa55"
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "report"


@pytest.fixture
def clean_auth_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's basic-auth variables unset, and restored to that after the test."""
    for name in (tracking.USERNAME_ENV, tracking.PASSWORD_ENV):
        # setenv first: delenv of an unset variable would record nothing to undo.
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


@pytest.mark.usefixtures("clean_auth_env")
def test_the_password_moves_from_the_uri_to_mlflows_auth_variables() -> None:
    uri = tracking.move_credentials(uri=f"https://ci%2Dbot:{SECRET}%40x@tracking.example.com:8443/mlflow")
    assert uri == "https://tracking.example.com:8443/mlflow"
    assert os.environ[tracking.USERNAME_ENV] == "ci-bot"
    assert os.environ[tracking.PASSWORD_ENV] == f"{SECRET}@x"


@pytest.mark.usefixtures("clean_auth_env")
@pytest.mark.parametrize(
    "uri",
    ["sqlite:///mlflow.db", "http://127.0.0.1:5000", "http://reader@127.0.0.1:5000", "databricks://profile"],
)
def test_a_uri_without_a_password_is_left_as_it_is(uri: str) -> None:
    assert tracking.move_credentials(uri=uri) == uri
    assert tracking.USERNAME_ENV not in os.environ
    assert tracking.PASSWORD_ENV not in os.environ


@pytest.mark.usefixtures("clean_auth_env")
def test_mlflow_module_cleans_the_tracking_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tracking.TRACKING_ENV, f"http://ci-bot:{SECRET}@127.0.0.1:5000")
    tracking.mlflow_module()
    assert os.environ[tracking.TRACKING_ENV] == "http://127.0.0.1:5000"
    assert os.environ[tracking.PASSWORD_ENV] == SECRET


def test_the_run_summary_masks_the_tracking_password(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    shutil.copy2(DEMO_PARAMS, tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    reports = tmp_path / "reports"
    reports.mkdir()
    for name in ("metrics", "fairness", "run"):
        shutil.copy2(FIXTURES / f"{name}.json", reports / f"{name}.json")
    io.write_json({"chosen": "m", "leaderboard": [{}], "primary_metric": "roc_auc"}, reports / "train.json")
    monkeypatch.setenv(tracking.TRACKING_ENV, f"http://ci-bot:{SECRET}@tracking.example.com")

    text = runner.summary(params_path=Path("params.yaml"))
    assert SECRET not in text
    assert f"http://{MASK}@tracking.example.com" in text


def test_prediction_log_errors_mask_the_password(tmp_path: Path) -> None:
    with pytest.raises(predlog.PredictionLogError) as unsupported:
        predlog.open_store(f"mysql://log:{SECRET}@db.internal/log")
    assert SECRET not in str(unsupported.value)
    assert f"mysql://{MASK}@db.internal/log" in str(unsupported.value)
    with pytest.raises(predlog.PredictionLogError) as missing:
        predlog.read_log(url=f"sqlite:///{tmp_path}/log.db?password={SECRET}")
    assert SECRET not in str(missing.value)
    assert not (tmp_path / "log.db").exists()
