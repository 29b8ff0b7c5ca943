"""The demo's loop: a model of the reference data, then the labelled production periods replayed as
traffic with labels a quarter late, simulated drift, retrain, CI, canary, promote.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.config import Params
from pipeline.core.periods import LABELS_SUFFIX, PATTERN, Period, periods_in
from pipeline.demo.service import ENV, InProcessService
from pipeline.demo.timeline import (
    QUARTER,
    Check,
    Event,
    check_line,
    condense,
    later_period,
    monthly_slices,
    period_name,
    period_value,
    plot_data,
    reference_label,
    render_timeline,
    report_markdown,
)
from pipeline.demo.workspace import ERR_STEP, DemoError, commit, copy_template, git, inside, set_retrain_scale

logger = logging.getLogger(__name__)

# Real periods first, then this many quarters at most of simulated drift before giving up.
MAX_DRIFT_QUARTERS = 4
# The canary judges p99 latency: few requests in flight, so latency is service time, not queueing.
CANARY_CONCURRENCY = 8
# Canary requests as a multiple of what gives the challenger its minimum number of requests.
CANARY_TRAFFIC_FACTOR = 2.5
# The newest this many labelled production periods are replayed, twelve monthly slices each.
REAL_PERIODS = 3
RETRAIN_BRANCH = "retrain/drift"

ERR_TOO_FEW_PERIODS = (
    "{path}: the demo replays {needed} labelled production periods ({pattern} with its {labels} file), "
    "found {found}{names}"
)
ERR_PERIOD_COLUMN = "{path}: lacks params drift.performance.period_column {column!r}, which the demo's checks group by"
ERR_ROWS = "--rows-per-slice must be at least {minimum} (a quarter must reach params drift.min_rows), not {rows}"
ERR_NEVER_FIRED = "the simulated drift never made the check fire in {quarters} quarters"


@dataclass
class Loop:
    """The demo's running state: the repo, what has been sent and what labels exist."""

    repo: Path
    params: Params
    log_path: Path
    out_dir: Path
    events: list[Event] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    sent: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    next_id: int = 0
    service: InProcessService | None = None

    def note(self, when: str, phase: str, what: str) -> None:
        self.events.append(Event(when, phase, what))
        logger.info("%-8s %-9s %s", when, phase, what)


def _month(loop: Loop, *, name: str, rows: pd.DataFrame) -> None:
    """Serve one month and keep its features as a production period (labels come later)."""
    params = loop.params
    target = params.base.target
    rows = rows.assign(**{params.base.id_column: np.arange(loop.next_id, loop.next_id + len(rows))})
    loop.next_id += len(rows)
    assert loop.service is not None  # traffic flows only while a service is up
    statuses = loop.service.send(rows)
    if set(statuses) != {200}:
        raise DemoError(ERR_STEP.format(step=f"traffic {name}", detail=f"answers {statuses}"))
    from pipeline.core import io

    io.write_table(rows.drop(columns=[target]), params.retrain.production_dir / f"{name}_features.parquet")
    loop.sent.append((name, rows))


def _labels_arrive(loop: Loop, *, names: Sequence[str]) -> None:
    from pipeline.core import io

    id_column, target = loop.params.base.id_column, loop.params.base.target
    for name, rows in loop.sent:
        path = loop.params.retrain.production_dir / f"{name}_labels.parquet"
        if name in names and not path.exists():
            io.write_table(rows[[id_column, target]], path)


def _quarter_check(loop: Loop, *, quarter: str, simulated: bool, reference_scores: Path) -> dict[str, Any]:
    """The real drift command's logic on the last two quarters of logged answers and arrived labels."""
    from pipeline.core import io, predlog
    from pipeline.monitoring import drift, sample

    params = loop.params
    recent = [name for name, _ in loop.sent[-2 * QUARTER :]]
    ids: set[str] = set()
    for _, rows in loop.sent[-2 * QUARTER :]:
        ids |= set(rows[params.base.id_column].astype(str))
    log = predlog.read_log(url=str(loop.log_path), env=ENV)
    answered = sample.answers(log=log, id_column=params.base.id_column, features=params.data.columns)
    window = answered[answered[params.base.id_column].isin(ids)]
    # The period column lets the performance check judge each period on its own.
    period = params.drift.performance.period_column
    periods = pd.concat([rows[[params.base.id_column, period]] for _, rows in loop.sent[-2 * QUARTER :]])
    window = window.assign(**{params.base.id_column: window[params.base.id_column].astype("int64")})
    window = window.merge(periods, on=params.base.id_column, how="left")
    check_dir = loop.out_dir / "checks" / quarter
    current = check_dir / "current.parquet"
    io.write_table(window, current)
    labelled = [
        pd.read_parquet(p)
        for name in recent
        if (p := params.retrain.production_dir / f"{name}_labels.parquet").is_file()
    ]
    labels_path = None
    if labelled:
        labels_path = check_dir / "labels.parquet"
        io.write_table(pd.concat(labelled, ignore_index=True), labels_path)
    summary = drift.run(
        params=params,
        current_path=current,
        predictions_path=current,
        labels_path=labels_path,
        reference_predictions_path=reference_scores,
        out_dir=check_dir,
        plots=False,
    )
    check = condense(quarter=quarter, simulated=simulated, summary=summary)
    loop.checks.append(check)
    loop.note(quarter, "monitor", check_line(check))
    return summary


