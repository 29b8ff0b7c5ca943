"""The drift workflow's GitHub calls: the token check and the single alert issue (API mocked)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.monitoring import github
from tests.conftest import DEMO_PARAMS

pytestmark = pytest.mark.unit


def test_preflight_names_the_missing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RETRAIN_TOKEN", raising=False)
    missing = CliRunner().invoke(app, ["github", "preflight", "--token-env", "RETRAIN_TOKEN"])
    assert missing.exit_code == 1
    assert "RETRAIN_TOKEN is empty" in missing.output
    assert "GITHUB_TOKEN would trigger no CI" in missing.output
    monkeypatch.setenv("RETRAIN_TOKEN", "  ")
    assert CliRunner().invoke(app, ["github", "preflight"]).exit_code == 1
    monkeypatch.setenv("RETRAIN_TOKEN", "token")
    assert CliRunner().invoke(app, ["github", "preflight"]).exit_code == 0


class FakeGitHub:
    """Issues of one repository, enough of the REST API for open-or-update."""

    def __init__(self, issues: list[dict[str, object]]) -> None:
        self.issues = issues
        self.calls: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path))
        assert request.headers["Authorization"] == "Bearer t0ken"
        if request.method == "GET":
            label = request.url.params["labels"]
            return httpx.Response(200, json=[i for i in self.issues if label in i["labels"]])
        if request.method == "POST":
            body = json.loads(request.content)
            issue = {"number": len(self.issues) + 1, "labels": body["labels"], "body": body["body"]}
            self.issues.append(issue)
            return httpx.Response(201, json=issue)
        number = int(request.url.path.rsplit("/", 1)[1])
        issue = next(i for i in self.issues if i["number"] == number)
        issue["body"] = json.loads(request.content)["body"]
        return httpx.Response(200, json=issue)


def test_alert_opens_once_then_updates() -> None:
    fake = FakeGitHub([{"number": 1, "labels": ["bug"], "body": "", "pull_request": {}}])
    with github.client_for(token="t0ken", api_url="https://api.test", transport=httpx.MockTransport(fake)) as client:
        assert github.open_or_update_alert(client=client, repo="o/r", body="first") == ("opened", 2)
        assert github.open_or_update_alert(client=client, repo="o/r", body="second") == ("updated", 2)
    assert [i["body"] for i in fake.issues if i["number"] == 2] == ["second"]
    assert sum(1 for m, _ in fake.calls if m == "POST") == 1


def test_api_refusal_is_a_clear_error() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(403, json={"message": "Resource not accessible"}))
    with (
        github.client_for(token="t0ken", api_url="https://api.test", transport=transport) as client,
        pytest.raises(github.GitHubError, match=r"answered 403: .*Resource not accessible"),
    ):
        github.open_or_update_alert(client=client, repo="o/r", body="x")


def test_alert_body_says_why() -> None:
    body = github.alert_body(why=["- Data drift in `AGEP`"], reason="only 10 rows", run_url="https://x/run/1")
    assert "> only 10 rows" in body
    assert "`AGEP`" in body
    assert "https://x/run/1" in body


def test_alert_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end through the command: the refusal reason from the retrain policy lands in the issue."""
    fake = FakeGitHub([])
    real_client = github.client_for
    monkeypatch.setattr(
        github, "client_for", lambda *, token: real_client(token=token, transport=httpx.MockTransport(fake))
    )
    monkeypatch.chdir(tmp_path)
    shutil.copy(DEMO_PARAMS, tmp_path / "params.yaml")
    (tmp_path / "drift.json").write_text(
        json.dumps({"verdict": "drift", "data_drift": {"drifted_features": ["AGEP"], "features": {}}}), encoding="utf-8"
    )
    monkeypatch.setenv("GITHUB_TOKEN", "t0ken")
    monkeypatch.delenv("GITHUB_REPOSITORY", raising=False)
    no_repo = CliRunner().invoke(app, ["github", "alert", "--drift", "drift.json"])
    assert no_repo.exit_code == 1
    assert "GITHUB_REPOSITORY is not set" in no_repo.output
    monkeypatch.setenv("GITHUB_REPOSITORY", "o/r")
    result = CliRunner().invoke(app, ["github", "alert", "--drift", "drift.json"])
    assert result.exit_code == 0, result.output
    assert "opened issue #1" in result.output
    # No production folder in this project: the reason names it.
    assert "production data folder does not exist" in str(fake.issues[0]["body"])
    assert "`AGEP`" in str(fake.issues[0]["body"])
