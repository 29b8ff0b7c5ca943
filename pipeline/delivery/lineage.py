"""`pipeline lineage <version>`: where a registered model version came from and where it went,
from the registry (version tags, run, deploy history tags) and git alone.
"""

from __future__ import annotations

import logging
import subprocess
from typing import TYPE_CHECKING, Any

from pipeline.core.redact import redact
from pipeline.delivery import artifacts, deploy, registry, registry_client

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from pipeline.core.config import Params

logger = logging.getLogger(__name__)


def _git_commit_info(commit: str) -> dict[str, str]:
    try:
        out = subprocess.run(
            ["git", "show", "-s", "--format=%s%n%an%n%cI", commit], capture_output=True, text=True, check=False
        )
    except OSError:
        return {}
    lines = out.stdout.splitlines()
    if out.returncode != 0 or len(lines) < 3:
        return {}
    return {"subject": lines[0], "author": lines[1], "date": lines[2]}


def collect(*, params: Params, version: str, mlflow_client: MlflowClient | None = None) -> dict[str, Any]:
    """Everything known about one version, as plain data (the --json output)."""
    name = params.tracking.registered_model
    mlflow_client = mlflow_client or registry_client.client(params=params)
    mv = registry_client._model_version(mlflow_client, name=name, version=version)
    tags = dict(mv.tags or {})
    model = mlflow_client.get_registered_model(name)
    model_tags = dict(model.tags or {})
    run: dict[str, Any] = {"id": mv.run_id}
    try:
        info = mlflow_client.get_run(mv.run_id)
        run.update(name=info.info.run_name, params=dict(info.data.params), metrics=dict(info.data.metrics))
    except Exception as exc:  # the run may have been deleted; the version's tags still hold lineage
        # MLflow's request errors quote the tracking URI, credentials included.
        run["error"] = redact(str(exc))
    deployments = []
    for env in params.deploy.environments:
        for entry in deploy.history(tags=model_tags, env=env):
            roles = [r for r in ("champion", "challenger") if str(entry.get(r)) == str(mv.version)]
            was = [r for r in ("champion", "challenger") if entry.get(f"previous_{r}") == str(mv.version)]
            if roles or was:
                deployments.append({**entry, "roles": roles})
    commit = tags.get("git.commit", "unknown")
    return {
        "name": name,
        "version": str(mv.version),
        "aliases": sorted(a for a, v in (model.aliases or {}).items() if str(v) == str(mv.version)),
        "git": {"commit": commit, "dirty": tags.get("git.dirty"), **_git_commit_info(commit)},
        "train_commit": tags.get("train.git.commit"),
        "data": {k: v for k, v in sorted(tags.items()) if k.startswith("data.")},
        "params": {k: v for k, v in sorted(tags.items()) if k.startswith("params.")},
        "environment": {k: v for k, v in sorted(tags.items()) if k.startswith(("env.", "dvc."))},
        "status": {check: tags.get(tag, registry.NOT_RUN) for check, tag in registry.STATUS_TAGS.items()},
        "artifact_sha256": tags.get(artifacts.ARTIFACT_HASH_TAG),
        "registered": {"by": tags.get("registered.by"), "at": tags.get("registered.at")},
        "run": run,
        "deployments": sorted(deployments, key=lambda d: str(d.get("time"))),
    }


def render_markdown(data: dict[str, Any]) -> str:
    git = data["git"]
    lines = [
        f"# Lineage of {data['name']} version {data['version']}",
        "",
        f"- aliases now: {', '.join(data['aliases']) or 'none'}",
        f"- commit: `{git['commit']}`"
        + (f" - {git['subject']} ({git['author']}, {git['date']})" if "subject" in git else ""),
        f"- trained at commit: `{data['train_commit']}`",
        f"- MLflow run: `{data['run']['id']}`" + (f" ({data['run']['name']})" if data["run"].get("name") else ""),
        f"- artifact sha256: `{data['artifact_sha256']}`",
        f"- registered by {data['registered']['by']} at {data['registered']['at']}",
        "",
        "## Checks",
        "",
        *(f"- {check}: {value}" for check, value in data["status"].items()),
        "",
        "## Data (DVC md5)",
        "",
        *(f"- {k}: `{v}`" for k, v in data["data"].items()),
        "",
        "## Parameters, lock files and environment",
        "",
        *(f"- {k}: `{v}`" for k, v in {**data["params"], **data["environment"]}.items()),
    ]
    metrics = data["run"].get("metrics") or {}
    if metrics:
        lines += ["", "## Run metrics", "", *(f"- {k}: {v:.4f}" for k, v in sorted(metrics.items()))]
    lines += ["", "## Deploy history", ""]
    if not data["deployments"]:
        lines.append("never deployed")
    else:
        lines += ["| time | env | role | strategy | share | commit | actor |", "|---|---|---|---|---|---|---|"]
        for d in data["deployments"]:
            role = ", ".join(d["roles"]) or "replaced"
            lines.append(
                f"| {d.get('time')} | {d.get('env')} | {role} | {d.get('strategy')} | {d.get('traffic_share')} "
                f"| `{str(d.get('commit'))[:12]}` | {d.get('actor')}"
                + (f" ([run]({d['run_url']}))" if d.get("run_url") else "")
                + " |"
            )
    # Tags and deploy records are copied verbatim (run links come from the workflow's environment).
    return redact("\n".join(lines) + "\n")
