"""The team's own project: the root params.yaml, its table and the outputs of its last `make run`.

Every column, row count and floor comes from params and the files; nothing here knows the demo.
Outputs are judged only when they belong to the current params (a model trained on other inputs
is from an earlier params.yaml): otherwise the tests skip and say to run `make run`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from pipeline.core.config import ConfigError, Params, load_params

ROOT = Path(__file__).resolve().parents[2]
PARAMS_FILE = ROOT / "params.yaml"


def project_params() -> Params:
    try:
        return load_params(PARAMS_FILE)
    except ConfigError as exc:
        pytest.fail(str(exc), pytrace=False)


def table_path(params: Params) -> Path:
    path = ROOT / params.data.raw
    if not path.is_file():
        how = "the ingest stage writes it (`make run`)" if params.data.source else "`dvc pull` it or copy it there"
        pytest.skip(f"params data.raw names {params.data.raw}, which is not here: {how}")
    return path


def read_project_table(params: Params) -> pd.DataFrame:
    from pipeline.core import io

    return io.read_table(table_path(params))


@dataclass(frozen=True)
class Outputs:
    """The last run's model and test split, read as the evaluate stage reads them."""

    model: object
    test: pd.DataFrame


def current_outputs(params: Params) -> Outputs:
    from pipeline.core import io

    model_path, test_path = ROOT / params.paths.model, ROOT / params.paths.prepared / "test.parquet"
    for path in (model_path, test_path):
        if not path.is_file():
            pytest.skip(f"no {path.relative_to(ROOT)}: run `make run` first (a fresh clone has no trained model)")
    model = io.load_model(model_path)
    inputs = set(getattr(model, "feature_names_in_", ()))
    wanted = set(params.data.features)
    if inputs != wanted:
        pytest.skip(
            f"{params.paths.model} was trained on other inputs than params data.features "
            f"(only in the model: {sorted(inputs - wanted)}; only in params: {sorted(wanted - inputs)}): "
            "it is an earlier params.yaml's output, run `make run`"
        )
    test = io.read_table(test_path)
    lacking = sorted({*wanted, params.base.target} - set(test.columns))
    if lacking:
        pytest.skip(f"{test_path.relative_to(ROOT)} lacks {lacking}: an earlier params.yaml's output, run `make run`")
    return Outputs(model=model, test=test)
