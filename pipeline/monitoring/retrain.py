"""Retraining: the next training table from the reference plus labelled production data, a rerun
of the pipeline, the gate against the champion, and the pull-request body that explains it all.

Raw data is immutable: the new table is a new file under data/raw/ named by its content, and
params.yaml `data.raw` is pointed at it with a one-line edit. Every input is checked before the
first byte is written, so a refusal leaves the repository exactly as it was.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.core import params_edit
from pipeline.core.config import Params, RetrainSection
from pipeline.core.periods import Period, periods_in

logger = logging.getLogger(__name__)

READY = "ready"
REFUSED = "refused"
# 0: pull-request body written (whatever the gate said: the PR shows it and CI blocks a merge);
# 1: the pipeline rerun failed; 2: bad input; 3: too few labelled rows (the workflow alerts instead).
EXIT_CODES = {READY: 0, "failed": 1, "bad input": 2, REFUSED: 3}

ERR_NO_DIR = "{path}: the production data folder does not exist"
ERR_NO_PERIODS = "{path}: no labelled production period (<period>_features.parquet with <period>_labels.parquet)"
ERR_LABEL_COLUMNS = "{path}: labels need the columns {columns}"
ERR_DUPLICATE = "{path}: {count} repeated {column} values; one label per id"
ERR_LABEL_VALUES = "{path}: {target} must hold 0/1 labels, found {values}"
ERR_NO_JOIN = "{labels}: no label id matches a row of {features}: the labels belong to other rows"
ERR_MISSING_COLUMNS = "{path}: lacks the columns {columns} of the reference table"
ERR_ID_CLASH = "the new training table repeats {count} ids across its sources (e.g. {examples}); ids must be unique"
ERR_TOO_FEW = "only {rows} labelled production rows in the window ({periods}); retrain.min_labelled_rows is {minimum}"
ERR_DRIFT_REPORT = "{path}: drift report not found; run `pipeline drift` first or leave --drift out"


class RetrainInputError(ValueError):
    """The inputs cannot make a training table: missing, unjoinable or clashing data."""


class RetrainRefused(RuntimeError):
    """Retraining is not possible yet: too few labelled production rows in the window."""


@dataclass(frozen=True)
class Source:
    """One part of the new table, for the pull-request body's "what changed"."""

    name: str
    path: str
    rows: int
    md5: str


@dataclass(frozen=True)
class Plan:
    """What the next training table is made of, before anything is written."""

    frame: pd.DataFrame
    sources: tuple[Source, ...]
    periods: tuple[str, ...]
    skipped: tuple[str, ...]
    labelled_rows: int


# --------------------------------------------------------------------------- pure core


def select_window(*, periods: Sequence[Period], policy: RetrainSection) -> tuple[list[Period], list[Period]]:
    """(kept, skipped): the newest `max_periods` labelled periods by name; unlabelled ones wait."""
    labelled = [p for p in periods if p.labels is not None]
    cut = max(0, len(labelled) - policy.max_periods)
    return labelled[cut:], labelled[:cut]


def labelled_batch(
    *, features: pd.DataFrame, labels: pd.DataFrame, id_column: str, target: str, names: tuple[str, str]
) -> pd.DataFrame:
    """The rows of one period that have a label, with the label joined by id."""
    features_name, labels_name = names
    missing = [c for c in (id_column, target) if c not in labels.columns]
    if missing:
        raise RetrainInputError(ERR_LABEL_COLUMNS.format(path=labels_name, columns=missing))
    for frame, name in ((features, features_name), (labels, labels_name)):
        repeated = int(frame[id_column].duplicated().sum()) if id_column in frame.columns else 0
        if repeated:
            raise RetrainInputError(ERR_DUPLICATE.format(path=name, count=repeated, column=id_column))
    if id_column not in features.columns:
        raise RetrainInputError(ERR_MISSING_COLUMNS.format(path=features_name, columns=[id_column]))
    values = labels[target].dropna()
    bad = sorted({str(v) for v in values.unique()} - {"0", "1"})
    if bad:
        raise RetrainInputError(ERR_LABEL_VALUES.format(path=labels_name, target=target, values=bad[:5]))
    known = labels.loc[labels[target].notna(), [id_column, target]]
    joined = features.drop(columns=[target], errors="ignore").merge(
        known.assign(**{target: known[target].astype("int64")}), on=id_column, how="inner", validate="one_to_one"
    )
    if joined.empty:
        raise RetrainInputError(ERR_NO_JOIN.format(labels=labels_name, features=features_name))
    return joined


