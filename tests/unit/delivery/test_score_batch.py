"""The per-batch core of `pipeline score`: valid rows scored exactly as predict_proba scores them,
each of the service's input rules turning a row into a reject with its reason, audit-only columns
carried but never fed to the model, and raw labels mapped back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipeline.core import io
from pipeline.core.config import Params
from pipeline.delivery.score.batch import (
    FLAGS,
    LABEL,
    MODEL_NAME,
    MODEL_SHA256,
    MODEL_VERSION,
    PREDICTED,
    REASON,
    ROW,
    SCORE,
    BatchSpec,
    ModelInfo,
    score_batch,
)
from tests.score_support import RecordingModel, demo_rows, direct_scores, fit_model, params_with

pytestmark = pytest.mark.unit

INFO = ModelInfo(name="employment-ma", version="7", sha256="ab" * 32)


@pytest.fixture(scope="module")
def model(params: Params, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return io.load_model(fit_model(params, tmp_path_factory.mktemp("model") / "model.skops"))


def _spec(params: Params) -> BatchSpec:
    return BatchSpec(params=params, info=INFO)


def _set(frame: pd.DataFrame, row: int, column: str, value: object) -> None:
    values = frame[column].astype(object)
    values.iloc[row] = value
    frame[column] = values


def test_valid_rows_score_exactly_like_predict_proba(params: Params, model: Any) -> None:
    frame = demo_rows(400)
    predictions, rejects = score_batch(frame, model=model, spec=_spec(params))
    assert rejects.empty
    assert predictions[params.base.id_column].tolist() == frame[params.base.id_column].tolist()
    np.testing.assert_array_equal(predictions[SCORE].to_numpy(), direct_scores(model, frame, params))
    expected = (predictions[SCORE] >= params.evaluate.threshold).astype(int)
    assert predictions[LABEL].tolist() == expected.tolist()
    # The demo's raw labels are 1 and 0, so the raw prediction equals the binary one here.
    assert predictions[PREDICTED].tolist() == expected.tolist()
    assert 0 < expected.mean() < 1, "a threshold that labels every row alike tests nothing"
    assert set(predictions[MODEL_NAME]) == {"employment-ma"}
    assert set(predictions[MODEL_VERSION]) == {"7"}
    assert set(predictions[MODEL_SHA256]) == {"ab" * 32}
    assert all(len(f) == 0 for f in predictions[FLAGS])


def test_each_rule_rejects_the_row_with_its_reason(params: Params, model: Any) -> None:
    frame = demo_rows(12)
    _set(frame, 1, "AGEP", 150.0)
    _set(frame, 2, "AGEP", -1.0)
    _set(frame, 3, "AGEP", float("inf"))
    _set(frame, 4, "RAC1P", "42")
    _set(frame, 5, "SEX", None)
    _set(frame, 6, "id", None)
    _set(frame, 7, "AGEP", 150.0)
    _set(frame, 7, "MAR", "9")
    predictions, rejects = score_batch(frame, model=model, spec=_spec(params), first_row=1000)
    reasons = dict(zip(rejects[ROW], rejects[REASON], strict=True))
    assert sorted(reasons) == [1001, 1002, 1003, 1004, 1005, 1006, 1007]
    assert reasons[1001] == "AGEP: 150.0 outside the params range [0, 120]"
    assert reasons[1002] == "AGEP: -1.0 outside the params range [0, 120]"
    assert reasons[1003] == "AGEP: inf is not a finite number"
    assert reasons[1004] == "RAC1P: unseen code '42' (params unseen: refuse)"
    assert reasons[1005] == "SEX: missing, and params do not declare it nullable"
    assert reasons[1006] == "id: missing id"
    assert (
        reasons[1007] == "AGEP: 150.0 outside the params range [0, 120]; MAR: unseen code '9' (params unseen: refuse)"
    )
    assert rejects["id"].iloc[0] == frame["id"].iloc[1]
    # Never silently dropped: every row is either scored or rejected.
    kept = [0, 8, 9, 10, 11]
    assert predictions["id"].tolist() == frame["id"].iloc[kept].tolist()
    np.testing.assert_allclose(predictions[SCORE], direct_scores(model, frame.iloc[kept], params), rtol=0, atol=1e-12)


def _audit_params() -> Params:
    def edit(raw: dict[str, Any]) -> None:
        data = raw["data"]
        data["audit_only"] = ["SEX"]
        data["numeric"]["AGEP"]["nullable"] = True
        data["categorical"]["MAR"] = {"values": data["categorical"]["MAR"], "unseen": "other"}

    return params_with(edit)


def test_audit_only_is_carried_never_scored_and_nulls_follow_params() -> None:
    params = _audit_params()
    frame = demo_rows(8)
    _set(frame, 0, "AGEP", None)  # nullable: scored, imputed by the model
    _set(frame, 1, "SEX", None)  # audit-only: may be missing
    _set(frame, 2, "MAR", "77")  # unseen under `other`: scored as the unknown bucket, flagged
    _set(frame, 3, "MAR", "x\x07")  # a control character is never a code
    _set(frame, 4, "MAR", "9" * 200)  # longer than the service accepts
    _set(frame, 5, "MAR", "")
    model = RecordingModel()
    predictions, rejects = score_batch(frame, model=model, spec=_spec(params))
    assert sorted(rejects[ROW]) == [3, 4, 5]
    assert "MAR: control character in code" in rejects[REASON].tolist()
    assert "MAR: code longer than 128 characters" in rejects[REASON].tolist()
    assert "MAR: empty code" in rejects[REASON].tolist()
    (seen,) = model.seen
    assert list(seen.columns) == list(params.data.features)
    assert "SEX" not in seen.columns
    assert np.isnan(seen["AGEP"].iloc[0])
    assert seen["MAR"].iloc[2] == "77"
    assert predictions["SEX"].iloc[:2].isna().tolist() == [False, True]
    assert predictions["SEX"].iloc[0] == str(frame["SEX"].iloc[0])
    assert predictions[FLAGS].iloc[2] == ["unseen_category:MAR"]
    assert [len(f) for f in predictions[FLAGS]] == [0, 0, 1, 0, 0]


def test_absent_optional_column_is_missing_in_every_row() -> None:
    params = _audit_params()
    frame = demo_rows(5).drop(columns=["AGEP", "SEX"])
    model = RecordingModel()
    predictions, rejects = score_batch(frame, model=model, spec=_spec(params))
    assert rejects.empty
    assert model.seen[0]["AGEP"].isna().all()
    assert predictions["SEX"].isna().all()
    assert predictions[SCORE].tolist() == [0.5] * 5


def test_raw_labels_are_mapped_back() -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["base"]["positive_label"] = "yes"
        raw["base"]["negative_label"] = "no"

    params = params_with(edit)
    frame = demo_rows(3)
    frame["AGEP"] = [24.0, 84.0, 60.0]  # RecordingModel scores age / 120: 0.2, 0.7, 0.5
    predictions, _ = score_batch(frame, model=RecordingModel(), spec=_spec(params))
    assert predictions[LABEL].tolist() == [0, 1, 1]  # the threshold (0.5) itself is positive
    assert predictions[PREDICTED].tolist() == ["no", "yes", "yes"]


def test_codes_arriving_as_numbers_are_the_same_codes(params: Params, model: Any) -> None:
    frame = demo_rows(50)
    as_text, _ = score_batch(frame, model=model, spec=_spec(params))
    frame["SEX"] = frame["SEX"].astype("int64")
    frame["MAR"] = frame["MAR"].astype("float64")  # whole floats, as a column with nulls arrives
    as_numbers, rejects = score_batch(frame, model=model, spec=_spec(params))
    assert rejects.empty
    np.testing.assert_array_equal(as_numbers[SCORE], as_text[SCORE])


def test_a_batch_of_rejects_only_calls_no_model(params: Params) -> None:
    frame = demo_rows(3)
    frame["AGEP"] = 500.0
    model = RecordingModel()
    predictions, rejects = score_batch(frame, model=model, spec=_spec(params))
    assert model.seen == []
    assert len(predictions) == 0
    assert len(rejects) == 3
    assert {SCORE, LABEL, PREDICTED, MODEL_SHA256} <= set(predictions.columns)


def test_the_batch_function_reads_nothing_but_its_arguments(params: Params, model: Any, tmp_path: Path) -> None:
    # What a partition of a distributed frame needs: same rows, same answer, wherever it runs.
    frame = demo_rows(60)
    first, _ = score_batch(frame, model=model, spec=_spec(params))
    shuffled = frame.sample(frac=1.0, random_state=1)
    second, _ = score_batch(shuffled, model=model, spec=_spec(params))
    merged = first.merge(second, on="id", suffixes=("", "_again"))
    assert len(merged) == 60
    np.testing.assert_array_equal(merged[SCORE], merged[f"{SCORE}_again"])
    assert frame.equals(demo_rows(60)), "the input frame must not be modified"
