"""`pipeline score` against a real embedded sqlite registry: a few thousand demo rows scored by a
version named by alias, by number and by the bare role, compared row by row with a direct
predict_proba; an unknown alias and a tampered artifact refused with nothing written; and a run
killed part-way leaving nothing that looks complete.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.delivery import artifacts, registry_client
from pipeline.delivery.score import MANIFEST, PREDICTIONS, REJECTS
from tests.conftest import tool_env
from tests.deploy_support import Workspace, two_versions
from tests.score_support import demo_rows, direct_scores, params_text

pytestmark = pytest.mark.e2e

ROWS = 3000
BATCH = 700


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    with two_versions(tmp_path_factory.mktemp("score-registry"), rows=300) as workspace:
        (workspace.root / "score.yaml").write_text(params_text(batch_rows=BATCH), encoding="utf-8")
        demo_rows(ROWS, offset=20_000).to_parquet(workspace.root / "input.parquet", index=False)
        client = registry_client.client(params=workspace.params)
        name = workspace.params.tracking.registered_model
        client.set_registered_model_alias(name, "staging-champion", "2")
        client.set_registered_model_alias(name, "production-champion", "1")
        yield workspace


def _score(ws: Workspace, model: str, output: str, *extra: str) -> tuple[int, str]:
    args = ["score", "--model", model, "--input", "input.parquet", "--output", output, "--params", "score.yaml"]
    result = CliRunner().invoke(app, [*args, *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("model", "version"),
    [("staging-champion", "2"), ("1", "1"), ("champion", "1")],
    ids=["alias", "version-number", "bare-role"],
)
def test_scores_match_predict_proba_row_by_row(ws: Workspace, model: str, version: str) -> None:
    output = f"scored-{model}"
    code, text = _score(ws, model, output)
    assert code == 0, text
    assert f"{ROWS} rows read, {ROWS} scored, 0 rejected" in text
    name = ws.params.tracking.registered_model
    loaded = artifacts.load_model_version(name=name, version=version)
    frame = demo_rows(ROWS, offset=20_000)
    expected = pd.DataFrame({"id": frame["id"], "direct": direct_scores(loaded.model, frame, ws.params)})
    predictions = pd.read_parquet(ws.root / output / PREDICTIONS)
    assert len(list((ws.root / output / PREDICTIONS).iterdir())) == -(-ROWS // BATCH)
    joined = predictions.merge(expected, on="id", how="outer", validate="one_to_one")
    assert len(joined) == ROWS
    assert joined["score"].notna().all()
    np.testing.assert_allclose(joined["score"], joined["direct"], rtol=0, atol=1e-12)
    assert (joined["label"] == (joined["direct"] >= ws.params.evaluate.threshold)).all()
    tag = registry_client.client().get_model_version(name, version).tags[artifacts.ARTIFACT_HASH_TAG]
    assert set(predictions["model_version"]) == {version}
    assert set(predictions["model_sha256"]) == {tag}
    manifest = json.loads((ws.root / output / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["model"] == {
        "name": name,
        "version": version,
        "sha256": tag,
        "source": "registry",
        "reference": model,
    }


def test_the_alias_moving_makes_the_same_output_a_different_scoring(ws: Workspace) -> None:
    assert _score(ws, "staging-champion", "moving")[0] == 0
    client = registry_client.client(params=ws.params)
    name = ws.params.tracking.registered_model
    client.set_registered_model_alias(name, "staging-champion", "1")
    try:
        code, text = _score(ws, "staging-champion", "moving")
        assert code == 2
        assert "pass --force" in text
        assert _score(ws, "staging-champion", "moving", "--force")[0] == 0
        assert set(pd.read_parquet(ws.root / "moving" / PREDICTIONS)["model_version"]) == {"1"}
    finally:
        client.set_registered_model_alias(name, "staging-champion", "2")


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("nope-champion", "model employment-ma has no alias 'nope-champion' in the registry"),
        ("challenger", "has no alias 'challenger'"),
        ("99", "model employment-ma version 99 does not exist"),
    ],
    ids=["unknown-alias", "unknown-role", "unknown-version"],
)
def test_an_unknown_model_is_refused_with_nothing_written(ws: Workspace, model: str, message: str) -> None:
    code, text = _score(ws, model, "unknown")
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert code == 2, text
    assert errors == [errors[0]], text
    assert message in errors[0], text
    assert "production-champion, staging-champion" in text or model == "99"
    assert not (ws.root / "unknown").exists()


def test_a_tampered_artifact_is_refused_with_nothing_written(ws: Workspace) -> None:
    name = ws.params.tracking.registered_model
    uri = registry_client.client(params=ws.params).get_model_version_download_uri(name, "2")
    target = Path(uri.removeprefix("file://")) / "model.skops"
    original = target.read_bytes()
    try:
        target.write_bytes(original[:-10] + b"0123456789")
        code, text = _score(ws, "staging-champion", "tampered")
    finally:
        target.write_bytes(original)
    assert code == 2
    assert "the artifact's content hash" in text
    assert "no longer matches" in text
    assert not (ws.root / "tampered").exists()
    assert not list(ws.root.glob(".tampered.*"))


def _start(ws: Workspace, output: str) -> subprocess.Popen[str]:
    env = {**tool_env(), "MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"]}
    (ws.root / "slow.yaml").write_text(params_text(batch_rows=50), encoding="utf-8")
    pipeline = str(Path(sys.executable).parent / "pipeline")
    cmd = [pipeline, "score", "--model", "1", "--input", "input.parquet", "--output", output, "--params", "slow.yaml"]
    return subprocess.Popen(cmd, cwd=ws.root, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)


def _wait_for_batches(process: subprocess.Popen[str]) -> None:
    assert process.stderr is not None
    for line in process.stderr:
        if "batch 3:" in line:
            assert "rows/s" in line, line  # progress on stderr, one line per batch
            return
    raise AssertionError(f"the run ended (exit {process.wait()}) before writing a few batches")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_run_stopped_part_way_leaves_nothing_that_looks_complete(ws: Workspace, sig: signal.Signals) -> None:
    output = f"stopped-{sig.name}"
    with _start(ws, output) as process:
        try:
            _wait_for_batches(process)
            process.send_signal(sig)
            assert process.wait(timeout=60) != 0
        finally:
            if process.poll() is None:
                process.kill()
    assert not (ws.root / output).exists()
    partial = list(ws.root.glob(f".{output}.partial-*"))
    # SIGTERM unwinds and removes its partial folder; SIGKILL cannot, and the next run does.
    assert len(partial) == (1 if sig == signal.SIGKILL else 0)
    code, text = _score(ws, "1", output, "--params", "slow.yaml")
    assert code == 0, text
    assert not list(ws.root.glob(f".{output}.partial-*"))
    assert len(pd.read_parquet(ws.root / output / PREDICTIONS)) == ROWS
    assert not list((ws.root / output / REJECTS).iterdir())
