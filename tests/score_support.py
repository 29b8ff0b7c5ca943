"""Fixture data for the `pipeline score` tests: a quick model file, params variants and small
input tables cut from the demo's raw data, with the rows a test breaks on purpose.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from pipeline.core import io
from pipeline.core.config import Params
from pipeline.core.schema import conform
from tests.conftest import REPO_ROOT, demo_params, demo_params_text


def fit_model(params: Params, path: Path, *, rows: int = 1000, seed: int = 0) -> Path:
    """A small logistic pipeline of the real kind (fits in well under a second), saved as skops."""
    from pipeline.stages.train import build_pipeline

    frame = conform(pd.read_parquet(REPO_ROOT / params.data.raw), params)
    sample = frame.sample(rows, random_state=seed)
    model = build_pipeline(data=params.data, spec=params.train.estimators["logistic_regression"], seed=seed)
    model.fit(sample[list(params.data.features)], sample[params.base.target])
    io.save_model(model, path)
    return path


def demo_rows(rows: int, *, offset: int = 0) -> pd.DataFrame:
    """Raw demo rows as a client would send them: every declared column and the id, no target."""
    params = demo_params()
    frame = pd.read_parquet(REPO_ROOT / params.data.raw).iloc[offset : offset + rows]
    return frame.drop(columns=[params.base.target]).reset_index(drop=True)


def params_text(**score: Any) -> str:
    """The demo params.yaml with score.<key> values replaced."""
    text = demo_params_text()
    for key, value in score.items():
        text, n = re.subn(rf"^(  {key}:) .*$", rf"\g<1> {value}", text, count=1, flags=re.M)
        assert n == 1, f"score.{key} not found in the demo params"
    return text


def params_with(edit: Any) -> Params:
    """The demo params after `edit(raw_dict)`, validated like load_params does."""
    raw = yaml.safe_load(demo_params_text())
    edit(raw)
    return Params.model_validate(raw)


def direct_scores(model: Any, frame: pd.DataFrame, params: Params) -> np.ndarray:
    """What predict_proba says for the rows, without the batch machinery."""
    inputs = conform(frame, params, with_target=False)[list(params.data.features)]
    return np.asarray(model.predict_proba(inputs)[:, 1])


class RecordingModel:
    """Answers predict_proba with a fixed function of AGEP and keeps the frames it was given."""

    def __init__(self) -> None:
        self.seen: list[pd.DataFrame] = []

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        self.seen.append(frame.copy())
        age = frame["AGEP"].fillna(60.0).to_numpy(dtype="float64")
        positive = np.clip(age / 120.0, 0.0, 1.0)
        return np.column_stack([1 - positive, positive])
