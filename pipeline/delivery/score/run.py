"""`pipeline score`: check everything, then read, judge, score and write batch by batch, in this
process (engine `local`) or on a Dask cluster (engine `dask`, `cluster`), into the same layout.

Order matters for "nothing written on bad input": the input's files and columns, the output
folder, the model, the prediction log and (for dask) the scheduler are all checked before the
partial folder is created.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pipeline.core.config import Params
from pipeline.delivery.score import output as out
from pipeline.delivery.score.inputs import Input, ScoreError, fingerprint, open_input
from pipeline.delivery.score.local import write_parts as write_local
from pipeline.delivery.score.model import ScoringModel, resolve
from pipeline.delivery.score.prediction_log import BATCH_ENV, BatchLog, open_log

logger = logging.getLogger(__name__)

ERR_FINGERPRINT = (
    "output {output} holds a complete scoring of a different input, model or params "
    "(fingerprint {old:.12}, this run {new:.12}); pass --force to replace it"
)
ERR_DASK_CSV = (
    "input {spec} is CSV: the dask engine reads parquet (its row counts split the work); "
    "use --engine local or convert the input to parquet"
)
INFO_RESCORE = "%s holds this scoring, but its rows were never logged: scoring again to log them"
ENGINES = ("local", "dask")


class Writer(Protocol):
    """An engine: writes every part into the partial folder and returns the manifest's counts."""

    def __call__(self, *, source: Input, partial: Path, sink: BatchLog | None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Outcome:
    manifest: dict[str, Any]
    # True when a complete output of the same fingerprint was already there: nothing was written.
    unchanged: bool

    @property
    def rows(self) -> int:
        return int(self.manifest["rows"]["read"])

    @property
    def rejected(self) -> int:
        return int(self.manifest["rows"]["rejected"])

    def reject_share(self) -> float:
        return self.rejected / self.rows if self.rows else 0.0

    def too_many_rejects(self, params: Params) -> bool:
        return self.reject_share() > params.score.max_reject_share


def params_sha256(params: Params) -> str:
    """The params that shape the output files; other sections can change without a rescore."""
    relevant = {
        "base": params.base.model_dump(mode="json"),
        "data": params.data.model_dump(mode="json", exclude={"raw", "sample_rows", "source"}),
        "threshold": params.evaluate.threshold,
        "batch_rows": params.score.batch_rows,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def run_fingerprint(*, input_sha256: str, model_sha256: str, params_hash: str) -> str:
    parts = {"layout": out.LAYOUT_VERSION, "input": input_sha256, "model": model_sha256, "params": params_hash}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def score(
    *,
    params: Params,
    model_ref: str,
    input_spec: str,
    output: Path,
    force: bool = False,
    engine: str | None = None,
    scheduler: str | None = None,
    log: bool | None = None,
    log_url: str | None = None,
) -> Outcome:
    """Raises ScoreError (or a registry, model-file or prediction-log error) before anything is
    written. `engine`, `log`: None means params score.engine, score.log.
    """
    engine = engine or params.score.engine
    log = params.score.log if log is None else log
    if engine not in ENGINES:
        raise ScoreError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
    if scheduler and engine == "local":
        logger.warning("--scheduler %s is ignored: the local engine scores in this process", scheduler)
    source = open_input(input_spec, params)
    if engine == "dask" and source.format != "parquet":
        raise ScoreError(ERR_DASK_CSV.format(spec=input_spec))
    for column in source.absent:
        logger.warning("column %s is absent from the input: every row has it missing (it is optional)", column)
    earlier = out.read_manifest(output)
    scoring = resolve(model_ref, params)
    input_sha256 = fingerprint(source.files)
    params_hash = params_sha256(params)
    run_id = run_fingerprint(input_sha256=input_sha256, model_sha256=scoring.info.sha256, params_hash=params_hash)
    same = earlier is not None and earlier.get("fingerprint") == run_id
    if earlier is not None and same and (not log or "log" in earlier):
        logger.info("%s already holds this scoring (fingerprint %.12s): nothing to do", output, run_id)
        return Outcome(manifest=earlier, unchanged=True)
    if same:
        # The parts come out byte-identical; only the log and the manifest's record of it are new.
        logger.info(INFO_RESCORE, output)
    elif earlier is not None and not force:
        raise ScoreError(ERR_FINGERPRINT.format(output=output, old=str(earlier.get("fingerprint")), new=run_id))
    started = datetime.now(UTC)
    manifest: dict[str, Any] = {
        "fingerprint": run_id,
        "engine": engine,
        "input": {"files": list(source.files), "format": source.format, "sha256": input_sha256},
        "model": {**vars(scoring.info), "source": scoring.source, "reference": model_ref},
        "params_sha256": params_hash,
        "threshold": params.evaluate.threshold,
        "layout": out.LAYOUT_VERSION,
        "scored_at": started.isoformat(timespec="seconds"),
    }
    sink = open_log(params=params, url=log_url, info=scoring.info, ts=started.timestamp()) if log else None
    try:
        with _engine(engine, params=params, scoring=scoring, scheduler=scheduler) as work:
            for leftover in out.clear_leftovers(output):
                logger.info("removed %s, left by a run that was killed", leftover)
            with out.staging(output) as partial:
                manifest.update(work(source=source, partial=partial, sink=sink))
                if manifest["rows"]["read"] == 0:
                    raise ScoreError(f"input {input_spec} holds no rows; nothing was written")
                if sink is not None:
                    manifest["log"] = {"env": BATCH_ENV, "rows": sink.written}
                out.write_manifest(partial, manifest)
                out.commit(partial, output)
    finally:
        if sink is not None:
            sink.close()
    return Outcome(manifest=manifest, unchanged=False)


@contextlib.contextmanager
def _engine(engine: str, *, params: Params, scoring: ScoringModel, scheduler: str | None) -> Iterator[Writer]:
    """What writes the parts: this process batch by batch, or a Dask cluster (connected first, so
    an unreachable scheduler stops the run before anything is written).
    """
    if engine == "local":

        def local(*, source: Input, partial: Path, sink: BatchLog | None) -> dict[str, Any]:
            return write_local(params=params, source=source, scoring=scoring, partial=partial, sink=sink)

        yield local
        return
    from pipeline.delivery.score import cluster

    with (
        cluster.connect(scheduler=scheduler, params=params) as client,
        cluster.shipped(client, scoring, params) as plugin,
    ):

        def distributed(*, source: Input, partial: Path, sink: BatchLog | None) -> dict[str, Any]:
            return cluster.write_parts(
                client, plugin=plugin, params=params, source=source, scoring=scoring, partial=partial, sink=sink
            )

        yield distributed


def summary(outcome: Outcome, *, output: Path) -> str:
    rows = outcome.manifest["rows"]
    model = outcome.manifest["model"]
    what = "already complete, nothing written" if outcome.unchanged else "written"
    return (
        f"{output}: {what}; {rows['read']} rows read, {rows['scored']} scored, {rows['rejected']} rejected "
        f"({outcome.reject_share():.2%}) by {model['name']} version {model['version']}"
    )


def interrupt_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so a stopped run removes its partial folder on the way out."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
