"""The compiled path end to end on the embedded registry: the train stage's logging puts the
parity-checked ONNX file inside the model artifact (so the registered hash and the manifest pin
cover it), `register` copies serving.path to the version, and a deployed version answers the
same probabilities on onnxruntime (serve.compiled auto) as on scikit-learn (off). A rewritten
ONNX file in the artifact store is refused like a rewritten skops file.
"""

from __future__ import annotations

import hashlib
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipeline.core import io
from pipeline.core.config import Params, load_params
from pipeline.core.schema import conform
from pipeline.delivery import deploy, registry, registry_client, serve
from pipeline.delivery.artifacts import ARTIFACT_HASH_TAG, _download
from pipeline.delivery.compiled import ARTIFACT_ONNX
from pipeline.stages import train
from pipeline.stages.compiled import ONNX, SKLEARN, compile_model
from tests.conftest import BIN, run
from tests.deploy_support import Workspace, commit_manifest, make_workspace

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.e2e

ENV = "staging"
TRAIN_ROWS, TEST_ROWS, SERVED_ROWS = 2500, 800, 60
TOLERANCE = 1e-5
# Version per estimator kind, registered in this order.
VERSIONS = {"hist_gradient_boosting": "1", "logistic_regression": "2"}


def _log_and_register(ws: Workspace, *, name: str, train_frame: pd.DataFrame, test: pd.DataFrame) -> str:
    """What `pipeline train` then `pipeline register` do for one chosen candidate."""
    params = ws.params
    features = list(params.data.features)
    spec = params.train.estimators[name]
    model = train.build_pipeline(data=params.data, spec=spec, seed=params.base.seed)
    model.fit(train_frame[features], train_frame[params.base.target])
    io.save_model(model, ws.root / "model.skops")
    compiled = compile_model(
        model,
        kind=spec.kind,
        data=params.data,
        test=test,
        tolerance=params.train.onnx_tolerance,
        sklearn_sha256=hashlib.sha256((ws.root / "model.skops").read_bytes()).hexdigest(),
    )
    assert compiled.serving_path == ONNX, compiled.reason
    result = train.CandidateResult(name, spec.kind, 0.9, 1.0, model)
    with warnings.catch_warnings():
        # mlflow compares the input example's columns with a range, which pandas 3 deprecates.
        warnings.filterwarnings("ignore", message="Operation with range is deprecated")
        run_id = train.log_run(
            results=[result], params=params, tags={}, example=train_frame[features].head(5), compiled=compiled
        )
    run_info = {"run_id": run_id, "params.sha256": "0" * 16, train.SERVING_PATH_TAG: compiled.serving_path}
    io.write_json(run_info, ws.root / params.paths.reports / "run.json")
    return registry.register(params=params, params_path=ws.params_path)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, raw_frame: pd.DataFrame) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("serve-compiled")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        workspace = make_workspace(root)
        frame = conform(raw_frame.sample(TRAIN_ROWS + TEST_ROWS, random_state=3), workspace.params)
        train_frame, test = frame.iloc[:TRAIN_ROWS], frame.iloc[TRAIN_ROWS:]
        for name, version in VERSIONS.items():
            assert _log_and_register(workspace, name=name, train_frame=train_frame, test=test) == version
        yield workspace


def _app(params: Params, *, mode: str, frame: pd.DataFrame) -> Any:
    raw = params.model_dump(mode="json")
    raw["serve"]["compiled"] = mode
    served = Params.model_validate(raw)
    return serve.create_app(
        params=served,
        env=ENV,
        source=serve.RegistrySource(params=served, env=ENV),
        profile=serve.training_profile(frame=frame, data=served.data),
        writer=None,
        poll=False,
    )


def _rows(params: Params, frame: pd.DataFrame) -> list[dict[str, Any]]:
    features = list(params.data.features)
    return [
        {k: (float(v) if k in params.data.numeric else str(v)) for k, v in r.items()}
        for r in frame[features].head(SERVED_ROWS).to_dict(orient="records")
    ]


def _deploy(ws: Workspace, version: str) -> None:
    pin = registry_client.client(params=ws.params).get_model_version(ws.params.tracking.registered_model, version)
    commit_manifest(ws, ENV, f"staging: v{version}", champion=int(version), champion_sha256=pin.tags[ARTIFACT_HASH_TAG])
    deploy.apply(params=ws.params, env=ENV)


