"""The PR report is posted on the pull request: no credential from the tracking URI, the gate's
notes or DVC's errors may reach it.
"""

from __future__ import annotations

import json

import pytest

from pipeline.ci import report
from pipeline.core.redact import MASK
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-Pa55"
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "report"


def test_the_mlflow_link_keeps_the_host_and_drops_the_password() -> None:
    link = report.mlflow_link(
        run={"run_id": "abc123", "experiment": "e"}, tracking_uri=f"https://ci-bot:{SECRET}@tracking.example.com/"
    )
    assert link is not None
    assert SECRET not in json.dumps(link)
    assert link["url"] == f"https://{MASK}@tracking.example.com/#/runs/abc123"
    text = report.render(inputs={"mlflow": link})
    assert f"[abc123](https://{MASK}@tracking.example.com/#/runs/abc123)" in text


def test_notes_and_dvc_errors_quoting_credentials_are_masked() -> None:
    gate = json.loads((FIXTURES / "gate.json").read_text(encoding="utf-8"))
    gate["champion_source"] = {"kind": "none", "detail": f"registry at http://ci-bot:{SECRET}@tracking.example.com"}
    text = report.render(
        inputs={
            "base": "main",
            "gate": gate,
            "metrics_diff": f"ERROR: failed to pull from https://dvc:{SECRET}@remote.example.com/cache",
        }
    )
    assert SECRET not in text
    assert f"https://{MASK}@remote.example.com/cache" in text
