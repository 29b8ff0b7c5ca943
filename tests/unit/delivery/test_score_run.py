"""`pipeline score` with a model file: the output layout and manifest, byte-identical reruns, the
no-op rerun and --force, the rejects rule's exit status, and each bad input refused with one line,
exit 2 and nothing written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core import io
from pipeline.core.config import Params
from pipeline.delivery.score import MANIFEST, PREDICTIONS, REJECTS
from tests.score_support import demo_rows, direct_scores, fit_model, params_text

pytestmark = pytest.mark.unit

ROWS = 1000
BATCH = 300


@pytest.fixture(scope="module")
def model_file(params: Params, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fit_model(params, tmp_path_factory.mktemp("model") / "model.skops")


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_file: Path) -> Path:
    """A working directory with params (small batches), the model and an input with 2 bad rows."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(params_text(batch_rows=BATCH, max_reject_share=0.01), encoding="utf-8")
    (tmp_path / "model.skops").write_bytes(model_file.read_bytes())
    frame = demo_rows(ROWS)
    frame.loc[10, "AGEP"] = 130.0
    frame.loc[650, "RAC1P"] = "0"
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    return tmp_path


def _score(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["score", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def _default(
    *extra: str, output: str = "out", input_spec: str = "in.parquet", model: str = "model.skops"
) -> tuple[int, str]:
    return _score("--model", model, "--input", input_spec, "--output", output, *extra)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_writes_predictions_rejects_and_manifest(ws: Path, params: Params) -> None:
    code, output = _default()
    assert code == 0, output
    assert "1000 rows read, 998 scored, 2 rejected" in output
    out = ws / "out"
    parts = sorted(p.name for p in (out / PREDICTIONS).iterdir())
    assert parts == [f"part-0000{i}.parquet" for i in range(4)]  # 300 + 300 + 300 + 100 rows
    assert sorted(p.name for p in (out / REJECTS).iterdir()) == ["part-00000.parquet", "part-00002.parquet"]
    rejects = pd.read_parquet(out / REJECTS)
    assert rejects["row"].tolist() == [10, 650]
    assert rejects["reason"].tolist() == [
        "AGEP: 130.0 outside the params range [0, 120]",
        "RAC1P: unseen code '0' (params unseen: refuse)",
    ]
    predictions = pd.read_parquet(out / PREDICTIONS)
    frame = demo_rows(ROWS).drop(index=[10, 650])
    assert predictions["id"].tolist() == frame["id"].tolist()
    model = io.load_model(ws / "model.skops")
    np.testing.assert_allclose(predictions["score"], direct_scores(model, frame, params), rtol=0, atol=1e-12)
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["rows"] == {"read": 1000, "scored": 998, "rejected": 2}
    assert manifest["model"]["version"] == "file"
    assert set(predictions["model_sha256"]) == {manifest["model"]["sha256"]}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", manifest["scored_at"])
    assert not list(ws.glob(".out.*")), "no partial folder may remain"


def test_a_rerun_writes_the_same_bytes_and_an_existing_output_is_a_no_op(ws: Path) -> None:
    assert _default(output="first")[0] == 0
    assert _default(output="second")[0] == 0
    first, second = _tree(ws / "first"), _tree(ws / "second")
    first_manifest, second_manifest = first.pop(MANIFEST), second.pop(MANIFEST)
    assert first == second
    assert len(first) == 6
    # Wall time lives in the manifest only.
    assert json.loads(first_manifest)["fingerprint"] == json.loads(second_manifest)["fingerprint"]
    stamp = (ws / "first" / MANIFEST).stat().st_mtime_ns
    code, output = _default(output="first")
    assert code == 0
    assert "already complete, nothing written" in output
    assert (ws / "first" / MANIFEST).stat().st_mtime_ns == stamp


def test_another_input_needs_force(ws: Path) -> None:
    assert _default()[0] == 0
    demo_rows(200, offset=5000).to_parquet(ws / "other.parquet", index=False)
    before = _tree(ws / "out")
    code, output = _default(input_spec="other.parquet")
    assert code == 2
    assert "holds a complete scoring of a different input, model or params" in output
    assert "--force" in output
    assert _tree(ws / "out") == before
    code, output = _default("--force", input_spec="other.parquet")
    assert code == 0, output
    assert pd.read_parquet(ws / "out" / PREDICTIONS)["id"].tolist() == demo_rows(200, offset=5000)["id"].tolist()
    assert not list((ws / "out" / REJECTS).iterdir())
    assert not list(ws.glob(".out.*"))


def test_reject_share_above_params_exits_1_with_complete_output(ws: Path) -> None:
    frame = demo_rows(ROWS)
    frame.loc[:19, "AGEP"] = 500.0  # 2% of the rows, above params' 1%
    frame.to_parquet(ws / "bad.parquet", index=False)
    code, output = _default(input_spec="bad.parquet")
    assert code == 1
    assert "2.00% of the rows were rejected" in output
    assert "score.max_reject_share 1.00%" in output
    assert (ws / "out" / MANIFEST).is_file()
    assert len(pd.read_parquet(ws / "out" / REJECTS)) == 20
    # The rule holds on the no-op rerun too; --no-rejects-fail only reports.
    assert _default(input_spec="bad.parquet")[0] == 1
    assert _default("--no-rejects-fail", input_spec="bad.parquet")[0] == 0
    (ws / "params.yaml").write_text(params_text(batch_rows=BATCH, max_reject_share=0.05), encoding="utf-8")
    assert _default(input_spec="bad.parquet", output="out2")[0] == 0


def _write(name: str, content: bytes) -> Callable[[Path], str]:
    def setup(ws: Path) -> str:
        (ws / name).write_bytes(content)
        return name

    return setup


def _table(mutate: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], str]:
    def setup(ws: Path) -> str:
        mutate(demo_rows(20)).to_parquet(ws / "t.parquet", index=False)
        return "t.parquet"

    return setup


def _header_only_csv(ws: Path) -> str:
    demo_rows(3).iloc[:0].to_csv(ws / "h.csv", index=False)
    return "h.csv"


BAD_INPUTS: dict[str, tuple[Callable[[Path], str], str]] = {
    "input-missing": (lambda ws: "nope.parquet", "input nope.parquet not found"),
    "input-empty-file": (_write("e.parquet", b""), "e.parquet: the file is empty (0 bytes)"),
    "input-no-rows": (_table(lambda f: f.iloc[:0]), "holds no rows"),
    "csv-without-rows": (_header_only_csv, "input h.csv holds no rows"),
    "not-a-table": (_write("notes.txt", b"hello\n"), "notes.txt: not a parquet or CSV file"),
    "not-parquet": (_write("x.parquet", b"id,AGEP\n1,30\n"), "x.parquet: not a parquet file"),
    "column-missing": (_table(lambda f: f.drop(columns=["DIS"])), "t.parquet: missing column(s) ['DIS']"),
    "column-wrong-type": (
        _table(lambda f: f.assign(AGEP=f["AGEP"].astype(str))),
        "t.parquet: column 'AGEP' has type large_string",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_nothing_written(ws: Path, case: str) -> None:
    setup, message = BAD_INPUTS[case]
    code, output = _default(input_spec=setup(ws))
    assert code == 2, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert errors == [errors[0]], output
    assert message in errors[0], output
    assert "Traceback" not in output
    assert not (ws / "out").exists()
    assert not list(ws.glob(".out.*"))


def test_an_output_folder_holding_something_else_is_never_touched(ws: Path) -> None:
    (ws / "out").mkdir()
    (ws / "out" / "thesis.tex").write_text("years of work", encoding="utf-8")
    for extra in ((), ("--force",)):
        code, output = _default(*extra)
        assert code == 2
        assert "output folder out already holds files that are not a complete scoring output" in output
    assert _tree(ws / "out") == {"thesis.tex": b"years of work"}
    (ws / "file").write_text("x", encoding="utf-8")
    code, output = _default(output="file")
    assert code == 2
    assert "is a file, not a folder" in output


@pytest.mark.parametrize(
    ("model", "message"),
    [("missing.skops", "missing.skops: model file not found"), ("in.parquet", "not a readable skops model file")],
    ids=["missing", "not-a-model"],
)
def test_a_bad_model_file_is_refused(ws: Path, model: str, message: str) -> None:
    code, output = _default(model=model)
    assert code == 2
    assert message in output
    assert not (ws / "out").exists()


def test_a_killed_run_leaves_nothing_that_looks_complete(ws: Path) -> None:
    # What a SIGKILL leaves: a hidden partial folder of a process that is gone.
    stale = ws / ".out.partial-999999999"
    (stale / PREDICTIONS).mkdir(parents=True)
    (stale / PREDICTIONS / "part-00000.parquet").write_bytes(b"half")
    code, output = _default()
    assert code == 0, output
    assert not stale.exists()
    assert (ws / "out" / MANIFEST).is_file()


def test_a_model_file_is_found_by_path_and_a_number_is_always_a_version(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (ws / "model-copy").write_bytes((ws / "model.skops").read_bytes())
    code, output = _default(model="model-copy")
    assert code == 0, output
    assert "by model-copy version file" in output
    # A file named like a version does not shadow the registry: this one has no store here.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{ws / 'mlflow.db'}")
    (ws / "3").write_bytes((ws / "model.skops").read_bytes())
    code, output = _default(model="3", output="by-version")
    assert code == 2
    assert "mlflow.db does not exist" in output
    assert not (ws / "by-version").exists()
    assert not (ws / "mlflow.db").exists()


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("via", ["--scheduler", "DASK_SCHEDULER_ADDRESS"])
def test_an_unreachable_scheduler_is_one_line_exit_2_and_nothing_written(
    ws: Path, monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    (ws / "params.yaml").write_text(params_text(batch_rows=BATCH, connect_seconds=1), encoding="utf-8")
    address = f"tcp://127.0.0.1:{_closed_port()}"
    if via == "--scheduler":
        monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
        code, output = _default("--engine", "dask", "--scheduler", address)
    else:
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
        code, output = _default("--engine", "dask")
    assert code == 2, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: cannot reach the Dask scheduler at {address} ({via}) within 1 s: " + errors[0].split(": ", 2)[2]
    ]
    assert "Traceback" not in output
    assert not (ws / "out").exists()
    assert not list(ws.glob(".out.*"))


# A CSV is refused by the dask engine whatever it holds (see below).
@pytest.mark.parametrize("case", sorted(set(BAD_INPUTS) - {"csv-without-rows"}))
def test_the_dask_engine_checks_the_input_before_reaching_for_a_cluster(ws: Path, case: str) -> None:
    # The scheduler is unreachable: a bad input must be reported first, as the local engine does.
    setup, message = BAD_INPUTS[case]
    address = f"tcp://127.0.0.1:{_closed_port()}"
    code, output = _default("--engine", "dask", "--scheduler", address, input_spec=setup(ws))
    assert code == 2, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert message in errors[0], output
    assert not (ws / "out").exists()
    assert not list(ws.glob(".out.*"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--engine", "dask"), "input in.csv is CSV: the dask engine reads parquet"),
        (("--engine", "spark"), "engine 'spark' is not one of local, dask"),
    ],
    ids=["csv-for-dask", "unknown-engine"],
)
def test_what_the_dask_engine_cannot_do_is_refused_first(ws: Path, args: tuple[str, ...], message: str) -> None:
    demo_rows(20).to_csv(ws / "in.csv", index=False)
    address = f"tcp://127.0.0.1:{_closed_port()}"
    code, output = _default("--scheduler", address, *args, input_spec="in.csv")
    assert code == 2, output
    assert message in output
    assert not (ws / "out").exists()


def test_a_scheduler_without_workers_is_refused_with_nothing_written(ws: Path) -> None:
    from distributed import LocalCluster

    (ws / "params.yaml").write_text(params_text(batch_rows=BATCH, connect_seconds=1), encoding="utf-8")
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster:
        code, output = _default("--engine", "dask", "--scheduler", cluster.scheduler_address)
    assert code == 2, output
    assert f"the Dask scheduler at {cluster.scheduler_address} has no workers (waited 1 s)" in output
    assert not (ws / "out").exists()
    assert not list(ws.glob(".out.*"))
