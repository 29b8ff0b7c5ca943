"""The drift check's current window from the prediction log: one environment's answers over the
last params drift.window, the labels that have arrived for them (joined by association id), the
period of each prediction and the label coverage (labelled / predicted) overall, per period and
per sensitive group.

Every read goes through the log's readers, which never look past serve.log.retention_days.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipeline.core.config import Params
from pipeline.core.redact import redact
from pipeline.monitoring.drift.quality import DriftInputError, NoProductionData
from pipeline.monitoring.drift.verdicts import NOT_ENOUGH_DATA

# The column a derived period goes by, unless a declared column already has that name.
PERIOD = "period"
ERR_NO_ANSWERS = (
    "prediction log {url}: no scored answer for env {env!r} in [{since}, {until}) "
    "(params drift.window / --since; readers stop at serve.log.retention_days {days}): nothing to check"
)
ERR_WINDOW = "--since ({since}) must be before --until ({until})"


@dataclass(frozen=True)
class LiveWindow:
    """What the log holds for one check: answers, their predictions and the labelled ones."""

    current: pd.DataFrame
    predictions: pd.DataFrame
    # Labelled answers: id, score, target (0/1), every declared column and the period.
    joined: pd.DataFrame
    # Every answer with its period (the denominator of the coverage).
    answered: pd.DataFrame
    period_column: str
    source: str
    window: dict[str, Any] = field(default_factory=dict)


def period_of(*, ts: pd.Series, unit: str) -> pd.Series:
    """The day (2026-11-30), ISO week (2026-W48) or month (2026-11) of epoch seconds, in UTC."""
    moments = pd.to_datetime(ts.astype("float64"), unit="s", utc=True)
    if unit == "day":
        return moments.dt.strftime("%Y-%m-%d")
    if unit == "month":
        return moments.dt.strftime("%Y-%m")
    iso = moments.dt.isocalendar()
    return iso["year"].astype(str) + "-W" + iso["week"].astype(int).map("{:02d}".format)


def _bounds(*, params: Params, since: str | None, until: str | None, now: float) -> tuple[float, float | None]:
    from pipeline.monitoring.sample import SampleError, parse_time

    try:
        start = parse_time(value=since or params.drift.window, now=now)
        end = parse_time(value=until, now=now) if until else None
    except SampleError as exc:
        raise DriftInputError(str(exc)) from exc
    if end is not None and start >= end:
        raise DriftInputError(ERR_WINDOW.format(since=since or params.drift.window, until=until))
    return start, end


def read_window(
    *,
    params: Params,
    url: str,
    env: str | None,
    since: str | None,
    until: str | None,
    now: float,
    with_labels: bool = True,
) -> LiveWindow:
    """The window [since, until) of `env`'s answers (default: the last drift.window of drift.env)."""
    from pipeline.core import predlog
    from pipeline.monitoring.sample import SampleError, answers

    env = env or params.drift.env
    start, end = _bounds(params=params, since=since, until=until, now=now)
    days = params.serve.log.retention_days
    id_column, target = params.base.id_column, params.base.target
    columns = params.data.columns
    try:
        log = predlog.read_log(url=url, env=env, start=start, end=end, retention_days=days, now=now)
        table = answers(log=log, id_column=id_column, features=columns)
        labels = (
            predlog.labelled_predictions(url, since=start, until=end, environment=env, retention_days=days, now=now)
            if with_labels
            else None
        )
    except (SampleError, predlog.PredictionLogError) as exc:
        raise DriftInputError(str(exc)) from exc
    window = {
        "env": env,
        "since": predlog.iso(max(start, now - days * predlog.DAY_SECONDS)),
        "until": predlog.iso(end if end is not None else now),
        "retention_days": days,
    }
    if table.empty:
        raise NoProductionData(
            ERR_NO_ANSWERS.format(url=redact(url), env=env, since=window["since"], until=window["until"], days=days)
        )
    spec = params.drift.performance
    if spec.period_column in table.columns and table[spec.period_column].notna().all():
        period_column = spec.period_column
    else:
        period_column = PERIOD if PERIOD not in table.columns else f"_{PERIOD}"
        table[period_column] = period_of(ts=table["ts"], unit=spec.period)
    score_column = params.drift.prediction.score_column
    predictions = table[[id_column, "score"]].rename(columns={"score": score_column})
    joined = table.iloc[0:0].assign(**{target: pd.Series(dtype="int64")})
    if labels is not None and not labels.empty:
        # Every model's row of a request carries the id's one newest label: one per id is enough.
        known = labels.drop_duplicates("association_id")[["association_id", "label"]]
        known = known.rename(columns={"association_id": id_column, "label": target})
        joined = table.merge(known, on=id_column, how="inner", validate="one_to_one")
    joined = joined.rename(columns={"score": score_column})
    return LiveWindow(
        current=table[[id_column, *columns]],
        predictions=predictions,
        joined=joined,
        answered=table,
        period_column=period_column,
        source=f"prediction log {redact(url)}",
        window=window,
    )


# --------------------------------------------------------------------------- coverage


def _share(labelled: int, predicted: int) -> float:
    return labelled / predicted if predicted else 0.0


def coverage(*, live: LiveWindow, params: Params) -> dict[str, Any]:
    """Labelled and predicted rows, and their ratio, overall, per period and per sensitive group."""
    from pipeline.core.groups import group_labels

    answered, joined, period = live.answered, live.joined, live.period_column

    def counts(all_rows: pd.Series, labelled_rows: pd.Series) -> dict[str, dict[str, Any]]:
        predicted = all_rows.value_counts()
        labelled = labelled_rows.value_counts()
        return {
            str(key): {
                "predicted": int(n),
                "labelled": int(labelled.get(key, 0)),
                "coverage": _share(int(labelled.get(key, 0)), int(n)),
            }
            for key, n in sorted(predicted.items(), key=lambda kv: str(kv[0]))
        }

    groups = {
        feature: counts(
            group_labels(values=answered[feature], spec=spec), group_labels(values=joined[feature], spec=spec)
        )
        for feature, spec in params.fairness.groups.items()
        if feature in answered.columns
    }
    return {
        **live.window,
        "predicted": len(answered),
        "labelled": len(joined),
        "coverage": _share(len(joined), len(answered)),
        "period_column": period,
        "periods": counts(answered[period].astype(str), joined[period].astype(str)),
        "groups": groups,
    }


def with_coverage(*, perf: Mapping[str, Any] | None, labels: Mapping[str, Any]) -> dict[str, Any] | None:
    """The performance section with each period's and group's predicted rows and coverage; a
    period with predictions but no label yet is listed as not enough data.
    """
    if perf is None:
        return None
    out = dict(perf)
    out["overall"] = {**perf["overall"], "predicted": labels["predicted"], "coverage": labels["coverage"]}
    periods = dict(perf.get("periods") or {})
    for name, row in labels["periods"].items():
        judged = periods.get(name, {"rows": 0, "verdict": NOT_ENOUGH_DATA})
        periods[name] = {**judged, "predicted": row["predicted"], "coverage": row["coverage"]}
    out["periods"] = dict(sorted(periods.items()))
    groups: dict[str, dict[str, Any]] = {}
    for feature, rows in (perf.get("groups") or {}).items():
        seen = labels["groups"].get(feature, {})
        groups[feature] = {
            label: {**row, **{k: seen[label][k] for k in ("predicted", "coverage") if label in seen}}
            for label, row in rows.items()
        }
    out["groups"] = groups
    return out
