"""Running a drift check end to end: read the batch from files or the prediction log, judge it, write the report."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.config import Params
from pipeline.core.redact import redact
from pipeline.monitoring.drift.quality import ERR_MISSING, DriftInputError, check_out_dir, check_scores
from pipeline.monitoring.drift.report import markdown_report, plot_features, write_github_output
from pipeline.monitoring.drift.verdicts import (
    feature_drift,
    join_labels,
    performance,
    prediction_drift,
    summarise,
)

logger = logging.getLogger(__name__)

ERR_SOURCE = "give either --current (with --predictions if any) or --log-url, which supplies both"
ERR_LABELS_NEED_PREDICTIONS = "--labels needs --predictions: labels are joined to predictions by id"
ERR_NO_BASELINE = "{path}: holds none of the baseline metrics {names}"
ERR_NO_BATCH = "{path}: no production batch ({pattern}) to check; give --current or --log-url"


def batch_from_log(*, log: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The current batch (id and features) and its predictions (id and score) from prediction-log
    rows: the one place where the log's association id becomes the id column the checks join on.
    """
    from pipeline.monitoring.sample import SampleError, answers

    id_column = params.base.id_column
    try:
        table = answers(log=log, id_column=id_column, features=params.data.features)
    except SampleError as exc:
        raise DriftInputError(str(exc)) from exc
    current = table[[id_column, *params.data.features]]
    predictions = table[[id_column, "score"]].rename(columns={"score": params.drift.prediction.score_column})
    return current, predictions


def default_batch(*, params: Params) -> Path:
    """The batch `pipeline drift` checks without --current: the newest period in params
    retrain.production_dir, by the same name order the retraining window uses.
    """
    from pipeline.core.periods import PATTERN, newest_batch

    directory = params.retrain.production_dir
    found = newest_batch(directory)
    if found is None:
        raise DriftInputError(ERR_NO_BATCH.format(path=directory, pattern=PATTERN))
    return found


def _baseline_metrics(path: Path, names: Sequence[str]) -> dict[str, float]:
    from pipeline.core import io

    data = io.read_json(path)
    found = {m: float(data[m]) for m in names if isinstance(data, dict) and isinstance(data.get(m), int | float)}
    if not found:
        raise DriftInputError(ERR_NO_BASELINE.format(path=path, names=list(names)))
    return found


def _reference_scores(*, params: Params, reference: pd.DataFrame, path: Path | None) -> np.ndarray | None:
    from pipeline.core import io

    score_column = params.drift.prediction.score_column
    if path is not None:
        frame = io.read_table(path)
        if score_column not in frame.columns:
            raise DriftInputError(ERR_MISSING.format(name="reference predictions", columns=score_column))
        check_scores(scores=frame[score_column], source=str(path), column=score_column)
        return frame[score_column].to_numpy(dtype=np.float64)
    if not params.paths.model.is_file():
        logger.warning("no reference predictions and no model at %s: prediction drift skipped", params.paths.model)
        return None
    model = io.load_model(params.paths.model)
    proba: np.ndarray = model.predict_proba(reference[list(params.data.features)])[:, 1]
    return proba


