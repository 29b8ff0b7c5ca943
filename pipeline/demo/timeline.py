"""The demo's pure pieces: monthly slices, the timeline, condensed drift checks, plot data and the report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

MONTHS = 12
QUARTER = 3


def monthly_slices(*, frame: pd.DataFrame, rows_per_slice: int, seed: int, months: int = MONTHS) -> list[pd.DataFrame]:
    """A seeded sample of one year's rows cut into `months` equal slices (fewer rows if the year is short)."""
    rng = np.random.default_rng(seed)
    take = min(len(frame), rows_per_slice * months)
    picked = rng.choice(len(frame), size=take, replace=False)
    return [frame.iloc[np.sort(part)].reset_index(drop=True) for part in np.array_split(picked, months)]


def period_name(*, year: str, month: int) -> str:
    return f"{year}-{month:02d}"


def later_period(name: str, *, steps: int) -> str:
    """The name of a simulated period `steps` after a real one: the next numbers for numeric names.

    Other names get a ".sim<steps>" suffix: "." sorts after the "-" of the real monthly files, so
    the retraining window (name order) still sees the simulated months as the newest.
    """
    return str(int(name) + steps).zfill(len(name)) if name.isdigit() else f"{name}.sim{steps}"


def period_value(name: str, *, like: pd.Series) -> Any:
    """A simulated period's value in the period column, typed like the real values it joins."""
    return int(name) if name.isdigit() and pd.api.types.is_integer_dtype(like) else name


def reference_label(values: Sequence[Any] | np.ndarray) -> str:
    """What the timeline calls the training data's time: its one period, else just "reference"."""
    return str(values[0]) if len(values) == 1 else "reference"


@dataclass(frozen=True)
class Event:
    when: str
    phase: str
    what: str


def render_timeline(events: Sequence[Event]) -> str:
    """Plain aligned lines: when, phase, what happened."""
    if not events:
        return ""
    width_when = max(len(e.when) for e in events)
    width_phase = max(len(e.phase) for e in events)
    return "\n".join(f"{e.when:<{width_when}}  {e.phase:<{width_phase}}  {e.what}" for e in events) + "\n"


@dataclass(frozen=True)
class Check:
    """One quarterly drift check, condensed from its drift.json."""

    quarter: str
    simulated: bool
    verdict: str
    data_verdict: str
    drifted: tuple[str, ...]
    max_severity: float
    performance_verdict: str | None
    roc_auc: float | None
    accuracy: float | None
    labelled_rows: int


def condense(*, quarter: str, simulated: bool, summary: Mapping[str, Any]) -> Check:
    """The figures the timeline and the plots need from one drift.json."""
    data = summary["data_drift"]
    severities = [f["severity"] for f in data["features"].values() if f.get("effect") is not None]
    perf = summary.get("performance") or {}
    overall = perf.get("overall") or {}
    return Check(
        quarter=quarter,
        simulated=simulated,
        verdict=summary["verdict"],
        data_verdict=data["verdict"],
        drifted=tuple(data["drifted_features"]),
        max_severity=float(max(severities, default=0.0)),
        performance_verdict=perf.get("verdict"),
        roc_auc=overall.get("roc_auc"),
        accuracy=overall.get("accuracy"),
        labelled_rows=int(overall.get("rows", 0)),
    )


def plot_data(checks: Sequence[Check]) -> dict[str, list[Any]]:
    """Series for the report's plots: drift severity and labelled performance per quarter."""
    return {
        "quarter": [c.quarter for c in checks],
        "max_severity": [c.max_severity for c in checks],
        "roc_auc": [np.nan if c.roc_auc is None else c.roc_auc for c in checks],
        "accuracy": [np.nan if c.accuracy is None else c.accuracy for c in checks],
        "simulated": [c.simulated for c in checks],
    }


def check_line(check: Check) -> str:
    perf = (
        f"; labelled ROC AUC {check.roc_auc:.3f} on {check.labelled_rows} rows ({check.performance_verdict})"
        if check.roc_auc is not None
        else "; no labels yet"
    )
    drifted = f" ({', '.join(check.drifted)})" if check.drifted else ""
    return (
        f"drift check: {check.verdict}; data {check.data_verdict}{drifted}, max severity {check.max_severity:.2f}{perf}"
    )


def report_markdown(
    *, events: Sequence[Event], checks: Sequence[Check], plots: Mapping[str, str], extras: Mapping[str, str]
) -> str:
    lines = ["# Demo: drift, retraining and rollout on one machine", ""]
    for title, path in plots.items():
        lines += [f"![{title}]({path})", ""]
    lines += [
        "## Quarterly checks",
        "",
        "| quarter | simulated | verdict | drifted features | max severity | labelled ROC AUC | accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in checks:
        auc = "-" if c.roc_auc is None else f"{c.roc_auc:.3f}"
        acc = "-" if c.accuracy is None else f"{c.accuracy:.3f}"
        lines.append(
            f"| {c.quarter} | {'yes' if c.simulated else 'no'} | {c.verdict} | {', '.join(c.drifted) or '-'} | "
            f"{c.max_severity:.2f} | {auc} | {acc} |"
        )
    lines += ["", "## Timeline", "", "```", render_timeline(events).rstrip(), "```", ""]
    for title, text in extras.items():
        lines += [f"## {title}", "", text.rstrip(), ""]
    return "\n".join(lines)
