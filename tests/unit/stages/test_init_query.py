"""`pipeline init --query`: the table comes from a database (run once to inspect it), params get
data.source and the snapshot path, dvc.yaml gets the ingest stage, and no URL is ever printed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli.entry import app
from pipeline.core.config import load_params
from tests.init_support import ID, TARGET, churn_table, demo_project, snapshot

pytestmark = pytest.mark.unit

URL_ENV = "INIT_TEST_DB_URL"
QUERY = "SELECT * FROM customers"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import duckdb

    root = demo_project(tmp_path / "project")
    database = tmp_path / "source.duckdb"
    frame = churn_table(rows=1500)
    with duckdb.connect(str(database)) as conn:
        conn.register("frame", frame)
        conn.execute("CREATE TABLE customers AS SELECT * FROM frame")
    monkeypatch.setenv(URL_ENV, f"duckdb:///{database}")
    monkeypatch.chdir(root)
    return root


def test_init_from_a_query_writes_the_source_and_the_ingest_stage(project: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["init", "--query", QUERY, "--url-env", URL_ENV, "--name", "Churn DB", "--target", TARGET, "--id", ID],
    )
    assert result.exit_code == 0, result.output
    assert "source.duckdb" not in result.output
    params = load_params(project / "params.yaml")
    assert params.data.source is not None
    assert (params.data.source.query, params.data.source.url_env) == (QUERY, URL_ENV)
    assert params.data.raw.as_posix() == params.retrain.reference.as_posix() == "data/raw/churn-db.parquet"
    assert params.tracking.registered_model == "churn-db"
    assert params.data.numeric["age"].nullable
    stages = yaml.safe_load((project / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    assert "ingest" in stages
    assert "wrote dvc.yaml (the ingest stage)" in result.output
    # The snapshot is the ingest stage's output: init only inspects the query's result.
    assert not (project / "data/raw/churn-db.parquet").exists()


def test_a_refused_connection_names_no_credential_and_writes_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(URL_ENV, "postgresql+psycopg2://team:s3cret-pw@127.0.0.1:1/warehouse")
    before = snapshot(project)
    result = CliRunner().invoke(
        app, ["init", "--query", QUERY, "--url-env", URL_ENV, "--name", "churn", "--target", TARGET, "--id", ID]
    )
    assert result.exit_code == 2
    assert "s3cret-pw" not in result.output
    assert "--query: cannot connect to the postgresql database 'warehouse' on 127.0.0.1:1" in result.output
    assert snapshot(project) == before


def test_a_failing_query_is_one_line(project: Path) -> None:
    before = snapshot(project)
    result = CliRunner().invoke(
        app,
        ["init", "--query", "SELECT * FROM nope", "--url-env", URL_ENV, "--name", "c", "--target", TARGET, "--id", ID],
    )
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert "--query: data.source.query failed" in result.output
    assert snapshot(project) == before


def test_a_dvc_yaml_the_ingest_stage_cannot_extend_puts_everything_back(project: Path) -> None:
    dvc_yaml = project / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text(encoding="utf-8") + "\nvars:\n  - params.yaml\n", encoding="utf-8")
    before = snapshot(project)
    result = CliRunner().invoke(
        app, ["init", "--query", QUERY, "--url-env", URL_ENV, "--name", "churn", "--target", TARGET, "--id", ID]
    )
    assert result.exit_code == 2, result.output
    assert "add the ingest stage by hand" in result.output
    assert snapshot(project) == before
