"""Labelled production rows from the prediction log: the answers of one environment over the
last params retrain.window that carry a label, one per association id, whose inputs pass the
validation rules the training table must pass, in the reference table's columns and dtypes.

Personal data: only the id, the declared columns and the target leave the log; the id can be a
keyed hash (retrain.pseudonymise); every read stops at serve.log.retention_days.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.config import Params
from pipeline.core.redact import redact
from pipeline.monitoring.retrain.table import (
    ERR_TOO_FEW,
    Plan,
    RetrainInputError,
    RetrainRefused,
    Source,
    check_unique_ids,
)

ERR_SALT = (
    "retrain.pseudonymise is on but {name} (params retrain.salt_env) is not set: set it to a secret "
    "key kept outside the repository, or turn retrain.pseudonymise off"
)
ERR_NO_MATCH = (
    "prediction log {url}: {count} ids were labelled since {since} but none matches an answer of env "
    "{env!r} in the window: are the labels keyed by the association id the service answered with?"
)
ERR_BAD_INPUTS = "prediction log row {association_id!r} has unreadable inputs: {error}"
ERR_ID_COLUMN = "{path}: lacks the id column {column!r} (params base.id_column)"


def row_problems(frame: pd.DataFrame, params: Params) -> pd.Series:
    """True for a row whose inputs the training table's validation would refuse: a declared value
    missing where params do not allow it, a number outside its range (or not whole for an int
    column), a code outside its list (the service may score one as `other`; training cannot use it).
    """
    from pipeline.core.schema import codes

    bad = pd.Series(False, index=frame.index)
    for column, spec in params.data.numeric.items():
        values = frame[column] if column in frame else pd.Series(np.nan, index=frame.index)
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        present = values.notna()
        wrong = present & ~numbers.between(spec.min, spec.max)
        if spec.dtype == "int":
            wrong |= present & (numbers != np.floor(numbers))
        bad |= wrong | (~present if not spec.nullable else False)
    for column, category in params.data.categorical.items():
        values = frame[column] if column in frame else pd.Series(np.nan, index=frame.index, dtype=object)
        present = values.notna()
        text = codes(values[present], category) if present.any() else pd.Series(dtype=str)
        wrong = pd.Series(False, index=frame.index)
        wrong[present] = ~text.isin(category.values)
        bad |= wrong | (~present if not category.nullable else False)
    return bad


def pseudonyms(ids: pd.Series, *, key: bytes) -> pd.Series:
    """A keyed hash (HMAC-SHA256, hex) per id: stable for one key, not reversible without it."""
    return ids.map(lambda value: hmac.new(key, str(value).encode("utf-8"), hashlib.sha256).hexdigest())


def salt(params: Params) -> bytes | None:
    """The pseudonymisation key, or None when pseudonymisation is off; refused when unset."""
    policy = params.retrain
    if not policy.pseudonymise:
        return None
    value = os.environ.get(policy.salt_env, "")
    if not value:
        raise RetrainInputError(ERR_SALT.format(name=policy.salt_env))
    return value.encode("utf-8")


def _like(values: pd.Series, reference: pd.Series) -> pd.Series:
    """Logged values (numbers as floats, codes as text) in the dtype the reference column has."""
    from pipeline.core.config import label_key

    dtype = reference.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return values.map(lambda v: v if v is None or pd.isna(v) else label_key(v) == "true")
    if pd.api.types.is_numeric_dtype(dtype):
        numbers = pd.to_numeric(values, errors="coerce")
        whole = numbers.notna().all() and bool((numbers == np.floor(numbers)).all())
        return numbers.astype(dtype) if pd.api.types.is_integer_dtype(dtype) and whole else numbers.astype("float64")
    return values.astype(dtype) if isinstance(dtype, pd.StringDtype) else values.astype(object)


def _ids(ids: pd.Series, reference: pd.Series, *, key: bytes | None) -> tuple[pd.Series, pd.Series]:
    """(production ids, reference ids) in one dtype: the reference's when every association id
    fits it, else text on both sides.
    """
    if key is not None:
        return pseudonyms(ids, key=key).astype(object), reference.astype(str).astype(object)
    if pd.api.types.is_integer_dtype(reference.dtype) and ids.str.fullmatch(r"-?[0-9]{1,18}").all():
        return ids.astype("int64").astype(reference.dtype), reference
    return ids.astype(object), reference.astype(str).astype(object)


def production_rows(*, labelled: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per labelled association id (its first answer), inputs parsed; the rows whose
    inputs fail validation are left out. Returns the rows (association_id, declared columns,
    label) and the counts behind them.
    """
    rows = labelled.sort_values(["ts", "association_id"], kind="stable").drop_duplicates("association_id")
    parsed = []
    for association_id, text in zip(rows["association_id"], rows["inputs"], strict=True):
        try:
            parsed.append(json.loads(text))
        except (TypeError, ValueError) as exc:
            raise RetrainInputError(ERR_BAD_INPUTS.format(association_id=association_id, error=exc)) from exc
    inputs = pd.DataFrame(parsed, index=rows.index, columns=list(params.data.columns))
    bad = row_problems(inputs, params)
    kept = pd.concat([rows[["association_id", "label"]], inputs], axis=1)[~bad]
    counts = {"labelled": len(rows), "duplicates": len(labelled) - len(rows), "invalid": int(bad.sum())}
    return kept.reset_index(drop=True), counts