def read_log_batch(
    *, params: Params, url: str, env: str | None, since: str | None, until: str | None, now: float | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The current batch and its predictions from the prediction log's window [since, until)."""
    import time

    from pipeline.core import predlog
    from pipeline.monitoring.sample import SampleError, parse_time

    moment = time.time() if now is None else now
    try:
        start = parse_time(value=since, now=moment) if since else None
        end = parse_time(value=until, now=moment) if until else None
        log = predlog.read_log(
            url=url, env=env, start=start, end=end, retention_days=params.serve.log.retention_days, now=moment
        )
    except (SampleError, predlog.PredictionLogError) as exc:
        raise DriftInputError(str(exc)) from exc
    return batch_from_log(log=log, params=params)


def run(
    *,
    params: Params,
    current_path: Path | None = None,
    reference_path: Path | None = None,
    predictions_path: Path | None = None,
    labels_path: Path | None = None,
    reference_predictions_path: Path | None = None,
    baseline_path: Path | None = None,
    out_dir: Path | None = None,
    plots: bool = True,
    log_url: str | None = None,
    env: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    """Read the inputs, run every check that has its inputs, write drift.json and drift.md.

    The current batch and its predictions come either from files (current_path, predictions_path)
    or from the prediction log (log_url, optionally narrowed to env and [since, until)).

    Returns the summary; its verdict maps to the exit code through EXIT_CODES.
    """
    from pipeline.core import io
    from pipeline.core.schema import SchemaError, conform_codes, target_binary

    config = params.drift
    out_dir = out_dir or config.out_dir
    check_out_dir(path=out_dir)
    reference = io.read_table(reference_path or params.data.raw)
    predictions: pd.DataFrame | None
    if log_url is not None and current_path is None and predictions_path is None:
        current, predictions = read_log_batch(params=params, url=log_url, env=env, since=since, until=until)
        predictions_source = f"prediction log {redact(log_url)}"
    elif log_url is None and current_path is not None:
        current = io.read_table(current_path)
        predictions = io.read_table(predictions_path) if predictions_path is not None else None
        predictions_source = str(predictions_path)
    else:
        raise DriftInputError(ERR_SOURCE)
    # Codes in one form on both sides: an int code and its text, or true and "True", are one
    # category. Numeric dtypes are judged by the checks themselves (a text column is bad input).
    reference = conform_codes(reference, params.data)
    current = conform_codes(current, params.data)
    numeric, categorical = tuple(params.data.numeric), tuple(params.data.categorical)
    features = feature_drift(
        reference=reference, current=current, numeric=numeric, categorical=categorical, config=config
    )
    score_column = config.prediction.score_column
    id_column = params.base.id_column
    prediction = None
    if predictions is not None:
        if score_column not in predictions.columns:
            raise DriftInputError(ERR_MISSING.format(name="predictions", columns=score_column))
        # Before the reference scores: a model is loaded for those only when the batch's are usable.
        check_scores(scores=predictions[score_column], source=predictions_source, column=score_column)
        ref_scores = _reference_scores(params=params, reference=reference, path=reference_predictions_path)
        if ref_scores is not None:
            prediction = prediction_drift(
                reference_scores=ref_scores,
                current_scores=predictions[score_column].to_numpy(dtype=np.float64),
                threshold=params.evaluate.threshold,
                config=config,
            )
    perf = None
    if labels_path is not None:
        if predictions is None:
            raise DriftInputError(ERR_LABELS_NEED_PREDICTIONS)
        labels = io.read_table(labels_path)
        if params.base.target in labels:
            try:
                binary = target_binary(labels[params.base.target], params.base)
            except SchemaError as exc:
                raise DriftInputError(f"{labels_path}: {exc}") from exc
            labels = labels.assign(**{params.base.target: binary})
        if log_url is not None:
            # The log keeps association ids as text; ids in a labels file are often integers.
            labels = labels.assign(**{id_column: labels[id_column].astype(str)}) if id_column in labels else labels
        joined = join_labels(
            predictions=predictions,
            labels=labels,
            id_column=id_column,
            target=params.base.target,
            score_column=score_column,
            predictions_source=predictions_source,
            labels_source=str(labels_path),
        )
        # Sensitive features and the period come from the batch when the prediction log lacks them.
        extra = [
            c
            for c in (*params.fairness.groups, config.performance.period_column)
            if c in current.columns and c not in joined.columns
        ]
        if extra and id_column in current.columns:
            joined = joined.merge(current[[id_column, *extra]].drop_duplicates(id_column), on=id_column, how="left")
        baseline = _baseline_metrics(baseline_path or config.performance.baseline, config.performance.metrics)
        perf = performance(
            joined=joined,
            target=params.base.target,
            score_column=score_column,
            threshold=params.evaluate.threshold,
            baseline=baseline,
            groups=params.fairness.groups,
            min_group_size=params.fairness.min_group_size,
            config=config,
        )
    summary = summarise(features=features, prediction=prediction, perf=perf, config=config)
    plot_links = (
        plot_features(reference=reference, current=current, features=features, out_dir=out_dir, limit=config.max_plots)
        if plots
        else {}
    )
    io.write_json(summary, out_dir / "drift.json")
    io.write_text(markdown_report(summary=summary, features=features, plots=plot_links), out_dir / "drift.md")
    if github_output := os.environ.get("GITHUB_OUTPUT"):
        write_github_output(summary=summary, path=github_output)
    logger.info("drift check: %s (%s)", summary["verdict"], ", ".join(summary["data_drift"]["drifted_features"]))
    return summary
