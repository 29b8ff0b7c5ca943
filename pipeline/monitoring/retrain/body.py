"""The retraining pull request's body: why (the drift check's findings), what changed (the
table, its sources and where it is stored) and the new model against the champion (the gate).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.core.config import RetrainSection
from pipeline.monitoring.retrain.table import Source


def _num(value: Any, digits: int = 4) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.{digits}f}"


def _delta(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:+.4f}"


def why_lines(drift: Mapping[str, Any] | None) -> list[str]:
    """The findings of drift.json, worst first."""
    if drift is None:
        return ["No drift report was given: this retraining was started by hand."]
    lines = [f"The drift check's verdict is **{drift.get('verdict', 'unknown')}**."]
    data = drift.get("data_drift") or {}
    features = data.get("features") or {}
    for name in data.get("drifted_features") or []:
        f = features.get(name, {})
        lines.append(
            f"- Data drift in `{name}`: {f.get('effect_name', 'effect')} {_num(f.get('effect'), 3)} "
            f"(threshold {f.get('effect_threshold', '-')})"
        )
    for name, codes in (data.get("unseen_categories") or {}).items():
        lines.append(f"- Unseen categories in `{name}`: " + ", ".join(f"`{k}` ({v} rows)" for k, v in codes.items()))
    pred = drift.get("prediction_drift")
    if pred and pred.get("verdict") == "drift":
        lines.append(
            f"- Prediction drift: positive share {_num(pred.get('positive_share_reference'), 3)} -> "
            f"{_num(pred.get('positive_share_current'), 3)}"
        )
    perf = drift.get("performance")
    if perf:
        overall = perf.get("overall") or {}
        baseline = perf.get("baseline") or {}
        for metric in overall.get("degraded") or []:
            lines.append(
                f"- Performance: {metric} {_num(overall.get(metric))} against the champion's "
                f"{_num(baseline.get(metric))} (allowed drop {perf.get('max_drop')})"
            )
        for period, row in (perf.get("periods") or {}).items():
            if row.get("verdict") == "drift":
                lines.append(f"- Period {period}: {', '.join(row.get('degraded') or [])} dropped")
    if len(lines) == 1:
        lines.append("- No single finding passed its threshold.")
    return lines


def model_lines(gate: Mapping[str, Any]) -> list[str]:
    """The gate's verdict with the candidate's metrics and fairness next to the champion's."""
    verdict = "passed" if gate.get("passed") else "FAILED"
    source = gate.get("champion_source") or {}
    champion_name = (
        f"version {source.get('version')}" if source.get("kind") == "registry" else str(source.get("kind", "none"))
    )
    lines = [f"Gate **{verdict}**: {gate.get('summary', '')} (champion: {champion_name})", ""]
    lines += [f"- {r}" for r in gate.get("reasons") or []]
    candidate = gate.get("candidate") or {}
    champion = gate.get("champion") or {}
    deltas = gate.get("deltas") or {}
    cm, hm = candidate.get("metrics") or {}, champion.get("metrics") or {}
    lines += ["", "| metric | new model | champion | change |", "|---|---|---|---|"]
    for key in sorted(k for k, v in cm.items() if isinstance(v, int | float) and k != "rows"):
        lines.append(
            f"| {key} | {_num(cm.get(key))} | {_num(hm.get(key))} | {_delta(deltas.get('metrics', {}).get(key))} |"
        )
    cf = (candidate.get("fairness") or {}).get("features") or {}
    hf = (champion.get("fairness") or {}).get("features") or {}
    if cf:
        lines += ["", "| fairness difference | new model | champion | threshold |", "|---|---|---|---|"]
        for feature, body in sorted(cf.items()):
            for metric, value in sorted((body.get("differences") or {}).items()):
                theirs = ((hf.get(feature) or {}).get("differences") or {}).get(metric)
                limit = (body.get("thresholds") or {}).get(metric)
                lines.append(
                    f"| {feature} {metric} | {_num(value)} | {_num(theirs)} | {'reported' if limit is None else limit} |"
                )
    return lines


def pr_body(
    *,
    drift: Mapping[str, Any] | None,
    sources: Sequence[Source],
    previous: Source,
    new: Source,
    policy: RetrainSection,
    skipped: Sequence[str],
    gate: Mapping[str, Any],
    log: Mapping[str, Any] | None = None,
    storage: Mapping[str, Any] | None = None,
) -> str:
    """The markdown body of the retraining pull request: why, what changed, new model vs champion.

    `log` describes the prediction-log window the labelled rows came from; `storage` the DVC
    pointer and remote that hold the table (the pull request carries the pointer, never the table).
    """
    lines = ["# Retraining on recent labelled production data", "", "## Why", "", *why_lines(drift), ""]
    lines += [
        "## What changed",
        "",
        "`data.raw` in params.yaml now points at a new immutable table (the old file is kept):",
        "",
        "| | file | rows | md5 |",
        "|---|---|---|---|",
        f"| before | `{previous.path}` | {previous.rows} | `{previous.md5}` |",
        f"| after | `{new.path}` | {new.rows} | `{new.md5}` |",
        "",
        *_window_lines(policy=policy, log=log),
        "",
        "| source | file | rows | md5 |",
        "|---|---|---|---|",
        *(f"| {s.name} | `{s.path}` | {s.rows} | `{s.md5}` |" for s in sources),
    ]
    if skipped:
        lines += ["", f"Older labelled periods outside the window: {', '.join(skipped)}."]
    lines += _storage_lines(storage)
    lines += ["", "## New model against the champion", "", *model_lines(gate), ""]
    lines += [
        "The pipeline (dvc.lock) was rerun on the new table; CI reruns it and the gate on this pull request.",
        "",
    ]
    return "\n".join(lines)


def _window_lines(*, policy: RetrainSection, log: Mapping[str, Any] | None) -> list[str]:
    if not log:
        return [
            f"Window policy (params `retrain`): the reference plus the newest {policy.max_periods} labelled "
            f"production period(s), at least {policy.min_labelled_rows} labelled rows."
        ]
    ids = "keyed hashes of the association ids" if log.get("pseudonymised") else "the association ids"
    return [
        (
            f"Window policy (params `retrain`): the reference plus the labelled answers of env `{log['env']}` "
            f"in the prediction log from {log['since']} to {log['until']} (`retrain.window` {policy.window}, "
            f"never past `serve.log.retention_days` {log['retention_days']}), at least "
            f"{policy.min_labelled_rows} labelled rows: {log['labelled']} labelled ids, "
            f"{log['invalid']} left out because their inputs fail validation. The id column holds {ids}; "
            "only the id, the declared columns and the target were taken from the log."
        )
    ]


def _storage_lines(storage: Mapping[str, Any] | None) -> list[str]:
    if not storage:
        return []
    return [
        "",
        (
            f"The table is tracked by DVC: this pull request carries `{storage['pointer']}`, the table itself "
            f"is in the DVC remote `{storage['remote']}`. `dvc pull {storage['pointer']}` restores it."
        ),
    ]