def _drifted_month(loop: Loop, *, base: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """An ageing population with a changed label relation for one subgroup (params simulate)."""
    from pipeline.monitoring import simulate

    spec = loop.params.simulate
    older = simulate.covariate_shift(
        frame=base, feature=spec.covariate.feature, strength=spec.covariate.strength, rows=rows, seed=seed
    )
    return simulate.concept_shift(
        frame=older,
        target=loop.params.base.target,
        share=spec.concept.share,
        codes=spec.concept.codes,
        ranges=spec.concept.ranges,
        seed=seed,
        labels=(loop.params.base.positive_label, loop.params.base.negative_label),
    )


def real_periods(*, directory: Path, needed: int = REAL_PERIODS) -> list[Period]:
    """The newest `needed` labelled periods of the production folder, oldest first (name order)."""
    labelled = [p for p in periods_in(directory) if p.labels is not None]
    if len(labelled) < needed:
        raise DemoError(
            ERR_TOO_FEW_PERIODS.format(
                path=directory,
                needed=needed,
                pattern=PATTERN,
                labels=f"<period>{LABELS_SUFFIX}.parquet",
                found=len(labelled),
                names=f": {', '.join(p.name for p in labelled)}" if labelled else "",
            )
        )
    return labelled[-needed:]


def _plots(*, checks: Sequence[Check], out_dir: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = plot_data(checks)
    x = np.arange(len(data["quarter"]))
    first_simulated = next((i for i, s in enumerate(data["simulated"]) if s), None)
    out: dict[str, str] = {}
    for key, title, ylabel in (
        ("max_severity", "Largest feature drift (effect / threshold)", "severity"),
        ("roc_auc", "Labelled ROC AUC", "ROC AUC"),
    ):
        fig, ax = plt.subplots(figsize=(7, 2.8), dpi=90)
        ax.plot(x, data[key], marker="o")
        if key == "max_severity":
            ax.axhline(1.0, color="red", linestyle="--", linewidth=1, label="alarm line")
            ax.legend(fontsize=7)
        if first_simulated is not None:
            ax.axvspan(first_simulated - 0.5, len(x) - 0.5, color="orange", alpha=0.15)
        ax.set_xticks(x, data["quarter"], rotation=45, fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=8)
        fig.tight_layout()
        name = f"{key}.png"
        fig.savefig(out_dir / name, metadata={"Software": None})
        plt.close(fig)
        out[title] = name
    return out


def run(
    *, source: Path, out_dir: Path, rows_per_slice: int, sample_rows: int, workdir: Path | None = None
) -> dict[str, Any]:
    """The whole loop; returns what the e2e test checks. Writes out_dir/demo.md and its plots."""
    from pipeline.ci import local as ci
    from pipeline.core import io, runner
    from pipeline.core.config import load_params
    from pipeline.delivery import canary, deploy, lineage, proposal, registry, registry_state
    from pipeline.monitoring import retrain

    params = load_params(source / "params.yaml")
    minimum = -(-params.drift.min_rows // QUARTER)
    if rows_per_slice < minimum:
        raise DemoError(ERR_ROWS.format(minimum=minimum, rows=rows_per_slice))
    period = params.drift.performance.period_column
    batches = {}
    for real in real_periods(directory=source / params.retrain.production_dir):
        assert real.labels is not None  # real_periods keeps labelled periods only
        batch = io.read_table(real.features).merge(io.read_table(real.labels), on=params.base.id_column)
        if period not in batch.columns:
            raise DemoError(ERR_PERIOD_COLUMN.format(path=real.features, column=period))
        batches[real.name] = batch
    names = list(batches)
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    repo = (workdir or Path(tempfile.mkdtemp(prefix="pipeline-demo-"))).resolve()
    repo.mkdir(parents=True, exist_ok=True)
    for key, value in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "DVC_NO_ANALYTICS": "1"}.items():
        os.environ.setdefault(key, value)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("PREDICTION_LOG_URL", None)
    copy_template(source=source, dest=repo, sample_rows=sample_rows, skip=params.retrain.production_dir)
    started = time.monotonic()
    # cleanup: a failed step still closes the service, so its log is flushed before the error.
    with inside(repo), contextlib.ExitStack() as cleanup:
        params_path = Path("params.yaml")
        # Retraining needs at least two quarters of labels; the window keeps the last three quarters.
        set_retrain_scale(params_path=params_path, min_rows=2 * QUARTER * rows_per_slice, max_periods=3 * QUARTER)
        commit(repo=repo, message="Demo scale: labelled rows needed for retraining")
        params = load_params(params_path)
        loop = Loop(repo=repo, params=params, log_path=repo / "logs" / "demo.db", out_dir=out_dir)
        raw = io.read_table(params.data.raw)
        loop.next_id = int(raw[params.base.id_column].max()) + 1
        start = reference_label(raw[period].dropna().unique() if period in raw.columns else [])
        scope = f"a {sample_rows}-row sample of {params.data.raw}" if sample_rows else f"all of {params.data.raw}"
        loop.note(start, "train", f"repo {repo}; dvc repro on {scope}")
        runner.reproduce()
        commit(repo=repo, message="Train the first model")
        version = registry.register(params=params, params_path=params_path)
        # As a team does it: the manifest names what the registry holds, by commit, then apply.
        # The committed manifest may name nothing yet (a fresh fork) or a version of another store.
        proposal.propose_version(params=params, env=ENV, version=version, strategy="none", share=None)
        commit(repo=repo, message=f"Deploy version {version} in {ENV}")
        deploy.apply(params=params, env=ENV)
        loop.note(start, "deploy", f"registered version {version}; deploy apply {ENV} (champion {version})")
        model = io.load_model(params.paths.model)
        reference_scores = out_dir / "reference_scores.parquet"
        io.write_table(
            pd.DataFrame(
                {params.drift.prediction.score_column: model.predict_proba(raw[list(params.data.features)])[:, 1]}
            ),
            reference_scores,
        )
        seed = params.base.seed
        stack = cleanup.enter_context(contextlib.ExitStack())
        loop.service = stack.enter_context(InProcessService(params=params, log_path=loop.log_path))
        for y, name in enumerate(names):
            for m, rows in enumerate(monthly_slices(frame=batches[name], rows_per_slice=rows_per_slice, seed=seed + y)):
                _month(loop, name=period_name(year=name, month=m + 1), rows=rows)
                if (m + 1) % QUARTER == 0:
                    quarter = f"{name}Q{(m + 1) // QUARTER}"
                    # Labels of the previous quarter arrive now.
                    _labels_arrive(loop, names=[n for n, _ in loop.sent[-2 * QUARTER : -QUARTER]])
                    _quarter_check(loop, quarter=quarter, simulated=False, reference_scores=reference_scores)
        loop.note(
            loop.checks[-1].quarter, "monitor", f"{len(loop.sent)} months of real traffic served; labels a quarter late"
        )
        base = batches[names[-1]]
        fired_period: str | None = None
        for q in range(MAX_DRIFT_QUARTERS * 2):
            simulated = later_period(names[-1], steps=1 + q // 4)
            quarter = f"{simulated}Q{q % 4 + 1}"
            for m in range(QUARTER):
                month = (q % 4) * QUARTER + m + 1
                rows = _drifted_month(loop, base=base, rows=rows_per_slice, seed=seed + 100 + q * QUARTER + m)
                rows = rows.assign(**{period: period_value(simulated, like=base[period])})
                _month(loop, name=period_name(year=simulated, month=month), rows=rows)
            if q == 0:
                loop.note(
                    quarter, "simulate", "from now on: an ageing population and a concept shift (params simulate)"
                )
            _labels_arrive(loop, names=[n for n, _ in loop.sent[-2 * QUARTER : -QUARTER]])
            summary = _quarter_check(loop, quarter=quarter, simulated=True, reference_scores=reference_scores)
            perf = summary.get("performance") or {}
            if summary["verdict"] == "drift" and perf.get("verdict") == "drift":
                fired_period = simulated
                shutil.copy(out_dir / "checks" / quarter / "drift.json", Path("drift.json"))
                break
        stack.close()
        if fired_period is None:
            raise DemoError(ERR_NEVER_FIRED.format(quarters=MAX_DRIFT_QUARTERS * 2))
        when = loop.checks[-1].quarter
        # The labels of the newest quarter arrive before retraining: they show the new world best.
        _labels_arrive(loop, names=[n for n, _ in loop.sent[-QUARTER:]])
        git("checkout", "-qb", RETRAIN_BRANCH, repo=repo)
        result = retrain.run(params=params, params_path=params_path, drift_path=Path("drift.json"))
        body = Path(result["body"]).read_text(encoding="utf-8")
        loop.note(
            when,
            "retrain",
            f"{result['data']['new']['path']}: {result['data']['new']['rows']} rows "
            f"({result['labelled_rows']} labelled production rows from {', '.join(result['periods'])}); "
            f"gate {'passed' if result['gate_passed'] else 'FAILED'}",
        )
        message = out_dir / "pr_body.md"
        io.write_text(body, message)
        git("add", "-A", repo=repo)
        git("commit", "-q", "-F", str(message), repo=repo)
        loop.note(when, "PR", f"branch {RETRAIN_BRANCH}: {git('log', '--oneline', '-1', repo=repo).strip()}")
        failed = ci.run(params_path=params_path, base="main", out=out_dir / "pr_report.md", lint=False)
        if failed:
            raise DemoError(ERR_STEP.format(step="ci", detail=", ".join(failed)))
        loop.note(when, "CI", "pipeline, smoke, champion fetch (main), gate and report: all passed")
        commit(repo=repo, message="CI reports")
        git("checkout", "-q", "main", repo=repo)
        git("merge", "-q", "--no-ff", "-m", "Merge the retraining pull request", RETRAIN_BRANCH, repo=repo)
        params = load_params(params_path)
        loop.params = params
        new_version = registry.register(params=params, params_path=params_path)
        proposal.propose_version(params=params, env=ENV, version=new_version, strategy="canary", share=None)
        commit(repo=repo, message=f"Canary version {new_version} in {ENV}")
        deploy.apply(params=params, env=ENV)
        loop.note(
            when,
            "canary",
            f"registered version {new_version}; manifest: challenger {new_version} at {params.deploy.canary_share:.0%}",
        )
        loop.log_path = repo / "logs" / "canary.db"
        guard = params.deploy.guardrails
        # Well above the minimum: the score-histogram distance of a few hundred rows is mostly noise.
        canary_rows = int(np.ceil(CANARY_TRAFFIC_FACTOR * guard.min_requests / params.deploy.canary_share))
        rows = _drifted_month(loop, base=base, rows=canary_rows, seed=seed + 999)
        rows = rows.assign(**{period: period_value(fired_period, like=base[period])})
        with InProcessService(params=params, log_path=loop.log_path, concurrency=CANARY_CONCURRENCY) as loop.service:
            _month(loop, name="canary", rows=rows)
        (params.retrain.production_dir / "canary_features.parquet").unlink()
        labels_path = out_dir / "canary_labels.parquet"
        io.write_table(loop.sent[-1][1][[params.base.id_column, params.base.target]], labels_path)
        outcome = canary.analyze(
            params=params, env=ENV, log_url=str(loop.log_path), labels_path=labels_path, apply=True, out_dir=out_dir
        )
        decision = "hold" if outcome.verdict is None else outcome.verdict.decision
        loop.note(when, "canary", canary.summary_line(outcome))
        # A rollback is the canary doing its job (a team's guardrails, its data): the demo shows it.
        if decision not in {"promote", "roll back"}:
            raise DemoError(ERR_STEP.format(step="canary", detail=outcome.text))
        commit(repo=repo, message=f"{decision.capitalize()} version {new_version} in {ENV} (canary verdict)")
        deploy.apply(params=params, env=ENV)
        state = registry_state.deployment_state(name=params.tracking.registered_model, env=ENV)
        loop.note(when, decision.replace(" ", "-"), f"deploy apply {ENV}: champion is version {state.champion}")
        data = lineage.collect(params=params, version=new_version)
        lineage_text = lineage.render_markdown(data)
        loop.note(when, "lineage", f"version {new_version}: commit {data['git']['commit'][:10]}")
    plots = _plots(checks=loop.checks, out_dir=out_dir)
    loop.note("", "done", f"{time.monotonic() - started:.0f} s; report {out_dir / 'demo.md'}")
    report = report_markdown(
        events=loop.events,
        checks=loop.checks,
        plots=plots,
        extras={"Pull-request body": body, f"Lineage of version {new_version}": lineage_text},
    )
    io.write_text(report, out_dir / "demo.md")
    return {
        "repo": str(repo),
        "report": str(out_dir / "demo.md"),
        "timeline": render_timeline(loop.events),
        "lineage": lineage_text,
        "first_version": version,
        "new_version": new_version,
        "champion": str(state.champion),
        "fired_at": when,
        "checks": [c.__dict__ for c in loop.checks],
    }
