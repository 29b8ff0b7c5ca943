"""`pipeline score --engine dask` on a two-worker LocalCluster with processes (one per module):
the same predictions, rejects and parts as the local engine row by row and byte by byte, for a
model file and a registered version; input named by URL and the scheduler by
DASK_SCHEDULER_ADDRESS; batch rows logged like the local engine's; a model whose bytes do not
hash to the verified sha256 refused on the workers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core import predlog
from pipeline.core.config import Params
from pipeline.delivery.score import MANIFEST, PREDICTIONS, REJECTS, ScoreError
from pipeline.delivery.score.batch import ModelInfo
from pipeline.delivery.score.model import ModelPayload
from pipeline.delivery.score.prediction_log import BATCH_ENV
from tests.deploy_support import Workspace, two_versions
from tests.score_support import demo_rows, fit_model, params_text

pytestmark = pytest.mark.e2e

ROWS = 2500
BATCH = 300
BAD: dict[int, tuple[str, float | str]] = {40: ("AGEP", 130.0), 1700: ("RAC1P", "0")}


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.CRITICAL
    ) as cluster:
        yield cluster.scheduler_address


def _input(folder: Path) -> pd.DataFrame:
    """Two files with their own row-group sizes, neither a multiple of the batch size."""
    frame = demo_rows(ROWS, offset=30_000)
    for row, (column, value) in BAD.items():
        frame.loc[row, column] = value
    folder.mkdir(parents=True)
    frame.iloc[:1100].to_parquet(folder / "a.parquet", index=False, row_group_size=170)
    frame.iloc[1100:].to_parquet(folder / "b.parquet", index=False, row_group_size=900)
    return frame


@pytest.fixture(scope="module")
def ws(params: Params, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("score-dask")
    (root / "params.yaml").write_text(params_text(batch_rows=BATCH), encoding="utf-8")
    fit_model(params, root / "model.skops")
    _input(root / "in")
    return root


@pytest.fixture
def here(ws: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ws)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    monkeypatch.delenv(predlog.LOG_URL_ENV, raising=False)
    return ws


def _score(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["score", "--no-rejects-fail", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


def _manifest(root: Path) -> dict[str, object]:
    manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    return {k: v for k, v in manifest.items() if k not in {"engine", "seconds", "scored_at", "input"}}


def _same_output(local: Path, dask: Path) -> None:
    left, right = pd.read_parquet(local / PREDICTIONS), pd.read_parquet(dask / PREDICTIONS)
    assert len(left) == ROWS - len(BAD)
    pd.testing.assert_frame_equal(left, right, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_parquet(local / REJECTS), pd.read_parquet(dask / REJECTS))
    assert pd.read_parquet(dask / REJECTS)["row"].tolist() == sorted(BAD)
    # Part boundaries follow score.batch_rows alone, so the files are the same bytes.
    assert _tree(local) == _tree(dask)
    assert _manifest(local) == _manifest(dask)
    assert json.loads((dask / MANIFEST).read_text(encoding="utf-8"))["engine"] == "dask"


def test_the_engines_agree_row_by_row_on_a_model_file(here: Path, scheduler: str) -> None:
    base = ("--model", "model.skops", "--input", "in")
    code, text = _score(*base, "--output", "file-local")
    assert code == 0, text
    code, text = _score(*base, "--output", "file-dask", "--engine", "dask", "--scheduler", scheduler)
    assert code == 0, text
    assert f"{ROWS} rows read, {ROWS - len(BAD)} scored, {len(BAD)} rejected" in text
    _same_output(here / "file-local", here / "file-dask")
    assert not list(here.glob(".file-dask.*"))
    # The same fingerprint: a local rerun into the dask output is a no-op.
    code, text = _score(*base, "--output", "file-dask")
    assert code == 0
    assert "already complete, nothing written" in text


def test_a_url_input_and_the_scheduler_from_the_environment(
    here: Path, scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (here / "url.yaml").write_text(params_text(batch_rows=BATCH, engine="dask"), encoding="utf-8")
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", scheduler)
    url = f"file://{here / 'in'}/*.parquet"
    code, text = _score("--model", "model.skops", "--input", url, "--output", "url-dask", "--params", "url.yaml")
    assert code == 0, text
    code, text = _score("--model", "model.skops", "--input", "in", "--output", "url-local", "--engine", "local")
    assert code == 0, text
    _same_output(here / "url-local", here / "url-dask")
    manifest = json.loads((here / "url-dask" / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["input"]["files"] == [f"file://{here / 'in' / name}" for name in ("a.parquet", "b.parquet")]


def test_batch_rows_are_logged_as_the_local_engine_logs_them(here: Path, scheduler: str) -> None:
    base = ("--model", "model.skops", "--input", "in", "--log")
    logs = {engine: str(here / f"{engine}.db") for engine in ("local", "dask")}
    assert _score(*base, "--output", "log-local", "--log-url", logs["local"])[0] == 0
    code, text = _score(
        *base, "--output", "log-dask", "--log-url", logs["dask"], "--engine", "dask", "--scheduler", scheduler
    )
    assert code == 0, text
    columns = ["association_id", "env", "model_name", "model_version", "role", "inputs", "score", "flags"]
    local, dask = (
        predlog.read_log(url=url, env=BATCH_ENV)[columns].sort_values("association_id").reset_index(drop=True)
        for url in (logs["local"], logs["dask"])
    )
    assert len(local) == ROWS - len(BAD)
    pd.testing.assert_frame_equal(local, dask)


def test_a_registered_version_scores_the_same_on_both_engines(
    scheduler: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with two_versions(tmp_path_factory.mktemp("score-dask-registry"), rows=300) as workspace:
        reg: Workspace = workspace
        (reg.root / "score.yaml").write_text(params_text(batch_rows=BATCH), encoding="utf-8")
        _input(reg.root / "in")
        base = ("--model", "2", "--input", "in", "--params", "score.yaml")
        assert _score(*base, "--output", "reg-local")[0] == 0
        code, text = _score(*base, "--output", "reg-dask", "--engine", "dask", "--scheduler", scheduler)
        assert code == 0, text
        _same_output(reg.root / "reg-local", reg.root / "reg-dask")
        assert set(pd.read_parquet(reg.root / "reg-dask" / PREDICTIONS)["model_version"]) == {"2"}


def test_a_worker_refuses_a_model_whose_bytes_do_not_match(here: Path, scheduler: str) -> None:
    from distributed import Client

    from pipeline.delivery.score.model import file_sha256
    from pipeline.delivery.score.workers import ModelPlugin

    content = (here / "model.skops").read_bytes()
    info = ModelInfo(name="model.skops", version="file", sha256=file_sha256(here / "model.skops"))
    tampered = ModelPayload(info=info, source="file", files={"model.skops": content[:-10] + b"0123456789"})
    with Client(scheduler, set_as_default=False) as client:
        plugin = ModelPlugin(tampered)
        with pytest.raises(ScoreError, match=r"on worker tcp://.* hashes to [0-9a-f]{64}, not the verified"):
            client.register_plugin(plugin, name=plugin.name)
        client.unregister_worker_plugin(plugin.name)
        good = ModelPlugin(ModelPayload(info=info, source="file", files={"model.skops": content}))
        client.register_plugin(good, name=good.name)
        try:
            loaded = client.run(lambda dask_worker: type(dask_worker.plugins[good.name].model).__name__)
        finally:
            client.unregister_worker_plugin(good.name)
    assert set(loaded.values()) == {"Pipeline"}
    assert len(loaded) == 2
