"""Production batches with controlled drift, built from real rows (demos and drift tests).

Every function is pure and seeded: the same frame, settings and seed give the same batch.
Rows get fresh ids so that predictions and late labels of a batch join one-to-one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from pipeline.core.config import Params

logger = logging.getLogger(__name__)

Kind = Literal["none", "covariate", "concept", "new_category"]
KINDS: tuple[Kind, ...] = ("none", "covariate", "concept", "new_category")

ERR_NO_ROWS = "cannot draw a batch from an empty frame"
ERR_UNKNOWN_COLUMN = "column {column!r} is not in the frame"
ERR_CONSTANT = "feature {column!r} is constant: there is nothing to reweight by"
ERR_KNOWN_CODE = "code {code!r} already occurs in column {column!r}: it would not be a new category"
ERR_EMPTY_SUBGROUP = "the concept-shift subgroup matches no row"


class SimulationError(ValueError):
    """The requested drift cannot be built from this frame."""


def _require(frame: pd.DataFrame, *columns: str) -> None:
    if len(frame) == 0:
        raise SimulationError(ERR_NO_ROWS)
    for column in columns:
        if column not in frame.columns:
            raise SimulationError(ERR_UNKNOWN_COLUMN.format(column=column))


def _with_ids(batch: pd.DataFrame, *, id_column: str | None, first_id: int) -> pd.DataFrame:
    batch = batch.reset_index(drop=True)
    if id_column is not None and id_column in batch.columns:
        batch[id_column] = np.arange(first_id, first_id + len(batch), dtype=np.int64)
    return batch


def resample(
    *, frame: pd.DataFrame, rows: int, seed: int, id_column: str | None = None, first_id: int = 0
) -> pd.DataFrame:
    """No drift: a bootstrap resample (with replacement) of real rows."""
    _require(frame)
    rng = np.random.default_rng(seed)
    picked = rng.integers(0, len(frame), size=rows)
    return _with_ids(frame.iloc[picked], id_column=id_column, first_id=first_id)


def covariate_shift(
    *,
    frame: pd.DataFrame,
    feature: str,
    strength: float,
    rows: int,
    seed: int,
    id_column: str | None = None,
    first_id: int = 0,
) -> pd.DataFrame:
    """Covariate shift by reweighting real rows: weight exp(strength * z-score of the feature).

    A positive strength on an age column draws an older population; every row is still a real person,
    so the joint distribution of the other features given age is untouched.
    """
    _require(frame, feature)
    values = frame[feature].to_numpy(dtype=np.float64, na_value=np.nan)
    std = np.nanstd(values)
    if not std > 0:
        raise SimulationError(ERR_CONSTANT.format(column=feature))
    z = np.nan_to_num((values - np.nanmean(values)) / std)
    weights = np.exp(strength * z)
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(frame), size=rows, replace=True, p=weights / weights.sum())
    return _with_ids(frame.iloc[picked], id_column=id_column, first_id=first_id)


def subgroup_mask(
    *, frame: pd.DataFrame, codes: Mapping[str, Sequence[str]], ranges: Mapping[str, tuple[float, float]]
) -> np.ndarray:
    """Rows whose codes are listed and whose numeric values fall in [low, high)."""
    _require(frame, *codes, *ranges)
    mask = np.ones(len(frame), dtype=bool)
    for column, allowed in codes.items():
        mask &= frame[column].astype(str).isin(list(allowed)).to_numpy()
    for column, (low, high) in ranges.items():
        values = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
        mask &= (values >= low) & (values < high)
    return mask


def concept_shift(
    *,
    frame: pd.DataFrame,
    target: str,
    share: float,
    codes: Mapping[str, Sequence[str]],
    ranges: Mapping[str, tuple[float, float]],
    seed: int,
    labels: tuple[object, object] = (1, 0),
) -> pd.DataFrame:
    """Concept shift: flip the label (positive, negative as params base names them) of a share of
    one subgroup; features stay as they are.
    """
    _require(frame, target)
    members = np.flatnonzero(subgroup_mask(frame=frame, codes=codes, ranges=ranges))
    if members.size == 0:
        raise SimulationError(ERR_EMPTY_SUBGROUP)
    rng = np.random.default_rng(seed)
    flipped = rng.choice(members, size=round(share * members.size), replace=False)
    out = frame.reset_index(drop=True).copy()
    from pipeline.core.config_data import label_key
    from pipeline.core.schema import label_keys

    positive, negative = labels
    was_positive = (label_keys(out[target].iloc[flipped]) == label_key(positive)).to_numpy()
    values = out[target].to_numpy(copy=True)
    swapped = np.empty(len(flipped), dtype=object)
    swapped[was_positive], swapped[~was_positive] = negative, positive
    values[flipped] = swapped
    out[target] = values
    return out


def new_category(*, frame: pd.DataFrame, column: str, code: str, share: float, seed: int) -> pd.DataFrame:
    """Replace a share of one categorical column with a code the frame never contains."""
    _require(frame, column)
    if (frame[column].astype(str) == code).any():
        raise SimulationError(ERR_KNOWN_CODE.format(code=code, column=column))
    rng = np.random.default_rng(seed)
    replaced = rng.choice(len(frame), size=round(share * len(frame)), replace=False)
    out = frame.reset_index(drop=True).copy()
    values = out[column].astype(object).to_numpy(copy=True)
    values[replaced] = code
    out[column] = pd.Series(values, dtype=frame[column].dtype)
    return out


def simulate(
    *, reference: pd.DataFrame, kind: Kind, params: Params, seed: int, rows: int | None = None
) -> pd.DataFrame:
    """One batch of the given kind with the knobs of params.simulate; ids follow the reference's."""
    spec = params.simulate
    rows = rows or spec.rows
    id_column = params.base.id_column
    first_id = int(reference[id_column].max()) + 1 if id_column in reference.columns and len(reference) else 0
    if kind == "covariate":
        return covariate_shift(
            frame=reference,
            feature=spec.covariate.feature,
            strength=spec.covariate.strength,
            rows=rows,
            seed=seed,
            id_column=id_column,
            first_id=first_id,
        )
    batch = resample(frame=reference, rows=rows, seed=seed, id_column=id_column, first_id=first_id)
    if kind == "concept":
        return concept_shift(
            frame=batch,
            target=params.base.target,
            share=spec.concept.share,
            codes=spec.concept.codes,
            ranges=spec.concept.ranges,
            seed=seed,
            labels=(params.base.positive_label, params.base.negative_label),
        )
    if kind == "new_category":
        nc = spec.new_category
        return new_category(frame=batch, column=nc.column, code=nc.code, share=nc.share, seed=seed)
    return batch


def write_batch(*, batch: pd.DataFrame, out_dir: Path, name: str, params: Params) -> tuple[Path, Path | None]:
    """Write a batch in the layout of data/production.

    <name>_features.parquet always; <name>_labels.parquet (id + target) when the target is present.
    """
    from pipeline.core import io

    target, id_column = params.base.target, params.base.id_column
    features_path = out_dir / f"{name}_features.parquet"
    io.write_table(batch.drop(columns=[target], errors="ignore"), features_path)
    labels_path = None
    if target in batch.columns and id_column in batch.columns:
        labels_path = out_dir / f"{name}_labels.parquet"
        io.write_table(batch[[id_column, target]], labels_path)
    logger.info("wrote %d rows to %s", len(batch), features_path)
    return features_path, labels_path
