"""A team's fork, from the first command to the loop: the template with the demo's trained model
on the base branch, `pipeline init` on a table unlike the demo's, then every command a fork runs
(`make run`, the project test tier, `make ci` against the demo champion, the drift check, a
retraining, the demo) with no hand edit of any generated file. The only thing the team adds is
data: its table, then labelled batches in the folder init named.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline.core.config import Params, load_params
from tests.conftest import REPO_ROOT, copy_template, tool_env
from tests.init_support import ID, SENSITIVE, TARGET, churn_table

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
TABLE = "data/raw/churn.csv"
ROWS = 4000
# Labelled periods after the table's own: enough rows for the retraining floor init sets, and the
# three the demo replays.
PERIODS = ("2025-01", "2025-02", "2025-03")


def _run(repo: Path, *cmd: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH: the fork's own code answers `pipeline`, as on the team's machine.
    return subprocess.run(
        list(cmd),
        cwd=repo,
        env=tool_env(PYTHONPATH=str(repo)),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    return output


def _make(repo: Path, target: str, *variables: str) -> str:
    # `-o env`: the environment is this test run's; never rebuild it from the copy.
    return _ok(_run(repo, "make", "-o", "env", target, f"VENV={BIN.parent}", *variables))


def _batches(repo: Path, params: Params) -> None:
    """Labelled production batches as a team drops them: features and labels in two files per period."""
    folder = repo / params.retrain.production_dir
    folder.mkdir(parents=True, exist_ok=True)
    for n, period in enumerate(PERIODS):
        batch = churn_table(rows=ROWS // 2 + 200, seed=100 + n)
        batch[ID] = batch[ID] + 100_000 * (n + 1)
        features = batch.drop(columns=[TARGET])
        features.to_parquet(folder / f"{period}_features.parquet", index=False)
        batch[[ID, TARGET]].to_parquet(folder / f"{period}_labels.parquet", index=False)


@pytest.fixture(scope="module")
def fork(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(the fork after init and its first commit, the template commit it was forked from)."""
    repo = copy_template(tmp_path_factory.mktemp("fork"), sample_rows=0)
    base = _ok(_run(repo, "git", "rev-parse", "HEAD")).strip()
    churn_table(rows=ROWS).to_csv(repo / TABLE, index=False)
    _ok(
        _run(
            repo,
            str(BIN / "pipeline"),
            "init",
            "--data",
            TABLE,
            "--target",
            TARGET,
            "--id",
            ID,
            "--audit-only",
            SENSITIVE,
        )
    )
    _make(repo, "run")
    _batches(repo, load_params(repo / "params.yaml"))
    _ok(_run(repo, "git", "add", "-A"))
    _ok(_run(repo, "git", "commit", "-qm", "Our own table"))
    return repo, base


def test_make_run_trains_on_the_team_table(fork: tuple[Path, str]) -> None:
    repo, _ = fork
    params = load_params(repo / "params.yaml")
    assert params.base.target == TARGET
    assert SENSITIVE in params.data.audit_only
    metrics = json.loads((repo / params.paths.reports / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["roc_auc"] > 0.7
    # The fork's `make run` leaves nothing to commit but what the run itself is for.
    assert (repo / params.paths.model).is_file()


def test_the_project_tier_passes_on_the_fork(fork: tuple[Path, str]) -> None:
    repo, _ = fork
    shutil.copytree(
        REPO_ROOT / "tests", repo / "tests", dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    result = _run(repo, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "tests/project")
    output = _ok(result)
    assert " passed" in output
    assert "failed" not in output


def test_the_first_pull_request_passes_ci_against_the_demo_champion(fork: tuple[Path, str]) -> None:
    repo, base = fork
    output = _make(repo, "ci", f"BASE={base}")
    params = load_params(repo / "params.yaml")
    report = (repo / params.paths.reports / "pr_report.md").read_text(encoding="utf-8")
    assert "gate PASSED" in report
    assert "no comparable champion" in report
    assert "Traceback" not in output


def test_drift_check_reads_the_newest_batch(fork: tuple[Path, str]) -> None:
    repo, _ = fork
    output = _make(repo, "drift-check")
    params = load_params(repo / "params.yaml")
    assert PERIODS[-1] in output
    summary = json.loads((repo / params.drift.out_dir / "drift.json").read_text(encoding="utf-8"))
    assert summary["verdict"]


def test_retraining_joins_the_labelled_batches(fork: tuple[Path, str]) -> None:
    repo, _ = fork
    _make(repo, "champion", "BASE=HEAD")
    output = _make(repo, "retrain")
    params = load_params(repo / "params.yaml")
    retrained = pd.read_parquet(repo / params.data.raw) if params.data.raw.suffix == ".parquet" else None
    assert "ready" in output or "status=ready" in output, output[-3000:]
    assert retrained is not None
    assert len(retrained) > ROWS


@pytest.mark.slow
def test_the_demo_runs_on_the_fork(fork: tuple[Path, str], tmp_path: Path) -> None:
    repo, _ = fork
    result = _run(
        repo,
        str(BIN / "pipeline"),
        "demo",
        "--out",
        str(tmp_path / "out"),
        "--workdir",
        str(tmp_path / "repo"),
        "--rows-per-slice",
        "200",
        timeout=1500,
    )
    _ok(result)
    assert (tmp_path / "out" / "demo.md").is_file()


def test_a_table_in_postgresql_goes_through_the_ingest_stage(tmp_path: Path, postgres_url: str) -> None:
    """The same first hour when the team's table lives in a database: init reads the query once,
    adds the ingest stage, and `make run` snapshots, validates and trains with no hand edit.
    """
    import sqlalchemy

    from tests.predlog_support import postgres_database

    with postgres_database(postgres_url, prefix="team") as url:
        engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
        with engine.begin() as conn:
            churn_table(rows=ROWS, seed=11).to_sql("customers", conn, index=False)
        engine.dispose()
        repo = copy_template(tmp_path / "fork", sample_rows=0)
        env = tool_env(PYTHONPATH=str(repo), TEAM_DB_URL=url.replace("postgresql://", "postgresql+psycopg2://", 1))
        query = "SELECT * FROM customers"
        init = [str(BIN / "pipeline"), "init", "--query", query, "--url-env", "TEAM_DB_URL", "--name", "customers"]
        init += ["--target", TARGET, "--id", ID, "--audit-only", SENSITIVE]
        steps = [init, ["make", "-o", "env", "run", f"VENV={BIN.parent}"]]
        for cmd in steps:
            result = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, check=False, timeout=900)
            _ok(result)
        params = load_params(repo / "params.yaml")
        assert params.data.source is not None
        assert len(pd.read_parquet(repo / params.data.raw)) == ROWS
        assert "ingest" in (repo / "dvc.lock").read_text(encoding="utf-8")
        # The URL stays in the environment: params and the lock name only the variable.
        for written in ("params.yaml", "dvc.lock", "dvc.yaml"):
            assert url.split("@")[-1] not in (repo / written).read_text(encoding="utf-8")
        assert json.loads((repo / params.paths.reports / "metrics.json").read_text(encoding="utf-8"))["roc_auc"] > 0.7
