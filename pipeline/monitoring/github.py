"""The drift workflow's two touches of GitHub: checking that the pull-request token is there, and
the single alert issue opened (or updated) when drift is found but retraining is refused.

A pull request opened with the workflow's own GITHUB_TOKEN triggers no workflow, so the
retraining PR would never be checked by CI: the workflow needs a GitHub App token or a
fine-grained personal access token, passed from a secret, and says so plainly when it is missing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from pipeline.core.redact import redact

logger = logging.getLogger(__name__)

DEFAULT_API = "https://api.github.com"
# One open issue carries this label; later alerts update it instead of opening another.
ALERT_LABEL = "drift-alert"
ALERT_TITLE = "Drift found, retraining not possible yet"
TIMEOUT_SECONDS = 30.0

ERR_NO_TOKEN = (
    "the environment variable {name} is empty: the drift workflow needs a GitHub App token or a fine-grained "
    "personal access token (contents and pull requests: read and write) in the repository secret {name}; "
    "a pull request opened with GITHUB_TOKEN would trigger no CI. See README, 'Drift workflow'."
)
ERR_NO_REPO = "GITHUB_REPOSITORY is not set (owner/name): run inside GitHub Actions or set it"
ERR_API = "GitHub API {method} {path} answered {status}: {detail}"
ERR_NETWORK = "GitHub API {method} {path} could not be reached: {detail}"


class GitHubError(RuntimeError):
    """A token is missing or the GitHub API refused a call."""

    def __init__(self, message: str) -> None:
        # The API's answer is quoted verbatim: a URL it echoes must not keep a credential.
        super().__init__(redact(message))


def require_token(*, name: str, environ: Mapping[str, str] | None = None) -> str:
    """The token from the named variable, or a message that says what to configure."""
    value = (os.environ if environ is None else environ).get(name, "").strip()
    if not value:
        raise GitHubError(ERR_NO_TOKEN.format(name=name))
    return value


def alert_body(*, why: Sequence[str], reason: str, run_url: str | None) -> str:
    """The issue text: what the check found and why no retraining pull request was opened."""
    lines = [
        "The scheduled drift check found drift, but retraining was refused:",
        "",
        f"> {reason}",
        "",
        "## Findings",
        "",
        *why,
        "",
        "Label more production data (for example with `pipeline sample export`) or wait for labels to arrive; "
        "the next run retrains and opens a pull request once there are enough. This issue is updated, "
        "not duplicated, by later runs.",
    ]
    if run_url:
        lines += ["", f"Run: {run_url}"]
    # The issue is public to the repository: the refusal reason and the run link (from the
    # runner's environment) must not carry credentials there.
    return redact("\n".join(lines) + "\n")


def no_data_body(*, reason: str, run_url: str | None) -> str:
    """The issue text when there was nothing to check: a monitoring gap, not a drift finding."""
    lines = [
        "The scheduled drift check found no production data to check, so drift is not being watched:",
        "",
        f"> {reason or 'no production batch and no answers in the prediction log window'}",
        "",
        "Check that the service writes to the prediction log named by the secret PREDICTION_LOG_URL "
        "(or that the batch file in DRIFT_CURRENT exists). This issue is updated, not duplicated, by later runs.",
    ]
    if run_url:
        lines += ["", f"Run: {run_url}"]
    return redact("\n".join(lines) + "\n")


def _call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    try:
        response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        # No network, DNS or a timeout: one line for the job log, not httpx's traceback.
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise GitHubError(ERR_NETWORK.format(method=method, path=path, detail=detail)) from exc
    if response.status_code >= 400:
        detail = response.text[:300]
        raise GitHubError(ERR_API.format(method=method, path=path, status=response.status_code, detail=detail))
    return response.json()


def open_or_update_alert(*, client: httpx.Client, repo: str, body: str) -> tuple[str, int]:
    """("opened" | "updated", issue number): the one open issue labelled ALERT_LABEL."""
    found = _call(client, "GET", f"/repos/{repo}/issues", params={"labels": ALERT_LABEL, "state": "open"})
    issues = [i for i in found if "pull_request" not in i]
    if issues:
        number = int(min(i["number"] for i in issues))
        _call(client, "PATCH", f"/repos/{repo}/issues/{number}", json={"body": body})
        return "updated", number
    created = _call(
        client, "POST", f"/repos/{repo}/issues", json={"title": ALERT_TITLE, "body": body, "labels": [ALERT_LABEL]}
    )
    return "opened", int(created["number"])


def client_for(*, token: str, api_url: str | None = None, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=api_url or os.environ.get("GITHUB_API_URL") or DEFAULT_API,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        },
        timeout=TIMEOUT_SECONDS,
        transport=transport,
    )


def run_url(environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    parts = [env.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
    return f"{parts[0]}/{parts[1]}/actions/runs/{parts[2]}" if all(parts) else None