def test_the_version_carries_its_onnx_file_and_serving_path(ws: Workspace, tmp_path: Path) -> None:
    client = registry_client.client(params=ws.params)
    name = ws.params.tracking.registered_model
    for version in VERSIONS.values():
        mv = client.get_model_version(name, version)
        assert mv.tags[train.SERVING_PATH_TAG] == ONNX
        assert client.get_run(mv.run_id).data.tags[train.SERVING_PATH_TAG] == ONNX
        local = _download(client, name=name, version=version, dst=tmp_path / version)
        onnx = (local / ARTIFACT_ONNX).read_bytes()
        report = io.read_json(local / ARTIFACT_ONNX.parent / train.COMPILED_REPORT)
        assert report["onnx_sha256"] == hashlib.sha256(onnx).hexdigest()
        assert float(report["parity"]["max_abs_diff"]) <= TOLERANCE


@pytest.mark.parametrize("kind", list(VERSIONS))
def test_a_served_version_answers_alike_on_both_paths(kind: str, ws: Workspace, raw_frame: pd.DataFrame) -> None:
    params = ws.params
    version = VERSIONS[kind]
    _deploy(ws, version)
    frame = conform(raw_frame.tail(2000), params)
    rows = _rows(params, frame)
    scores: dict[str, np.ndarray] = {}
    for mode, path in (("auto", ONNX), ("off", SKLEARN)):
        app = _app(params, mode=mode, frame=frame)
        with TestClient(app) as client:
            ready = client.get("/ready").json()
            assert (ready["champion"], ready["serving_path"]) == (version, {"champion": path})
            answers = [client.post("/predict", json={"features": row}).json() for row in rows]
        assert {a["model_version"] for a in answers} == {version}
        scores[path] = np.asarray([a["score"] for a in answers])
    assert np.max(np.abs(scores[ONNX] - scores[SKLEARN])) <= TOLERANCE
    assert np.ptp(scores[ONNX]) > 0.1  # real, varied answers, not one constant


def test_a_rewritten_onnx_file_in_the_store_is_refused(ws: Workspace, raw_frame: pd.DataFrame) -> None:
    params = ws.params
    _deploy(ws, VERSIONS["logistic_regression"])
    client = registry_client.client(params=params)
    mv = client.get_model_version(params.tracking.registered_model, VERSIONS["logistic_regression"])
    stored = Path(client.get_model_version_download_uri(mv.name, mv.version).removeprefix("file://")) / ARTIFACT_ONNX
    original = stored.read_bytes()
    stored.write_bytes(original + b"\0")
    try:
        app = _app(params, mode="auto", frame=conform(raw_frame.tail(500), params))
        with TestClient(app) as http:
            ready = http.get("/ready")
            assert ready.status_code == 503
            # The pin in git covers the ONNX file like the skops file: checked before anything loads.
            assert "the deploy manifest in git pins" in ready.json()["problem"]
    finally:
        stored.write_bytes(original)


def test_the_train_stage_writes_a_byte_identical_onnx_file(pipeline_repo: Path, tmp_path: Path) -> None:
    """`dvc repro` leaves the ONNX file beside the model file, admitted, and a forced rerun of
    the train stage writes the same bytes (the same model keeps its hash in dvc.lock).
    """
    params = load_params(pipeline_repo / "params.yaml")
    report = io.read_json(pipeline_repo / params.paths.reports / train.COMPILED_REPORT)
    onnx = (pipeline_repo / params.paths.compiled).read_bytes()
    assert report["serving_path"] == ONNX, report["reason"]
    assert report["onnx_sha256"] == hashlib.sha256(onnx).hexdigest()
    assert float(report["parity"]["max_abs_diff"]) <= params.train.onnx_tolerance
    assert report["sklearn_sha256"] == hashlib.sha256((pipeline_repo / params.paths.model).read_bytes()).hexdigest()
    assert io.read_json(pipeline_repo / params.paths.reports / "run.json")[train.SERVING_PATH_TAG] == ONNX

    # Two forced reruns in a private copy: other test files share pipeline_repo and may have
    # changed its inputs since its first run; the claim is that the same inputs give the same bytes.
    repo = tmp_path / "copy"
    shutil.copytree(pipeline_repo, repo, symlinks=True)
    outputs = []
    for _ in range(2):
        run([str(BIN / "dvc"), "repro", "--force", "--single-item", "train"], repo)
        outputs.append(((repo / params.paths.compiled).read_bytes(), (repo / params.paths.model).read_bytes()))
    assert outputs[0] == outputs[1]
