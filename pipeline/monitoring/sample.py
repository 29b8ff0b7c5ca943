"""Manual sampling: a seeded random share of logged predictions, exported for human labelling.

The export carries the association id under the project's id column, so the labels that come
back (a file of id and target) join the predictions by id exactly as late production labels do
(`pipeline drift --predictions EXPORT --labels LABELS`). With a share of 1 the export is the
whole window of the log: the current batch and the predictions of a drift check in one file.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core.config import Params

logger = logging.getLogger(__name__)

# Rows a person labels: the answer each caller got, not shadow scores of the same request.
ANSWER_ROLES = ("champion", "challenger")
LOG_COLUMNS = ("ts", "env", "model_version", "role", "score", "flags")

ERR_SHARE = "--share must be in (0, 1], not {share}"
ERR_EMPTY_LOG = "the prediction log holds no scored answers{where}: nothing to sample"
ERR_BAD_INPUTS = "prediction log row {association_id!r} has unreadable inputs: {error}"
ERR_WINDOW = "--since ({since}) must be before --until ({until})"
ERR_TIME = "{value!r} is neither an ISO date/time (2026-01-31, 2026-01-31T12:00) nor an age such as 30d or 12h"
ERR_OUT_SUFFIX = "{path}: the export is written as CSV; give a path ending in .csv"


class SampleError(ValueError):
    """The sample cannot be drawn: bad share, window or an empty log."""


def parse_time(*, value: str, now: float) -> float:
    """Epoch seconds from an ISO date/time (UTC when no zone is given) or an age like 30d / 12h."""
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0}
    text = value.strip()
    if text[-1:] in units and text[:-1].isdigit():
        return now - int(text[:-1]) * units[text[-1]]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise SampleError(ERR_TIME.format(value=value)) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def answers(*, log: pd.DataFrame, id_column: str, features: tuple[str, ...]) -> pd.DataFrame:
    """One row per answered request: the id column (the association id), log fields, inputs.

    Failed requests (no score) and shadow rows are left out; a repeated association id keeps
    its first answer, so the labels file can never be ambiguous.
    """
    rows = log[log["role"].isin(ANSWER_ROLES) & log["score"].notna()]
    rows = rows.drop_duplicates("association_id", keep="first")
    parsed = []
    for association_id, text in zip(rows["association_id"], rows["inputs"], strict=True):
        try:
            parsed.append(json.loads(text))
        except (TypeError, ValueError) as exc:
            raise SampleError(ERR_BAD_INPUTS.format(association_id=association_id, error=exc)) from exc
    inputs = pd.DataFrame(parsed, index=rows.index, columns=list(features))
    out = pd.concat(
        [rows[["association_id", *LOG_COLUMNS]].rename(columns={"association_id": id_column}), inputs], axis=1
    )
    out["timestamp"] = pd.to_datetime(out["ts"], unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out.reset_index(drop=True)


def draw(*, frame: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """A seeded share of the rows without replacement, in log order; at least one row."""
    if not 0 < share <= 1:
        raise SampleError(ERR_SHARE.format(share=share))
    if share == 1:
        return frame.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    count = max(1, round(share * len(frame)))
    picked = np.sort(rng.choice(len(frame), size=count, replace=False))
    return frame.iloc[picked].reset_index(drop=True)


def export(
    *,
    params: Params,
    out: Path,
    share: float,
    seed: int | None = None,
    env: str | None = None,
    since: str | None = None,
    until: str | None = None,
    log_url: str | None = None,
    now: float | None = None,
) -> pd.DataFrame:
    """Read the log window, draw the sample and write it as CSV; returns what was written."""
    import time

    from pipeline.core import predlog

    if out.suffix.lower() != ".csv":
        raise SampleError(ERR_OUT_SUFFIX.format(path=out))
    if not 0 < share <= 1:
        raise SampleError(ERR_SHARE.format(share=share))
    moment = time.time() if now is None else now
    start = parse_time(value=since, now=moment) if since else None
    end = parse_time(value=until, now=moment) if until else None
    if start is not None and end is not None and start >= end:
        raise SampleError(ERR_WINDOW.format(since=since, until=until))
    url = predlog.resolve_url(configured=params.serve.log.path, override=log_url)
    log = predlog.read_log(
        url=url, env=env, start=start, end=end, retention_days=params.serve.log.retention_days, now=moment
    )
    table = answers(log=log, id_column=params.base.id_column, features=params.data.features)
    if table.empty:
        where = f" for env {env!r}" if env else ""
        where += " in that window" if since or until else ""
        raise SampleError(ERR_EMPTY_LOG.format(where=where))
    sample = draw(frame=table, share=share, seed=params.base.seed if seed is None else seed)
    # CSV on purpose: the file is opened by people in a spreadsheet, and io.read_table reads it back.
    out.parent.mkdir(parents=True, exist_ok=True)
    sample.to_csv(out, index=False)
    logger.info("wrote %d of %d logged answers to %s", len(sample), len(table), out)
    return sample
