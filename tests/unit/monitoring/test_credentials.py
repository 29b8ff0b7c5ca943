"""Credentials reach no output of the drift workflow's glue: the GitHub API's errors, the alert
issue, and the retraining refusal the command prints itself.
"""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core.redact import MASK
from pipeline.monitoring import github, retrain
from tests.conftest import DEMO_PARAMS

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-Pa55"


def test_an_api_answer_quoting_a_credential_is_masked() -> None:
    echoed = {"message": "Validation Failed", "documentation_url": f"https://bot:{SECRET}@ghe.example.com/docs"}
    transport = httpx.MockTransport(lambda request: httpx.Response(422, json=echoed))
    with (
        github.client_for(token="t0ken", api_url="https://api.test", transport=transport) as client,
        pytest.raises(github.GitHubError) as refused,
    ):
        github.open_or_update_alert(client=client, repo="o/r", body="x")
    assert SECRET not in str(refused.value)
    assert f"https://{MASK}@ghe.example.com/docs" in str(refused.value)


def test_the_alert_issue_masks_credentials() -> None:
    environ = {"GITHUB_SERVER_URL": f"https://bot:{SECRET}@ghe.example.com", "GITHUB_REPOSITORY": "o/r"}
    body = github.alert_body(
        why=["- Data drift in `AGEP`"],
        reason=f"labels at s3://bucket/labels?token={SECRET} hold 10 rows",
        run_url=github.run_url({**environ, "GITHUB_RUN_ID": "7"}),
    )
    assert SECRET not in body
    assert f"https://{MASK}@ghe.example.com/o/r/actions/runs/7" in body


def test_a_tolerated_refusal_is_printed_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**_: object) -> None:
        raise retrain.RetrainRefused(f"too few labels in postgresql://etl:{SECRET}@db.internal/labels")

    monkeypatch.setattr(retrain, "run", refuse)
    result = CliRunner().invoke(app, ["retrain", "--exit-zero-on-refusal", "--params", str(DEMO_PARAMS)])
    assert result.exit_code == 0, result.output
    assert "retraining refused" in result.output
    assert SECRET not in result.output
