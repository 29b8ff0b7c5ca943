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
from pipeline.monitoring.drift.quality import (
    ERR_MISSING,
    DriftInputError,
    NoProductionData,
    check_out_dir,
    check_scores,
)
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
ERR_NO_BATCH = (
    "{path}: no production batch ({pattern}) to check; give --current or --log-url, or set PREDICTION_LOG_URL"
)


def batch_from_log(*, log: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The current batch (id and every declared column: audit-only ones are logged for the group
    checks) and its predictions (id and score) from prediction-log rows, the log's association id
    as the id column the checks join on.
    """
    from pipeline.monitoring.sample import SampleError, answers

    id_column = params.base.id_column
    try:
        table = answers(log=log, id_column=id_column, features=params.data.columns)
    except SampleError as exc:
        raise DriftInputError(str(exc)) from exc
    current = table[[id_column, *params.data.columns]]
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
        raise NoProductionData(ERR_NO_BATCH.format(path=directory, pattern=PATTERN))
    return found


def _local(path: Path) -> Path:
    """The reference table, pulled from the DVC remote first when DVC tracks it and this checkout
    lacks it (a runner after a retraining merged: the table is in the remote, not in git).
    """
    from pipeline.core.dvc_remote import RemoteError
    from pipeline.monitoring.retrain.snapshot import ensure_local

    try:
        ensure_local(path)
    except RemoteError as exc:
        raise DriftInputError(f"{path}: {exc}") from exc
    return path


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
    now: float | None = None,
) -> dict[str, Any]:
    """Read the inputs, run every check that has its inputs, write drift.json and drift.md.

    The current batch and its predictions come either from files (current_path, predictions_path)
    or from the prediction log (log_url: env's answers in [since, until), by default the last
    params drift.window of drift.env, with the labels that have arrived unless labels_path
    names a file of them).

    Returns the summary; its verdict maps to the exit code through EXIT_CODES.
    """
    import time

    from pipeline.core import io
    from pipeline.core.schema import conform_codes
    from pipeline.monitoring.drift.live import coverage, read_window, with_coverage

    config = params.drift
    out_dir = out_dir or config.out_dir
    check_out_dir(path=out_dir)
    predictions: pd.DataFrame | None
    live = None
    if log_url is not None and current_path is None and predictions_path is None:
        moment = time.time() if now is None else now
        live = read_window(
            params=params, url=log_url, env=env, since=since, until=until, now=moment, with_labels=labels_path is None
        )
        current, predictions, predictions_source = live.current, live.predictions, live.source
    elif log_url is None and current_path is not None:
        current = io.read_table(current_path)
        predictions = io.read_table(predictions_path) if predictions_path is not None else None
        predictions_source = str(predictions_path)
    else:
        raise DriftInputError(ERR_SOURCE)
    reference = io.read_table(_local(reference_path or params.data.raw))
    # Codes in one form on both sides: an int code and its text, or true and "True", are one
    # category. Numeric dtypes are judged by the checks themselves (a text column is bad input).
    reference = conform_codes(reference, params.data)
    current = conform_codes(current, params.data)
    numeric, categorical = tuple(params.data.numeric), tuple(params.data.categorical)
    features = feature_drift(
        reference=reference, current=current, numeric=numeric, categorical=categorical, config=config
    )
    score_column = config.prediction.score_column
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
    labels_summary = None
    if labels_path is not None:
        if predictions is None:
            raise DriftInputError(ERR_LABELS_NEED_PREDICTIONS)
        joined = _joined_from_file(
            params=params,
            labels_path=labels_path,
            predictions=predictions,
            current=current,
            predictions_source=predictions_source,
            ids_as_text=log_url is not None,
        )
        perf = _performance(params=params, joined=joined, baseline_path=baseline_path, period_column=None)
    elif live is not None:
        labels_summary = coverage(live=live, params=params)
        if not live.joined.empty:
            perf = _performance(
                params=params, joined=live.joined, baseline_path=baseline_path, period_column=live.period_column
            )
            perf = with_coverage(perf=perf, labels=labels_summary)
    summary = summarise(features=features, prediction=prediction, perf=perf, config=config)
    if labels_summary is not None:
        summary["labels"] = labels_summary
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


def _joined_from_file(
    *,
    params: Params,
    labels_path: Path,
    predictions: pd.DataFrame,
    current: pd.DataFrame,
    predictions_source: str,
    ids_as_text: bool,
) -> pd.DataFrame:
    """Predictions joined with a file of late labels, with the groups and period from the batch."""
    from pipeline.core import io
    from pipeline.core.schema import SchemaError, target_binary

    id_column, target = params.base.id_column, params.base.target
    labels = io.read_table(labels_path)
    if target in labels:
        try:
            binary = target_binary(labels[target], params.base)
        except SchemaError as exc:
            raise DriftInputError(f"{labels_path}: {exc}") from exc
        labels = labels.assign(**{target: binary})
    if ids_as_text and id_column in labels:
        # The log keeps association ids as text; ids in a labels file are often integers.
        labels = labels.assign(**{id_column: labels[id_column].astype(str)})
    joined = join_labels(
        predictions=predictions,
        labels=labels,
        id_column=id_column,
        target=target,
        score_column=params.drift.prediction.score_column,
        predictions_source=predictions_source,
        labels_source=str(labels_path),
    )
    # Sensitive features and the period come from the batch when the predictions lack them.
    extra = [
        c
        for c in (*params.fairness.groups, params.drift.performance.period_column)
        if c in current.columns and c not in joined.columns
    ]
    if extra and id_column in current.columns:
        joined = joined.merge(current[[id_column, *extra]].drop_duplicates(id_column), on=id_column, how="left")
    return joined


def _performance(
    *, params: Params, joined: pd.DataFrame, baseline_path: Path | None, period_column: str | None
) -> dict[str, Any]:
    config = params.drift
    baseline = _baseline_metrics(baseline_path or config.performance.baseline, config.performance.metrics)
    return performance(
        joined=joined,
        target=params.base.target,
        score_column=config.prediction.score_column,
        threshold=params.evaluate.threshold,
        baseline=baseline,
        groups=params.fairness.groups,
        min_group_size=params.fairness.min_group_size,
        config=config,
        period_column=period_column,
    )
