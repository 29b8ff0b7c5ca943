"""The compiled (ONNX) scoring path: both estimator kinds convert and score like scikit-learn,
also on a null in a nullable number, an unlisted code and a listed code training never saw; a
conversion that fails or disagrees is refused with its reason (never an error); the service
scores on onnxruntime only when the version carries a checked file and params allow it, and
says which path serves.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipeline.core import io
from pipeline.core.config import Params
from pipeline.core.schema import conform
from pipeline.delivery import compiled as served_path
from pipeline.delivery import serve
from pipeline.stages.compiled import export
from pipeline.stages.compiled.export import ONNX, SKLEARN, UNLISTED_CODE, compile_model, edge_rows
from pipeline.stages.compiled.runtime import META_MAX_DIFF, CompiledModel
from pipeline.stages.train import build_pipeline
from tests.conftest import demo_params_text
from tests.schemas import NEW_REGION, second_schema_params, second_schema_table

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.unit

KINDS = ("hist_gradient_boosting", "logistic_regression")
TOLERANCE = 1e-5
# A listed region the training rows never hold: scikit-learn scores it as missing (trees) or as
# an all-zero one-hot (linear), like an unlisted one.
UNTRAINED_REGION = "west"


@pytest.fixture(scope="module")
def schema_params() -> Params:
    """Nullable whole-number columns, a nullable categorical that scores unseen codes as other."""
    return Params.model_validate(second_schema_params())


@pytest.fixture(scope="module")
def table(schema_params: Params) -> pd.DataFrame:
    return conform(second_schema_table(3000, seed=11), schema_params)


@pytest.fixture(scope="module")
def split(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    train, test = table.iloc[:2200], table.iloc[2200:]
    return train[train["region"] != UNTRAINED_REGION], test


@pytest.fixture(scope="module")
def fitted(schema_params: Params, split: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, Any]:
    train, _ = split
    features = list(schema_params.data.features)
    out = {}
    for name, spec in schema_params.train.estimators.items():
        model = build_pipeline(data=schema_params.data, spec=spec, seed=schema_params.base.seed)
        out[spec.kind] = model.fit(train[features], train[schema_params.base.target])
        assert name in KINDS
    return out


@pytest.fixture(scope="module")
def compiled(
    schema_params: Params, fitted: dict[str, Any], split: tuple[pd.DataFrame, pd.DataFrame]
) -> dict[str, export.Compiled]:
    _, test = split
    return {
        kind: compile_model(
            model, kind=kind, data=schema_params.data, test=test, tolerance=TOLERANCE, sklearn_sha256="0" * 64
        )
        for kind, model in fitted.items()
    }


def compiled_model(params: Params, onnx: bytes | None) -> CompiledModel:
    assert onnx is not None
    return CompiledModel(onnx, numeric=params.data.numeric_features, categorical=params.data.categorical_features)


def hard_rows(params: Params, test: pd.DataFrame) -> list[dict[str, Any]]:
    """Request rows as the service receives them: nulls, an unlisted and an untrained code."""
    base = serve_row(params, test.iloc[0])
    cases: list[dict[str, Any]] = [
        {"tenure_months": None},
        {"support_calls": None},
        {"tenure_months": None, "support_calls": None},
        {"region": None},
        {"region": NEW_REGION},
        {"region": UNTRAINED_REGION},
        {"region": NEW_REGION, "tenure_months": None},
        {"tenure_months": 0.0, "region": "south"},
        {"tenure_months": 120.0, "region": "north"},
    ]
    return [base, *({**base, **case} for case in cases)]


def serve_row(params: Params, row: pd.Series) -> dict[str, Any]:
    return {
        c: None if pd.isna(row[c]) else (float(row[c]) if c in params.data.numeric else str(row[c]))
        for c in params.data.columns
    }


def test_the_schema_really_has_the_hard_inputs(schema_params: Params, split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, _ = split
    data = schema_params.data
    assert data.numeric["tenure_months"].nullable
    assert train["tenure_months"].isna().any()
    assert data.categorical["region"].unseen == "other"
    assert train["region"].isna().any()
    assert UNTRAINED_REGION in data.categorical["region"].values
    assert UNTRAINED_REGION not in set(train["region"])
    assert NEW_REGION not in data.categorical["region"].values


@pytest.mark.parametrize("kind", KINDS)
def test_each_estimator_kind_compiles_within_tolerance(
    kind: str, compiled: dict[str, export.Compiled], split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    result = compiled[kind]
    assert (result.serving_path, result.reason) == (ONNX, None)
    assert result.onnx is not None
    assert result.record["onnx_sha256"] == hashlib.sha256(result.onnx).hexdigest()
    parity = result.record["parity"]
    assert parity["passed"]
    assert float(parity["max_abs_diff"]) <= TOLERANCE
    assert parity["rows"] > len(split[1])  # the test split plus the edge rows


@pytest.mark.parametrize("kind", KINDS)
def test_parity_on_nulls_and_unseen_codes_through_the_service_frame(
    kind: str,
    schema_params: Params,
    fitted: dict[str, Any],
    compiled: dict[str, export.Compiled],
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    rows = hard_rows(schema_params, split[1])
    frame = serve.to_frame(rows=rows, data=schema_params.data)
    assert frame["tenure_months"].isna().any()
    assert frame["region"].isna().any()
    want = np.asarray(fitted[kind].predict_proba(frame))[:, 1]
    got = compiled_model(schema_params, compiled[kind].onnx).predict_proba(frame)[:, 1]
    assert np.max(np.abs(got - want)) <= TOLERANCE
    # The rows move the score: a graph that ignored those columns would be caught above.
    assert np.ptp(want) > 1e-3
    one_by_one = [compiled_model(schema_params, compiled[kind].onnx).predict_proba(frame.iloc[[i]]) for i in range(3)]
    assert np.allclose(np.concatenate(one_by_one)[:, 1], got[:3], atol=TOLERANCE)


def test_edge_rows_cover_every_code_and_the_allowed_nulls(
    schema_params: Params, split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    data = schema_params.data
    rows = edge_rows(split[1], data=data)
    region = set(rows["region"].dropna())
    assert set(data.categorical["region"].values) | {UNLISTED_CODE} <= region
    assert rows["region"].isna().any()
    assert rows["tenure_months"].isna().any()
    # A column params call complete never gets a null: scikit-learn itself would refuse it.
    assert not rows["monthly_spend"].isna().any()
    assert {data.numeric["age"].min, data.numeric["age"].max} <= set(rows["age"])


@pytest.mark.parametrize("kind", KINDS)
def test_compilation_is_byte_deterministic(
    kind: str,
    schema_params: Params,
    fitted: dict[str, Any],
    compiled: dict[str, export.Compiled],
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    again = compile_model(
        fitted[kind], kind=kind, data=schema_params.data, test=split[1], tolerance=TOLERANCE, sklearn_sha256="0" * 64
    )
    assert again.onnx == compiled[kind].onnx
    assert again.record == compiled[kind].record


def test_a_graph_that_disagrees_is_refused_not_raised(
    monkeypatch: pytest.MonkeyPatch,
    schema_params: Params,
    fitted: dict[str, Any],
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    # The linear model's graph offered for the trees: it converts and loads, but scores otherwise.
    real = export.convert
    monkeypatch.setattr(
        export,
        "convert",
        lambda _pipeline, *, kind, name: real(fitted["logistic_regression"], kind="logistic_regression", name=name),
    )
    result = compile_model(
        fitted["hist_gradient_boosting"],
        kind="hist_gradient_boosting",
        data=schema_params.data,
        test=split[1],
        tolerance=TOLERANCE,
        sklearn_sha256="0" * 64,
    )
    assert (result.serving_path, result.onnx) == (SKLEARN, None)
    assert result.reason is not None
    assert result.reason.startswith("parity failed: max |p_onnx - p_sklearn| = ")
    assert float(result.record["parity"]["max_abs_diff"]) > TOLERANCE
    assert result.record["parity"]["passed"] is False


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        # A linear pipeline handed to the trees' converter: no exact form, refused.
        ("hist_gradient_boosting", "conversion failed: Unsupported: expected Pipeline([features, "),
        ("random_forest", "conversion failed: ValueError: no ONNX converter for estimator kind 'random_forest'"),
    ],
)
def test_a_pipeline_without_a_converter_is_refused(
    kind: str, reason: str, schema_params: Params, fitted: dict[str, Any], split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    result = compile_model(
        fitted["logistic_regression"],
        kind=kind,
        data=schema_params.data,
        test=split[1],
        tolerance=TOLERANCE,
        sklearn_sha256="0" * 64,
    )
    assert result.serving_path == SKLEARN
    assert result.onnx is None
    assert result.reason is not None
    assert result.reason.startswith(reason)
    assert result.record["reason"] == result.reason
    assert result.record["parity"] is None


def test_a_code_that_collides_with_the_missing_marker_is_refused(
    schema_params: Params, fitted: dict[str, Any], split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    raw = schema_params.model_dump(mode="json")
    raw["data"]["categorical"]["plan"]["values"] = ["basic", "plus", UNLISTED_CODE]
    params = Params.model_validate(raw)
    result = compile_model(
        fitted["logistic_regression"],
        kind="logistic_regression",
        data=params.data,
        test=split[1],
        tolerance=TOLERANCE,
        sklearn_sha256="0" * 64,
    )
    assert result.serving_path == SKLEARN
    assert result.reason is not None
    assert "missing or unlisted" in result.reason


def test_a_linear_model_whose_numbers_are_all_nullable_compiles(
    schema_params: Params, split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    # The complete-numbers block then selects no column and stays unfitted: it adds nothing.
    raw = schema_params.model_dump(mode="json")
    for column in raw["data"]["numeric"].values():
        column["nullable"] = True
    params = Params.model_validate(raw)
    train, test = split
    features = list(params.data.features)
    spec = params.train.estimators["logistic_regression"]
    model = build_pipeline(data=params.data, spec=spec, seed=params.base.seed)
    model.fit(train[features], train[params.base.target])
    result = compile_model(
        model, kind=spec.kind, data=params.data, test=test, tolerance=TOLERANCE, sklearn_sha256="0" * 64
    )
    assert (result.serving_path, result.reason) == (ONNX, None)


def test_write_keeps_an_empty_file_when_refused(tmp_path: Path) -> None:
    refused = export.Compiled(
        SKLEARN, "parity failed: x", None, {"serving_path": SKLEARN, "reason": "parity failed: x"}
    )
    export.write(refused, onnx_path=tmp_path / "m" / "model.onnx", report_path=tmp_path / "r" / "compiled.json")
    assert (tmp_path / "m" / "model.onnx").read_bytes() == b""
    report = io.read_json(tmp_path / "r" / "compiled.json")
    assert report == {"serving_path": SKLEARN, "reason": "parity failed: x", "onnx_path": None}


def test_write_keeps_the_admitted_file(tmp_path: Path, compiled: dict[str, export.Compiled]) -> None:
    result = compiled["hist_gradient_boosting"]
    export.write(result, onnx_path=tmp_path / "model.onnx", report_path=tmp_path / "compiled.json")
    data = (tmp_path / "model.onnx").read_bytes()
    report = io.read_json(tmp_path / "compiled.json")
    assert data == result.onnx
    assert report["onnx_sha256"] == hashlib.sha256(data).hexdigest()
    assert report["onnx_path"] == (tmp_path / "model.onnx").as_posix()
    assert report["serving_path"] == ONNX


# --- the service side ----------------------------------------------------------------------------


def local(params: Params, model: Any, onnx: bytes | None, version: str = "1") -> serve.LocalModel:
    return serve.LocalModel(params.tracking.registered_model, version, None, model, list(params.data.features), onnx)


def probe(params: Params, split: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return serve.to_frame(rows=hard_rows(params, split[1])[:1], data=params.data)


def test_served_picks_onnx_when_allowed_and_sklearn_otherwise(
    schema_params: Params,
    fitted: dict[str, Any],
    compiled: dict[str, export.Compiled],
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    model, onnx = fitted["hist_gradient_boosting"], compiled["hist_gradient_boosting"].onnx
    kwargs: dict[str, Any] = {"data": schema_params.data, "probe": probe(schema_params, split)}
    on = served_path.served(local(schema_params, model, onnx), mode="auto", **kwargs)
    assert (on.serving_path, on.path_reason) == (ONNX, None)
    assert isinstance(on.model, CompiledModel)
    off = served_path.served(local(schema_params, model, onnx), mode="off", **kwargs)
    assert (off.serving_path, off.path_reason, off.model) == (SKLEARN, served_path.REASON_OFF, model)
    absent = served_path.served(local(schema_params, model, None), mode="auto", **kwargs)
    assert (absent.serving_path, absent.path_reason) == (SKLEARN, served_path.REASON_ABSENT)


def test_served_refuses_a_file_of_another_model_or_without_parity_record(
    schema_params: Params,
    fitted: dict[str, Any],
    compiled: dict[str, export.Compiled],
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    import onnx

    kwargs: dict[str, Any] = {"data": schema_params.data, "probe": probe(schema_params, split)}
    other = compiled["logistic_regression"].onnx
    mixed = served_path.served(local(schema_params, fitted["hist_gradient_boosting"], other), mode="auto", **kwargs)
    assert mixed.serving_path == SKLEARN
    assert "scores the probe row" in str(mixed.path_reason)
    proto = onnx.load_model_from_string(compiled["hist_gradient_boosting"].onnx)
    kept = [p for p in proto.metadata_props if p.key != META_MAX_DIFF]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    unchecked = served_path.served(
        local(schema_params, fitted["hist_gradient_boosting"], proto.SerializeToString()), mode="auto", **kwargs
    )
    assert unchecked.serving_path == SKLEARN
    assert "no parity record" in str(unchecked.path_reason)
    garbage = served_path.served(
        local(schema_params, fitted["hist_gradient_boosting"], b"not onnx"), mode="auto", **kwargs
    )
    assert garbage.serving_path == SKLEARN
    assert "onnxruntime cannot load" in str(garbage.path_reason)


def test_a_model_file_takes_only_the_onnx_file_compiled_from_it(
    tmp_path: Path, schema_params: Params, fitted: dict[str, Any], split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    path = tmp_path / "model.skops"
    io.save_model(fitted["logistic_regression"], path)
    result = compile_model(
        fitted["logistic_regression"],
        kind="logistic_regression",
        data=schema_params.data,
        test=split[1],
        tolerance=TOLERANCE,
        sklearn_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
    )
    export.write(result, onnx_path=tmp_path / "model.onnx", report_path=tmp_path / "compiled.json")
    assert served_path.onnx_beside(path) == result.onnx
    source = serve.FileSource(path=path, name="m", features=schema_params.data.features)
    assert source.load("local").compiled == result.onnx  # type: ignore[attr-defined]
    # The model file replaced by another model: its old ONNX file no longer belongs to it.
    io.save_model(fitted["hist_gradient_boosting"], path)
    assert served_path.onnx_beside(path) is None
    (tmp_path / "model.onnx").write_bytes(b"")
    assert served_path.onnx_beside(path) is None


class OneVersion:
    def __init__(self, loaded: serve.LocalModel) -> None:
        self.loaded = loaded

    def current_state(self) -> serve.ServingState:
        return serve.ServingState(champion=self.loaded.version)

    def load(self, version: str) -> serve.LocalModel:
        return self.loaded


@pytest.mark.parametrize(("mode", "path"), [("auto", ONNX), ("off", SKLEARN)])
@pytest.mark.parametrize("kind", KINDS)
def test_the_service_scores_on_the_path_it_reports(
    kind: str,
    mode: str,
    path: str,
    schema_params: Params,
    fitted: dict[str, Any],
    compiled: dict[str, export.Compiled],
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    raw = schema_params.model_dump(mode="json")
    raw["serve"]["compiled"] = mode
    params = Params.model_validate(raw)
    train, test = split
    app = serve.create_app(
        params=params,
        env="test",
        source=OneVersion(local(params, fitted[kind], compiled[kind].onnx)),
        profile=serve.training_profile(frame=train, data=params.data),
        writer=None,
        poll=False,
    )
    rows = hard_rows(params, test)
    with TestClient(app) as client:
        ready = client.get("/ready").json()
        assert ready["serving_path"] == {"champion": path}
        metrics = client.get("/metrics").text
        assert f'serve_model_info{{role="champion",serving_path="{path}",version="1"}} 1.0' in metrics
        scores = [client.post("/predict", json={"features": row}).json()["score"] for row in rows]
    want = np.asarray(fitted[kind].predict_proba(serve.to_frame(rows=rows, data=params.data)))[:, 1]
    assert np.max(np.abs(np.asarray(scores) - want)) <= TOLERANCE
    served_model = app.state.service.manager.routing
    assert served_model is None or isinstance(served_model.champion.model, CompiledModel) == (path == ONNX)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("  compiled: auto\n", "  compiled: fast\n", "serve.compiled"),
        ("  onnx_tolerance: 1.0e-5\n", "  onnx_tolerance: 0\n", "train.onnx_tolerance"),
    ],
)
def test_a_bad_compiled_setting_names_its_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    from pipeline.core.config import ConfigError, load_params

    text = demo_params_text()
    assert text.count(old) == 1
    path = tmp_path / "params.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_params(path)