def assemble(*, reference: pd.DataFrame, batches: Mapping[str, pd.DataFrame], id_column: str) -> pd.DataFrame:
    """Reference rows then each period's rows, in the reference's columns and dtypes."""
    columns = list(reference.columns)
    parts = [reference]
    for name, batch in batches.items():
        missing = [c for c in columns if c not in batch.columns]
        if missing:
            raise RetrainInputError(ERR_MISSING_COLUMNS.format(path=name, columns=missing))
        parts.append(batch[columns].astype(reference.dtypes.to_dict()))
    combined = pd.concat(parts, ignore_index=True)
    clash = combined[id_column][combined[id_column].duplicated()]
    if len(clash):
        examples = ", ".join(str(v) for v in clash.head(3))
        raise RetrainInputError(ERR_ID_CLASH.format(count=len(clash), examples=examples))
    return combined


def content_name(frame: pd.DataFrame) -> str:
    """A file name from the table's content: the same rows always map to the same immutable file."""
    digest = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    import hashlib

    return f"retrain-{hashlib.sha256(digest.tobytes()).hexdigest()[:12]}.parquet"


def set_raw_path(*, text: str, path: str, source: str = "params.yaml") -> str:
    """params.yaml text with `data.raw` set to `path`; every other byte stays as it was."""
    try:
        return params_edit.set_scalar(text=text, key="data.raw", value=path, source=source)
    except params_edit.ParamsEditError as exc:
        # The CLI maps RetrainInputError to "bad input" (exit 2), like every other refusal here.
        raise RetrainInputError(str(exc)) from exc