def snapshot_frame(
    *, reference: pd.DataFrame, rows: pd.DataFrame, params: Params, key: bytes | None, source: str
) -> pd.DataFrame:
    """The reference then the production rows, in the reference's columns: the log gives the id,
    the declared columns and the target (mapped through base.positive_label / negative_label);
    every other column of the reference (metadata, ignored) stays empty for those rows.
    """
    id_column, target = params.base.id_column, params.base.target
    if id_column not in reference.columns:
        raise RetrainInputError(ERR_ID_COLUMN.format(path=source, column=id_column))
    production_ids, reference_ids = _ids(rows["association_id"].astype(str), reference[id_column], key=key)
    reference = reference.assign(**{id_column: reference_ids})
    labels = rows["label"].map({1: params.base.positive_label, 0: params.base.negative_label})
    taken = {id_column: production_ids.to_numpy(), target: labels.to_numpy()}
    taken.update({c: rows[c].to_numpy() for c in params.data.columns})
    production = pd.DataFrame(index=rows.index)
    for column in reference.columns:
        values = pd.Series(taken[column], index=rows.index) if column in taken else pd.Series(None, index=rows.index)
        production[column] = values if column == id_column else _like(values, reference[column])
    combined = pd.concat([reference, production], ignore_index=True)
    check_unique_ids(combined, id_column)
    return combined


def plan_from_log(*, params: Params, url: str, env: str | None = None, now: float | None = None) -> Plan:
    """Read and check the window and the reference; nothing is written. Refuses too few labelled
    rows (RetrainRefused) and labels that match no answer in the window (RetrainInputError).
    """
    from pipeline.core import io, predlog
    from pipeline.monitoring.sample import SampleError, parse_time

    policy = params.retrain
    key = salt(params)
    env = env or params.drift.env
    moment = time.time() if now is None else now
    days = params.serve.log.retention_days
    try:
        start = parse_time(value=policy.window, now=moment)
        labelled = predlog.labelled_predictions(url, since=start, environment=env, retention_days=days, now=moment)
        unmatched = predlog.label_count(url, since=start, retention_days=days, now=moment) if labelled.empty else 0
    except (SampleError, predlog.PredictionLogError) as exc:
        raise RetrainInputError(str(exc)) from exc
    since = predlog.iso(max(start, moment - days * predlog.DAY_SECONDS))
    if labelled.empty and unmatched:
        raise RetrainInputError(ERR_NO_MATCH.format(url=redact(url), count=unmatched, since=since, env=env))
    rows, counts = production_rows(labelled=labelled, params=params)
    window = f"env {env}, {since} to {predlog.iso(moment)}"
    if len(rows) < policy.min_labelled_rows:
        raise RetrainRefused(ERR_TOO_FEW.format(rows=len(rows), periods=window, minimum=policy.min_labelled_rows))
    reference = io.read_table(policy.reference)
    frame = snapshot_frame(reference=reference, rows=rows, params=params, key=key, source=policy.reference.as_posix())
    sources = (
        Source("reference", policy.reference.as_posix(), len(reference), io.file_md5(policy.reference)),
        Source("prediction log", f"{redact(url)} ({window})", len(rows), _digest(rows)),
    )
    log: dict[str, Any] = {
        "env": env,
        "since": since,
        "until": predlog.iso(moment),
        "retention_days": days,
        "pseudonymised": key is not None,
        **counts,
    }
    return Plan(frame, sources, (window,), (), len(rows), log)


def _digest(rows: pd.DataFrame) -> str:
    """The md5 of the rows taken from the log (the log has no file to hash)."""
    values = pd.util.hash_pandas_object(rows, index=False).to_numpy()
    return hashlib.md5(values.tobytes(), usedforsecurity=False).hexdigest()
