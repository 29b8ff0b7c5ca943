"""Retraining end to end: plan the next table (from the prediction log, or from labelled period
files in the demo), store it (DVC and its remote when there is one: always on the log path),
point data.raw at it, rerun the pipeline, gate the candidate and write the pull-request body and
the list of paths the pull request commits.

Every input, and the remote, is checked before the first byte is written, so a refusal leaves
the repository exactly as it was.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.core.config import Params
from pipeline.core.periods import periods_in
from pipeline.monitoring.retrain import snapshot
from pipeline.monitoring.retrain.body import pr_body
from pipeline.monitoring.retrain.table import (
    ERR_DRIFT_REPORT,
    ERR_NO_DIR,
    ERR_NO_PERIODS,
    ERR_TOO_FEW,
    READY,
    REFUSED,
    Plan,
    RetrainInputError,
    RetrainRefused,
    Source,
    assemble,
    content_name,
    labelled_batch,
    select_window,
    set_raw_path,
)

logger = logging.getLogger(__name__)

PATHS_FILE = "paths.txt"


def plan(*, params: Params) -> Plan:
    """From labelled period files (the demo's path): read and check every input; nothing is
    written. Refuses too few labelled rows.
    """
    from pipeline.core import io

    policy = params.retrain
    id_column = params.base.id_column
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
            base=params.base,
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


def write_github_output(*, status: str, body: Path | None, path: Path | str, paths: Sequence[str] = ()) -> None:
    with Path(path).open("a", encoding="utf-8") as fh:
        fh.write(f"status={status}\n")
        if body is not None:
            fh.write(f"body={body.as_posix()}\n")
    if paths:
        from pipeline.ci.dvcfiles import write_paths_output

        # The same multi-line output `pipeline retrain paths` writes: the pull request's add-paths.
        write_paths_output(list(paths), path=Path(path))


def _store(*, frame: pd.DataFrame, path: Path, remote: str | None) -> dict[str, str] | None:
    """Write the table; with a remote, upload it first (from outside the working tree), then
    track it with DVC and push the pointer. Returns where it is stored, or None (working tree only).
    """
    from pipeline.core import io

    if remote is None:
        if not path.exists():
            io.write_table(frame, path)
        return None
    with tempfile.TemporaryDirectory(prefix="retrain-") as tmp:
        staged = Path(tmp) / path.name
        io.write_table(frame, staged)
        snapshot.upload(file=staged, remote=remote)
        tracked = snapshot.track(path=path, staged=staged)
    snapshot.push(tracked)
    logger.info("%s: tracked by DVC (%s) and pushed to the remote %r", path, tracked.pointer, remote)
    return {"pointer": tracked.pointer.as_posix(), "remote": remote}


def run(
    *,
    params: Params,
    params_path: Path,
    drift_path: Path | None = None,
    champion_model: Path | None = None,
    reproduce: bool = True,
    log_url: str | None = None,
    env: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Plan, store the new table, point data.raw at it, rerun, gate, write the PR body and paths.

    With `log_url` the labelled rows come from the prediction log and a DVC remote is required;
    without it they come from retrain.production_dir and a configured remote is used if any.
    """
    from pipeline.ci import gate
    from pipeline.core import io, runner
    from pipeline.core.config import load_params
    from pipeline.monitoring.retrain.live import plan_from_log

    policy = params.retrain
    if drift_path is not None and not drift_path.is_file():
        raise RetrainInputError(ERR_DRIFT_REPORT.format(path=drift_path))
    # The remote before anything else: on the log path there is no table without one.
    remote = snapshot.remote_for(required=log_url is not None)
    for table in (policy.reference, params.data.raw):
        snapshot.ensure_local(table)
    try:
        chosen = plan_from_log(params=params, url=log_url, env=env, now=now) if log_url else plan(params=params)
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
    storage = _store(frame=chosen.frame, path=new_path, remote=remote)
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
        if remote is not None:
            snapshot.push_outputs()
    decision = gate.run(params=load_params(params_path), champion_model=champion_model)
    body = pr_body(
        drift=drift,
        sources=chosen.sources,
        previous=previous,
        new=new,
        policy=policy,
        skipped=chosen.skipped,
        gate=decision,
        log=chosen.log or None,
        storage=storage,
    )
    body_path = policy.out_dir / "pr_body.md"
    io.write_text(body, body_path)
    paths = snapshot.commit_paths(raw=new_path, params_path=params_path)
    io.write_text("".join(f"{p}\n" for p in paths), policy.out_dir / PATHS_FILE)
    summary = {
        "status": READY,
        "data": {"previous": previous.__dict__, "new": new.__dict__},
        "sources": [s.__dict__ for s in chosen.sources],
        "periods": list(chosen.periods),
        "skipped": list(chosen.skipped),
        "labelled_rows": chosen.labelled_rows,
        "log": dict(chosen.log) or None,
        "storage": storage,
        "gate_passed": bool(decision.get("passed")),
        "body": body_path.as_posix(),
        "paths": paths,
    }
    io.write_json(summary, policy.out_dir / "retrain.json")
    if github_output := os.environ.get("GITHUB_OUTPUT"):
        write_github_output(status=READY, body=body_path, path=github_output, paths=paths)
    return summary
