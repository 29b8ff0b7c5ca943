"""Each kind of bad raw data is refused by the validate stage with a specific message, and
`dvc repro` then leaves every downstream output and the MLflow store untouched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import BIN, demo_params, run

pytestmark = pytest.mark.e2e

RAW = demo_params().data.raw
DOWNSTREAM = (
    "data/prepared/train.parquet",
    "models/model.skops",
    "reports/metrics.json",
    "reports/fairness.json",
    "reports/train.json",
    "model_card.md",
    "dvc.lock",
    "mlflow.db",
)


def _frame_writer(mutate: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path, pd.DataFrame], None]:
    def write(path: Path, frame: pd.DataFrame) -> None:
        mutate(frame.copy()).to_parquet(path, index=False)

    return write


def _bytes_writer(content: bytes) -> Callable[[Path, pd.DataFrame], None]:
    def write(path: Path, frame: pd.DataFrame) -> None:
        path.write_bytes(content)

    return write


def _set(column: str, rows: slice, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        values = frame[column].astype(object)
        values.iloc[rows] = value
        frame[column] = values.astype(frame[column].dtype) if value is not None else values
        return frame

    return mutate


CASES: dict[str, tuple[Callable[[Path, pd.DataFrame], None], str]] = {
    "missing_column": (
        _frame_writer(lambda f: f.drop(columns=["SCHL"])),
        "data.categorical.SCHL: column 'SCHL' is not in the table",
    ),
    "extra_column": (_frame_writer(lambda f: f.assign(salary=1.0)), "unexpected extra columns ['salary']"),
    "wrong_dtype": (_frame_writer(lambda f: f.assign(AGEP=f["AGEP"].astype(str))), "column 'AGEP': wrong dtype"),
    "nulls_in_required_column": (_frame_writer(_set("SEX", slice(0, 7), None)), "column 'SEX': null values in 7 rows"),
    "out_of_range": (
        _frame_writer(_set("AGEP", slice(0, 3), 150.0)),
        "column 'AGEP': values outside [0.0, 120.0] in 3 rows",
    ),
    "unseen_category": (
        _frame_writer(_set("RAC1P", slice(0, 2), "42")),
        "column 'RAC1P': values not in the allowed set",
    ),
    "empty_file": (_bytes_writer(b""), "the file is empty"),
    "not_parquet": (_bytes_writer(b"id,AGEP\n1,30\n"), "not a parquet file"),
    "duplicated_ids": (_frame_writer(_set("id", slice(0, 5), 1)), "column 'id': duplicated values"),
    "target_not_binary": (
        _frame_writer(_set("employed", slice(0, 4), 2)),
        "column 'employed': values not in the allowed set",
    ),
}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_raw_data_is_refused_and_changes_nothing(pipeline_repo: Path, case: str) -> None:
    write, expected = CASES[case]
    raw = pipeline_repo / RAW
    original = raw.read_bytes()
    before = {p: _digest(pipeline_repo / p) for p in DOWNSTREAM}
    try:
        write(raw, pd.read_parquet(pd.io.common.BytesIO(original)))
        result = run([str(BIN / "dvc"), "repro"], pipeline_repo, check=False)
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert expected in output, output[-3000:]
        assert "Running stage 'prepare'" not in output
        assert {p: _digest(pipeline_repo / p) for p in DOWNSTREAM} == before
    finally:
        raw.write_bytes(original)
        # The failed stage removed its own outputs; put the committed ones back for later tests.
        run([str(BIN / "dvc"), "checkout", "--force"], pipeline_repo)
    assert "up to date" in run([str(BIN / "dvc"), "status"], pipeline_repo).stdout
