from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core.config import Params
from pipeline.stages import ingest
from pipeline.stages.ingest import IngestError, add_ingest_stage, ingest_stage_text, snapshot
from tests.conftest import REPO_ROOT
from tests.ingest_support import URL_ENV, people, with_source, write_params, write_sqlite

pytestmark = pytest.mark.unit


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return write_sqlite(tmp_path / "team.db", people())


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Where the stage writes: kept apart from the database so 'nothing written' is checkable."""
    return tmp_path / "project"


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --- the pure core ------------------------------------------------------------------------------


def test_snapshot_bytes_do_not_depend_on_row_order() -> None:
    frame = people()
    first = snapshot(frame, id_column="id")
    for seed in range(3):
        assert snapshot(frame.sample(frac=1.0, random_state=seed), id_column="id") == first
    # Different content gives different bytes: the comparison above can fail.
    changed = frame.assign(age=frame["age"].fillna(0.0))
    assert snapshot(changed, id_column="id") != first


def test_snapshot_sorts_by_id_and_keeps_every_value() -> None:
    frame = people()
    back = pd.read_parquet(__import__("io").BytesIO(snapshot(frame, id_column="id")))
    assert back["id"].is_monotonic_increasing
    assert list(back.columns) == list(frame.columns)
    expected = frame.sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(back, expected, check_dtype=False)


def test_rows_sharing_an_id_come_out_in_one_order() -> None:
    frame = pd.DataFrame({"id": [1, 1, 1, 0], "v": ["b", "a", "c", "z"]})
    orders = {tuple(ingest.ordered(frame.iloc[list(p)], id_column="id")["v"]) for p in ([0, 1, 2, 3], [2, 1, 0, 3])}
    assert len(orders) == 1
    assert next(iter(orders))[0] == "z"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"id": pd.Series([], dtype="int64"), "v": pd.Series([], dtype="float64")}), "returned no rows"),
        (pd.DataFrame({"key": [1], "v": [2]}), "has no column 'id' (base.id_column); it returns: key, v"),
        (pd.DataFrame([[1, 2, 3]], columns=["id", "v", "v"]), "returns the column(s) ['v'] more than once"),
        (pd.DataFrame({"id": pd.Series([1, "a"], dtype=object)}), "cannot be stored as parquet"),
    ],
    ids=["no-rows", "no-id", "repeated-column", "mixed-ids"],
)
def test_unusable_results_are_refused(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(IngestError) as err:
        snapshot(frame, id_column="id")
    assert message in str(err.value)


def test_a_password_is_masked_where_no_url_surrounds_it() -> None:
    from sqlalchemy.engine import make_url

    typed = "postgresql+psycopg2://reader:p%40ss:w0rd@db.example:5432/team"
    url = make_url(typed)
    message = "FATAL: bad password p@ss:w0rd (sent as p%40ss:w0rd, p%40ss%3Aw0rd) for postgresql://reader:p%40ss:w0rd@db.example/team"
    clean = ingest._scrub(message, url, typed)
    assert "w0rd" not in clean
    assert "db.example" in clean


# --- main against a real database file -----------------------------------------------------------


def test_two_runs_give_byte_identical_snapshots_and_a_report(
    params: Params, db: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(URL_ENV, f"sqlite:///{db}")
    p = with_source(params, root=out)
    report = ingest.main(params=p)
    first = p.data.raw.read_bytes()
    # Another table order in the database: the same rows, the same bytes.
    db.unlink()
    write_sqlite(db, people().iloc[::-1])
    ingest.main(params=p)
    assert p.data.raw.read_bytes() == first
    assert _files(out) == ["data/raw/people.parquet", "reports/ingest.json"]

    written = json.loads((out / "reports" / "ingest.json").read_text())
    assert written == report
    assert written["rows"] == 40
    assert written["columns"] == ["id", "age", "grade", "employed"]
    assert written["source"]["dialect"] == "sqlite"
    assert written["query_sha256"] == ingest.query_hash("SELECT * FROM people")
    assert written["snapshot"]["bytes"] == len(first)
    pd.testing.assert_frame_equal(
        pd.read_parquet(p.data.raw), people().sort_values("id").reset_index(drop=True), check_dtype=False
    )


def test_duckdb_file(params: Params, tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    duckdb = pytest.importorskip("duckdb")
    path = tmp_path / "team.duckdb"
    conn = duckdb.connect(str(path))
    frame = people()
    conn.execute("CREATE TABLE people AS SELECT * FROM frame")
    conn.close()
    monkeypatch.setenv(URL_ENV, f"duckdb:///{path}")
    p = with_source(params, root=out)
    assert ingest.main(params=p)["source"]["dialect"] == "duckdb"
    assert pd.read_parquet(p.data.raw)["id"].tolist() == sorted(frame["id"])


def _bad_sqlite(tmp: Path, *, rows: int) -> str:
    return f"sqlite:///{write_sqlite(tmp / 'other.db', people(rows))}"


@pytest.mark.parametrize(
    ("url", "query", "message"),
    [
        (None, "SELECT * FROM people", f"environment variable {URL_ENV} (data.source.url_env) is not set"),
        ("  ", "SELECT * FROM people", f"environment variable {URL_ENV} (data.source.url_env) is empty"),
        ("::not a url", "SELECT * FROM people", f"{URL_ENV} does not hold a SQLAlchemy database URL"),
        ("nosuchdb://host/x", "SELECT * FROM people", "unknown database kind 'nosuchdb'"),
        ("sqlite:///{tmp}/missing.db", "SELECT * FROM people", "missing.db, which does not exist"),
        ("sqlite:///{db}", "SELECT * FROM nowhere", "data.source.query failed on the sqlite database"),
        ("sqlite:///{db}", "SELECT * FROM people WHERE id < 0", "returned no rows"),
        ("sqlite:///{db}", "SELECT age FROM people", "has no column 'id'"),
        ("sqlite:///{db}", "DELETE FROM people", "readonly"),
    ],
    ids=["unset", "empty", "unparsable", "unknown-dialect", "no-file", "bad-query", "no-rows", "no-id", "write"],
)
def test_bad_input_is_one_line_and_writes_nothing(
    params: Params,
    db: Path,
    tmp_path: Path,
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
    url: str | None,
    query: str,
    message: str,
) -> None:
    if url is None:
        monkeypatch.delenv(URL_ENV, raising=False)
    else:
        monkeypatch.setenv(URL_ENV, url.format(tmp=tmp_path, db=db))
    before = _files(tmp_path)
    with pytest.raises(IngestError) as err:
        ingest.main(params=with_source(params, root=out, query=query))
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    # Not even an empty sqlite file for a mistyped path, and the team's rows are all still there.
    assert _files(tmp_path) == before
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM people").fetchone() == (40,)


def test_no_source_and_a_csv_target_are_refused(params: Params, out: Path) -> None:
    with pytest.raises(IngestError, match=r"data.source is not set in params.yaml"):
        ingest.main(params=params.model_copy(update={"data": params.data.model_copy(update={"source": None})}))
    csv = with_source(params, root=out)
    csv = csv.model_copy(update={"data": csv.data.model_copy(update={"raw": out / "raw.csv"})})
    with pytest.raises(IngestError, match=r"data.raw must end in .parquet"):
        ingest.main(params=csv)
    assert _files(out) == []


def test_a_failed_run_keeps_the_last_snapshot(
    params: Params, db: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(URL_ENV, f"sqlite:///{db}")
    ingest.main(params=with_source(params, root=out))
    before = {name: (out / name).read_bytes() for name in _files(out)}
    with pytest.raises(IngestError):
        ingest.main(params=with_source(params, root=out, query="SELECT * FROM nowhere"))
    assert {name: (out / name).read_bytes() for name in _files(out)} == before


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "snap.parquet"
    target.write_bytes(b"old")

    def killed(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ingest.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        ingest.write_atomic(b"new", target)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["snap.parquet"]


# --- the command --------------------------------------------------------------------------------


def test_cli_ingest_success_and_a_refusal(db: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out.mkdir()
    params_file = write_params(out)
    monkeypatch.chdir(out)
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", "--params", str(params_file)], env={URL_ENV: f"sqlite:///{db}"})
    assert result.exit_code == 0, result.output
    assert (out / "data" / "raw" / "people.parquet").is_file()

    result = runner.invoke(app, ["ingest", "--params", str(params_file)], env={URL_ENV: "sqlite:///nope.db"})
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {URL_ENV} names the sqlite database file nope.db, which does not exist"
    ]


# --- the dvc.yaml stage -------------------------------------------------------------------------


def test_stage_block_lists_the_query_the_id_and_the_snapshot() -> None:
    stage = yaml.safe_load("stages:\n" + ingest_stage_text())["stages"]["ingest"]
    assert stage["cmd"] == "sh scripts/stage ingest"
    assert stage["params"] == ["data.source", "base.id_column"]
    assert stage["outs"][0] == {"${data.raw}": {"persist": True}}


def test_add_ingest_stage_appends_once_and_leaves_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "dvc.yaml"
    original = (REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8")
    path.write_text(original, encoding="utf-8")

    assert add_ingest_stage(path) is True
    text = path.read_text(encoding="utf-8")
    # Comments and layout survive: the old file is the new one's beginning.
    assert text.startswith(original.rstrip("\n"))
    before, after = yaml.safe_load(original)["stages"], yaml.safe_load(text)["stages"]
    assert set(after) == {*before, "ingest"}
    for name in before:
        assert after[name] == before[name], name
    assert after["ingest"]["outs"][0] == {"${data.raw}": {"persist": True}}

    assert add_ingest_stage(path) is False
    assert path.read_text(encoding="utf-8") == text


def test_add_ingest_stage_follows_the_files_indentation(tmp_path: Path) -> None:
    path = tmp_path / "dvc.yaml"
    path.write_text("# ours\nstages:\n    validate:\n        cmd: python -m pipeline validate\n", encoding="utf-8")
    assert add_ingest_stage(path)
    stages = yaml.safe_load(path.read_text(encoding="utf-8"))["stages"]
    assert stages["validate"] == {"cmd": "python -m pipeline validate"}
    assert stages["ingest"]["cmd"] == "sh scripts/stage ingest"


@pytest.mark.parametrize(
    "text",
    ["vars:\n  - x.yaml\nstages:\n  validate:\n    cmd: c\n", "stages: {validate: {cmd: c}}\n", "- not a mapping\n"],
    ids=["other-key", "flow-style", "list"],
)
def test_add_ingest_stage_refuses_a_file_it_cannot_append_to(tmp_path: Path, text: str) -> None:
    path = tmp_path / "dvc.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(IngestError, match="add the ingest stage by hand"):
        add_ingest_stage(path)
    assert path.read_text(encoding="utf-8") == text