# --------------------------------------------------------------------------- pull-request body


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
) -> str:
    """The markdown body of the retraining pull request: why, what changed, new model vs champion."""
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
        (
            f"Window policy (params `retrain`): the reference plus the newest {policy.max_periods} labelled "
            f"production period(s), at least {policy.min_labelled_rows} labelled rows."
        ),
        "",
        "| source | file | rows | md5 |",
        "|---|---|---|---|",
        *(f"| {s.name} | `{s.path}` | {s.rows} | `{s.md5}` |" for s in sources),
    ]
    if skipped:
        lines += ["", f"Older labelled periods outside the window: {', '.join(skipped)}."]
    lines += ["", "## New model against the champion", "", *model_lines(gate), ""]
    lines += [
        "The pipeline (dvc.lock) was rerun on the new table; CI reruns it and the gate on this pull request.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- I/O edge


def plan(*, params: Params) -> Plan:
    """Read and check every input; nothing is written. Refuses too few labelled rows."""
    from pipeline.core import io

    policy = params.retrain
    id_column, target = params.base.id_column, params.base.target
    directory = policy.production_dir
    if not directory.is_dir():
        raise RetrainInputError(ERR_NO_DIR.format(path=directory))
    periods = periods_in(directory)
    kept, skipped = select_window(periods=periods, policy=policy)
    if not kept:
        raise RetrainInputError(ERR_NO_PERIODS.format(path=directory))
    reference = io.read_table(policy.reference)
    sources = [Source("reference", policy.reference.as_posix(), len(reference), io.file_md5(policy.reference))]
    batches: dict[str, pd.DataFrame] = {}
    for period in kept:
        assert period.labels is not None  # select_window keeps labelled periods only
        batch = labelled_batch(
            features=io.read_table(period.features),
            labels=io.read_table(period.labels),
            id_column=id_column,
            target=target,
            names=(period.features.as_posix(), period.labels.as_posix()),
        )
        batches[period.features.as_posix()] = batch
        sources.append(
            Source(
                f"period {period.name}",
                f"{period.features.as_posix()} + {period.labels.name}",
                len(batch),
                io.file_md5(period.labels),
            )
        )
    labelled = sum(len(b) for b in batches.values())
    if labelled < policy.min_labelled_rows:
        raise RetrainRefused(
            ERR_TOO_FEW.format(rows=labelled, periods=", ".join(p.name for p in kept), minimum=policy.min_labelled_rows)
        )
    frame = assemble(reference=reference, batches=batches, id_column=id_column)
    return Plan(frame, tuple(sources), tuple(p.name for p in kept), tuple(p.name for p in skipped), labelled)


def write_github_output(*, status: str, body: Path | None, path: Path | str) -> None:
    with Path(path).open("a", encoding="utf-8") as fh:
        fh.write(f"status={status}\n")
        if body is not None:
            fh.write(f"body={body.as_posix()}\n")


def run(
    *,
    params: Params,
    params_path: Path,
    drift_path: Path | None = None,
    champion_model: Path | None = None,
    reproduce: bool = True,
) -> dict[str, Any]:
    """Plan, write the new table, point data.raw at it, rerun, gate, write the PR body."""
    from pipeline.ci import gate
    from pipeline.core import io, runner
    from pipeline.core.config import load_params

    policy = params.retrain
    if drift_path is not None and not drift_path.is_file():
        raise RetrainInputError(ERR_DRIFT_REPORT.format(path=drift_path))
    try:
        chosen = plan(params=params)
    except RetrainRefused:
        if github_output := os.environ.get("GITHUB_OUTPUT"):
            write_github_output(status=REFUSED, body=None, path=github_output)
        raise
    drift = io.read_json(drift_path) if drift_path is not None else None
    previous_path = params.data.raw
    params_text = params_path.read_text(encoding="utf-8")
    new_path = previous_path.parent / content_name(chosen.frame)
    edited = set_raw_path(text=params_text, path=new_path.as_posix(), source=str(params_path))
    previous = Source(
        "previous", previous_path.as_posix(), len(io.read_table(previous_path)), io.file_md5(previous_path)
    )
    if not new_path.exists():
        io.write_table(chosen.frame, new_path)
    new = Source("new", new_path.as_posix(), len(chosen.frame), io.file_md5(new_path))
    params_path.write_text(edited, encoding="utf-8")
    logger.info("data.raw: %s -> %s (%d rows)", previous_path, new_path, len(chosen.frame))
    if reproduce:
        try:
            runner.reproduce()
        except runner.ReproFailed:
            # The table stays (immutable, harmless); the params edit goes, so a rerun starts clean.
            params_path.write_text(params_text, encoding="utf-8")
            raise
    decision = gate.run(params=load_params(params_path), champion_model=champion_model)
    body = pr_body(
        drift=drift,
        sources=chosen.sources,
        previous=previous,
        new=new,
        policy=policy,
        skipped=chosen.skipped,
        gate=decision,
    )
    body_path = policy.out_dir / "pr_body.md"
    io.write_text(body, body_path)
    summary = {
        "status": READY,
        "data": {"previous": previous.__dict__, "new": new.__dict__},
        "sources": [s.__dict__ for s in chosen.sources],
        "periods": list(chosen.periods),
        "skipped": list(chosen.skipped),
        "labelled_rows": chosen.labelled_rows,
        "gate_passed": bool(decision.get("passed")),
        "body": body_path.as_posix(),
    }
    io.write_json(summary, policy.out_dir / "retrain.json")
    if github_output := os.environ.get("GITHUB_OUTPUT"):
        write_github_output(status=READY, body=body_path, path=github_output)
    return summary
