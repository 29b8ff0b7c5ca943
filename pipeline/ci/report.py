"""`pipeline report`: one markdown page per pull request, verdict first.

collect() reads the stage reports and asks DVC for the metrics and params diff against the base;
render() is pure, so the page is checked against a golden file.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
from pathlib import Path
from typing import Any

from pipeline.core.config import Params
from pipeline.core.redact import redact

logger = logging.getLogger(__name__)

SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
# Hidden marker: lets a comment action find and update its own comment instead of adding one.
COMMENT_MARKER = "<!-- pipeline-pr-report -->"
MAX_LISTED = 10


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _delta(value: Any, digits: int = 4) -> str:
    if value is None or not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:+.{digits}f}" if isinstance(value, float) else f"{value:+d}"


def _status(flag: bool | None) -> str:
    return "not run" if flag is None else ("passed" if flag else "FAILED")


def _verdict(inputs: dict[str, Any]) -> list[str]:
    gate = inputs.get("gate")
    if gate is None:
        lines = ["## Verdict: gate NOT RUN", "", "No reports/gate.json: the gate did not run or stopped early."]
    else:
        word = "PASSED" if gate["passed"] else "FAILED"
        kind = (
            " (first model)"
            if gate.get("first_model")
            else " (no comparable champion)"
            if gate.get("incomparable")
            else ""
        )
        lines = [f"## Verdict: gate {word}{kind}", "", gate.get("summary", "")]
        if gate["reasons"]:
            lines += ["", *[f"- {r}" for r in gate["reasons"]]]
    validation, prepare, fairness, smoke = (inputs.get(k) for k in ("validation", "prepare", "fairness", "smoke"))
    lines += [
        "",
        "| check | result |",
        "|---|---|",
        f"| data validation | {_status(None if validation is None else validation['success'])} |",
        f"| representation and leakage | {_status(None if prepare is None else prepare['passed'])} |",
        f"| fairness thresholds | {_status(None if fairness is None else fairness['passed'])} |",
        f"| smoke test | {_status(None if smoke is None else smoke['passed'])} |",
        f"| gate vs champion | {_status(None if gate is None else gate['passed'])} |",
    ]
    return lines


def _gate_section(gate: dict[str, Any] | None) -> list[str]:
    if gate is None:
        return []
    source = gate.get("champion_source", {})
    where = {
        "registry": f"registry model {source.get('name')} version {source.get('version')} (deploy manifest)",
        "file": f"model of base {source.get('rev', '')} ({source.get('path')})".replace(" ()", ""),
        "none": f"none: {source.get('detail', '')}",
    }.get(source.get("kind", "none"), str(source))
    rows = gate.get("holdout", {}).get("rows", "n/a")
    scored = (
        f"Not compared (see the verdict above): the candidate alone was scored on its holdout ({rows} rows)."
        if gate.get("incomparable")
        else f"Both scored on the candidate's holdout ({rows} rows)."
    )
    lines = ["## Candidate vs champion", "", f"Champion: {where}. {scored}", ""]
    if not gate["checks"]:
        return lines
    lines += ["| check | candidate | champion | delta | limit | result |", "|---|---:|---:|---:|---:|---|"]
    for c in gate["checks"]:
        lines.append(
            f"| {c['kind']}: {c['name']} | {_fmt(c['candidate'])} | {_fmt(c['champion'])} | {_delta(c['delta'])} | "
            f"{_fmt(c['limit'])} | {'ok' if c['passed'] else 'FAILED'} |"
        )
    return [*lines, ""]


def _metrics_section(inputs: dict[str, Any]) -> list[str]:
    base = inputs.get("base")
    lines = ["## Metrics", ""]
    metrics = inputs.get("metrics")
    if metrics:
        recall = ", ".join(f"class {c} {_fmt(b['recall'])}" for c, b in sorted(metrics["per_class"].items()))
        lines += [
            f"Test split ({metrics['rows']} rows): ROC AUC {_fmt(metrics['roc_auc'])}, accuracy "
            f"{_fmt(metrics['accuracy'])}, F1 {_fmt(metrics['f1'])}; recall {recall}.",
            "",
        ]
    diff = inputs.get("metrics_diff")
    if base is None:
        return [*lines, "No base revision given: no diff.", ""]
    if isinstance(diff, str):
        return [*lines, f"Metrics diff against `{base}` unavailable: {diff}", ""]
    rows = [(f, k, v) for f, body in sorted((diff or {}).items()) for k, v in sorted(body.items())]
    if not rows:
        return [*lines, f"No metric changed against `{base}`.", ""]
    lines += [
        f"Changed against `{base}`:",
        "",
        "| file | metric | base | this PR | delta |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {f} | {k} | {_fmt(v.get('old'))} | {_fmt(v.get('new'))} | {_delta(v.get('diff'))} |" for f, k, v in rows
    ]
    return [*lines, ""]


def _params_section(inputs: dict[str, Any]) -> list[str]:
    base = inputs.get("base")
    if base is None:
        return []
    diff = inputs.get("params_diff")
    lines = ["## Params", ""]
    if isinstance(diff, str):
        return [*lines, f"Params diff against `{base}` unavailable: {diff}", ""]
    rows = [(f, k, v) for f, body in sorted((diff or {}).items()) for k, v in sorted(body.items())]
    if not rows:
        return [*lines, f"No pipeline parameter changed against `{base}`.", ""]
    lines += ["| file | param | base | this PR |", "|---|---|---|---|"]
    lines += [f"| {f} | {k} | {_fmt(v.get('old'))} | {_fmt(v.get('new'))} |" for f, k, v in rows]
    return [*lines, ""]


def _fairness_section(fairness: dict[str, Any] | None, gate: dict[str, Any] | None) -> list[str]:
    if fairness is None:
        return []
    champion = (gate or {}).get("champion") or {}
    champ_features = (champion.get("fairness") or {}).get("features", {})
    deltas = ((gate or {}).get("deltas") or {}).get("fairness", {})
    lines = [
        "## Fairness",
        "",
        f"Groups with fewer than {fairness['min_group_size']} rows are shown, not judged. "
        "Deltas are candidate minus champion on the same holdout.",
        "",
    ]
    for feature, body in fairness["features"].items():
        lines += [
            f"### {feature}",
            "",
            "| difference | candidate | champion | delta | limit |",
            "|---|---:|---:|---:|---:|",
        ]
        champ_diffs = champ_features.get(feature, {}).get("differences", {})
        for metric, value in body["differences"].items():
            limit = body["thresholds"].get(metric)
            lines.append(
                f"| {metric.replace('_', ' ')} | {_fmt(value)} | {_fmt(champ_diffs.get(metric))} | "
                f"{_delta(deltas.get(feature, {}).get(metric))} | {'reported only' if limit is None else _fmt(limit)} |"
            )
        champ_groups = {g["group"]: g for g in champ_features.get(feature, {}).get("groups", [])}
        lines += [
            "",
            "| group | rows | judged | selection rate | delta | TPR | delta | FPR | delta |",
            "|---|---:|:---:|---:|---:|---:|---:|---:|---:|",
        ]
        for g in body["groups"]:
            other = champ_groups.get(g["group"], {})
            cells = []
            for m in ("selection_rate", "true_positive_rate", "false_positive_rate"):
                a, b = g.get(m), other.get(m)
                cells += [_fmt(a), _delta(None if a is None or b is None else a - b)]
            lines.append(f"| {g['group']} | {g['count']} | {'yes' if g['judged'] else 'no'} | {' | '.join(cells)} |")
        lines.append("")
    return lines


def _validation_section(validation: dict[str, Any] | None, prepare: dict[str, Any] | None) -> list[str]:
    lines = ["## Data", ""]
    if validation is not None:
        lines.append(
            f"Validation of `{validation['source']}`: {_status(validation['success'])}, {validation['rows']} rows, "
            f"{validation['expectations_evaluated']} expectations, {len(validation['failures'])} failed."
        )
        for failure in validation["failures"][:MAX_LISTED]:
            lines.append(f"- {failure if isinstance(failure, str) else json.dumps(failure, sort_keys=True)}")
        lines.append("")
    if prepare is not None:
        rows = ", ".join(f"{k} {v}" for k, v in prepare.get("rows", {}).items())
        lines.append(f"Representation and leakage: {_status(prepare['passed'])}; split rows: {rows}.")
        lines += [f"- {p}" for p in prepare.get("problems", [])[:MAX_LISTED]]
    return [*lines, ""]


def _mlflow_section(mlflow: dict[str, Any] | None) -> list[str]:
    if not mlflow or not mlflow.get("run_id"):
        return ["## MLflow", "", "No reports/run.json: the training run is unknown.", ""]
    run_id, url = mlflow["run_id"], mlflow.get("url")
    if url:
        text = f"Training run: [{run_id}]({url}) in experiment `{mlflow.get('experiment')}`."
    else:
        text = (
            f"Training run `{run_id}` in experiment `{mlflow.get('experiment')}`, logged to the local store "
            f"`{mlflow.get('tracking_uri')}` (no tracking server: set MLFLOW_TRACKING_URI for a link)."
        )
    return ["## MLflow", "", text, ""]


def render(*, inputs: dict[str, Any]) -> str:
    """Pure: the markdown page from the collected inputs (see collect for the keys)."""
    lines = [COMMENT_MARKER, "# Model report", ""]
    lines += _verdict(inputs)
    lines.append("")
    lines += _gate_section(inputs.get("gate"))
    lines += _metrics_section(inputs)
    lines += _params_section(inputs)
    lines += _fairness_section(inputs.get("fairness"), inputs.get("gate"))
    lines += _validation_section(inputs.get("validation"), inputs.get("prepare"))
    lines += _mlflow_section(inputs.get("mlflow"))
    # The page is posted on the pull request; the champion's fallback note and DVC's errors
    # quote URLs (registry, DVC remote) that may carry credentials.
    return redact("\n".join(lines).rstrip() + "\n")


def mlflow_link(*, run: dict[str, Any] | None, tracking_uri: str) -> dict[str, Any] | None:
    """Pure: the run's UI link when tracking is a server; the UI redirects /#/runs/<id> itself."""
    if not run:
        return None
    # A team server's URI may carry user:password: the link keeps the host, never the secret.
    uri = redact(tracking_uri)
    url = f"{uri.rstrip('/')}/#/runs/{run['run_id']}" if uri.startswith("http") else None
    return {"run_id": run.get("run_id"), "experiment": run.get("experiment"), "tracking_uri": uri, "url": url}


