"""A table unlike the demo's (tests/schemas.py): integer columns with missing values, text and
integer-coded categoricals, a "yes"/"no" target and an audit-only sensitive attribute. The
validation suite, the canonical frame and the stages must follow its params, not the demo's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.core import io
from pipeline.core.config import CategoricalColumn, NumericRange, Params, load_params
from tests import schemas

pytestmark = pytest.mark.data

ROWS, SEED = 3000, 11


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("second-schema")
    schemas.write_second_schema_project(root, rows=ROWS, seed=SEED)
    return root


@pytest.fixture(scope="module")
def params(project: Path) -> Params:
    return load_params(project / "params.yaml")


def _specs(params: Params) -> dict[str, NumericRange | CategoricalColumn]:
    return {**params.data.numeric, **params.data.categorical}


@pytest.fixture(scope="module")
def table(project: Path, params: Params) -> pd.DataFrame:
    # Read as the validate stage reads it: nullable integers arrive through parquet.
    return io.read_table(project / params.data.raw)


def test_generator_is_seeded_and_shaped_as_its_params_say(params: Params) -> None:
    frame = schemas.second_schema_table(ROWS, SEED)
    pd.testing.assert_frame_equal(frame, schemas.second_schema_table(ROWS, SEED))
    assert not frame.equals(schemas.second_schema_table(ROWS, SEED + 1))
    assert frame[params.base.id_column].is_unique
    for col, spec in _specs(params).items():
        share = frame[col].isna().mean()
        assert (0.02 < share < 0.08) if spec.nullable else share == 0, (col, share)
    assert frame[params.base.target].isin([params.base.positive_label, params.base.negative_label]).all()
    assert 0.3 < (frame[params.base.target] == params.base.positive_label).mean() < 0.7
    assert params.data.audit_only == (schemas.SENSITIVE,)
    assert schemas.SENSITIVE not in params.data.features
    assert schemas.SENSITIVE in params.data.columns


def test_suite_from_its_params_passes_on_its_table(params: Params, table: pd.DataFrame, tmp_path: Path) -> None:
    from pipeline.stages.validate import build_suite, run_suite

    outcome = run_suite(frame=table, params=params, docs_dir=tmp_path / "docs")
    assert outcome.success, [f.message for f in outcome.failures]
    assert outcome.evaluated == len(build_suite(params=params).expectations)


def _put(column: str, value: object, rows: int = 3) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        values = frame[column].astype(object)
        values.iloc[:rows] = value
        return frame.assign(**{column: values if value is None else values.astype(frame[column].dtype)})

    return mutate


BROKEN: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], str]] = {
    "audit-only column missing": (lambda f: f.drop(columns=[schemas.SENSITIVE]), schemas.SENSITIVE),
    "metadata column missing": (lambda f: f.drop(columns=[schemas.PERIOD]), schemas.PERIOD),
    "int out of range": (_put("age", 150), "age"),
    "nullable int out of range": (_put("tenure_months", 999), "tenure_months"),
    "null in a required int": (_put("age", None), "age"),
    "null in a required text code": (_put("plan", None), "plan"),
    "unknown text code": (_put("plan", "gold"), "plan"),
    "unknown int code": (_put("contract", 6), "contract"),
    "target outside its two labels": (_put(schemas.TARGET, "maybe"), schemas.TARGET),
    "duplicated id": (_put(schemas.ID, 100_000), schemas.ID),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_suite_refuses_a_broken_copy(case: str, params: Params, table: pd.DataFrame) -> None:
    from pipeline.stages.validate import run_suite

    mutate, column = BROKEN[case]
    outcome = run_suite(frame=mutate(table.copy()), params=params)
    assert not outcome.success
    assert any(column in f.message for f in outcome.failures), [f.message for f in outcome.failures]


def test_nulls_in_nullable_columns_are_not_failures(params: Params, table: pd.DataFrame) -> None:
    from pipeline.stages.validate import run_suite

    nullable = [c for c, s in _specs(params).items() if s.nullable]
    assert len(nullable) >= 3
    assert all(table[c].isna().any() for c in nullable)
    outcome = run_suite(frame=table, params=params)
    assert not [f for f in outcome.failures if f.column in nullable]


def test_conform_gives_the_canonical_frame(params: Params, table: pd.DataFrame) -> None:
    from pipeline.core.schema import conform

    out = conform(table, params)
    for col in params.data.numeric:
        assert out[col].dtype == "float64", col
        assert out[col].isna().sum() == table[col].isna().sum(), col
        np.testing.assert_array_equal(out[col].dropna().to_numpy(), table[col].dropna().astype("float64").to_numpy())
    for col, spec in params.data.categorical.items():
        present = out[col].dropna()
        assert out[col].isna().sum() == table[col].isna().sum(), col
        assert set(present.map(type)) == {str}, col
        assert set(present) <= set(spec.values), col
    assert set(out["contract"]) == {str(c) for c in schemas.CONTRACTS}
    target = out[params.base.target]
    assert target.dtype == "int64"
    assert (target == 1).tolist() == (table[params.base.target] == schemas.POSITIVE).tolist()


def test_prepare_splits_it_and_keeps_the_audit_column(params: Params, table: pd.DataFrame) -> None:
    from pipeline.stages.prepare import prepare

    parts, report = prepare(frame=table, params=params)
    assert report["passed"], report["problems"]
    assert sum(len(p) for p in parts.values()) == ROWS
    # The audit-only column travels with the rows (fairness groups by it) but is never judged a leak.
    assert all(schemas.SENSITIVE in p.columns for p in parts.values())
    assert schemas.SENSITIVE not in report["single_feature_auc"]
    assert set(report["single_feature_auc"]) == set(params.data.features)


def test_a_candidate_learns_it_without_the_audit_column(params: Params, table: pd.DataFrame) -> None:
    from sklearn.metrics import recall_score, roc_auc_score

    from pipeline.stages.prepare import prepare
    from pipeline.stages.train import fit_candidates

    parts, _ = prepare(frame=table, params=params)
    best = fit_candidates(train=parts["train"], valid=parts["valid"], params=params)[0]
    assert set(best.model.feature_names_in_) == set(params.data.features)
    test = parts["test"]
    proba = best.model.predict_proba(test[list(params.data.features)])[:, 1]
    y = test[params.base.target]
    assert roc_auc_score(y, proba) > 0.8
    recalls = recall_score(y, (proba >= params.evaluate.threshold).astype(int), average=None)
    assert min(recalls) >= params.evaluate.min_recall.per_class, recalls