def _optional(path: Path) -> Any:
    from pipeline.core import io

    return io.read_json(path) if path.is_file() else None


def dvc_diff(*, kind: str, base: str) -> dict[str, Any] | str:
    """`dvc metrics|params diff BASE --json`; on failure the reason, so the report still renders."""
    from pipeline.core.runner import BIN, tool_env

    dvc = str(BIN / "dvc") if (BIN / "dvc").exists() else "dvc"
    result = subprocess.run(
        [dvc, kind, "diff", base, "--json"], capture_output=True, text=True, env=tool_env(), check=False
    )
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        return lines[-1] if lines else f"dvc {kind} diff exited with {result.returncode}"
    try:
        data = json.loads(result.stdout or "{}")
    except json.JSONDecodeError as exc:
        return f"dvc {kind} diff printed no JSON: {exc}"
    return data if isinstance(data, dict) else {}


def collect(*, params: Params, base: str | None) -> dict[str, Any]:
    from pipeline.core.tracking import tracking_uri

    reports = params.paths.reports
    return {
        "base": base,
        "gate": _optional(reports / "gate.json"),
        "smoke": _optional(reports / "smoke.json"),
        "metrics": _optional(reports / "metrics.json"),
        "fairness": _optional(reports / "fairness.json"),
        "prepare": _optional(reports / "prepare.json"),
        "validation": _optional(reports / "validation" / "validation.json"),
        "mlflow": mlflow_link(run=_optional(reports / "run.json"), tracking_uri=tracking_uri(params.tracking)),
        "metrics_diff": None if base is None else dvc_diff(kind="metrics", base=base),
        "params_diff": None if base is None else dvc_diff(kind="params", base=base),
    }


def run(*, params: Params, out: Path, base: str | None) -> str:
    """Write the report; append it to the GitHub job summary when running in Actions."""
    from pipeline.core import io

    markdown = render(inputs=collect(params=params, base=base))
    io.write_text(markdown, out)
    summary = os.environ.get(SUMMARY_ENV)
    if summary:
        with Path(summary).open("a", encoding="utf-8") as fh:
            fh.write(markdown)
    logger.info("wrote %s", out)
    return markdown
