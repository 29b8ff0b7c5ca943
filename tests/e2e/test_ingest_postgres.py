"""The ingest stage for real: `pipeline ingest` as a subprocess against PostgreSQL with a
password-protected reader, `dvc repro ingest` in a temporary git repository, and the ways a
connection fails (wrong password, closed port, a server that never answers). The password must
reach no output and no file.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.stages.ingest import CONNECT_TIMEOUT_SECONDS, add_ingest_stage
from tests.conftest import BIN, REPO_ROOT, tool_env
from tests.conftest_servers import free_port
from tests.ingest_support import URL_ENV, people, write_params, write_sqlite

pytestmark = pytest.mark.e2e

PASSWORD = "Ingest-S3cret%Pw"
QUERY = "SELECT id, age, grade, employed FROM people WHERE grade LIKE '%' AND grade::text <> 'none'"


@dataclass(frozen=True)
class TeamDb:
    admin: str  # libpq URL of the superuser (trust auth) on the team database
    reader: str  # SQLAlchemy URL of the password-protected reader
    host: str
    name: str

    def with_password(self, password: str) -> str:
        return self.reader.replace(f":{_quoted(PASSWORD)}@", f":{_quoted(password)}@", 1)


def _quoted(password: str) -> str:
    from urllib.parse import quote

    return quote(password, safe="")


def _sql(url: str, sql: str, *, autocommit: bool = False) -> list[tuple[object, ...]]:
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = autocommit
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            rows = cur.fetchall() if cur.description else []
        if not autocommit:
            conn.commit()
        return rows
    finally:
        conn.close()


@pytest.fixture(scope="module")
def team_db(postgres_url: str) -> Iterator[TeamDb]:
    """A database of its own with a `people` table and a reader that must give its password."""
    server = postgres_url.replace("postgresql+psycopg2://", "postgresql://", 1)
    tag = time.monotonic_ns()
    name, role = f"ingest_{tag}", f"ingest_reader_{tag}"
    host = server.split("@", 1)[1].split("/", 1)[0]
    admin = f"{server.rsplit('/', 1)[0]}/{name}"
    _sql(server, f"CREATE DATABASE {name}", autocommit=True)
    _sql(server, f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'", autocommit=True)
    # The session's cluster trusts every local connection; only this role is made to prove itself.
    hba = Path(str(_sql(server, "SHOW hba_file")[0][0]))
    original = hba.read_text(encoding="utf-8")
    hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n{original}", encoding="utf-8")
    _sql(server, "SELECT pg_reload_conf()")
    try:
        _sql(admin, "CREATE TABLE people (id INTEGER PRIMARY KEY, age DOUBLE PRECISION, grade TEXT, employed INTEGER)")
        rows = people().sample(frac=1.0, random_state=3)
        values = ", ".join(
            f"({r.id}, {'NULL' if pd.isna(r.age) else r.age}, '{r.grade}', {r.employed})" for r in rows.itertuples()
        )
        _sql(admin, f"INSERT INTO people VALUES {values}")
        _sql(admin, f"GRANT SELECT ON people TO {role}")
        db = TeamDb(
            admin=admin,
            reader=f"postgresql+psycopg2://{role}:{_quoted(PASSWORD)}@{host}/{name}",
            host=host.split(":")[0],
            name=name,
        )
        _wait_for_password_rule(db)
        yield db
    finally:
        hba.write_text(original, encoding="utf-8")
        _sql(server, "SELECT pg_reload_conf()")
        _sql(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", autocommit=True)
        _sql(server, f"DROP ROLE IF EXISTS {role}", autocommit=True)


def _wait_for_password_rule(db: TeamDb) -> None:
    # pg_reload_conf only signals the server: wait until a wrong password is really refused.
    import psycopg2

    wrong = db.with_password("wrong").replace("postgresql+psycopg2://", "postgresql://", 1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            psycopg2.connect(wrong).close()
        except psycopg2.OperationalError:
            return
        time.sleep(0.1)
    raise AssertionError("the scram-sha-256 rule for the test role never took effect")


def _ingest(cwd: Path, url: str | None, *extra: str) -> subprocess.CompletedProcess[str]:
    env = tool_env(**({URL_ENV: url} if url is not None else {}))
    if url is None:
        env.pop(URL_ENV, None)
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "ingest", *extra],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _assert_no_password(outputs: list[str], root: Path) -> None:
    for forms in (PASSWORD, _quoted(PASSWORD)):
        for text in outputs:
            assert forms not in text
        leaked = [name for name, data in _files(root).items() if forms.encode() in data]
        assert not leaked, f"the password is in {leaked}"


def _table(db: TeamDb) -> pd.DataFrame:
    rows = _sql(db.admin, "SELECT id, age, grade, employed FROM people ORDER BY id")
    return pd.DataFrame(rows, columns=["id", "age", "grade", "employed"])


# --- PostgreSQL ---------------------------------------------------------------------------------


def test_snapshot_equals_the_table_and_the_password_stays_out(team_db: TeamDb, tmp_path: Path) -> None:
    write_params(tmp_path, query=QUERY)
    first = _ingest(tmp_path, team_db.reader)
    assert first.returncode == 0, first.stderr
    snap = tmp_path / "data" / "raw" / "people.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(snap), _table(team_db), check_dtype=False)
    report = yaml.safe_load((tmp_path / "reports" / "ingest.json").read_text())
    assert report["rows"] == 40
    assert report["source"] | {"url": None} == {
        "dialect": "postgresql",
        "driver": "psycopg2",
        "host": team_db.host,
        "port": int(team_db.reader.rsplit(":", 1)[1].split("/")[0]),
        "database": team_db.name,
        "url_env": URL_ENV,
        "url": None,
    }
    assert report["source"]["url"].endswith(f"***@{team_db.host}:{report['source']['port']}/{team_db.name}")

    # Rewriting every row moves it in the heap, so the scan returns another order: same bytes.
    before = snap.read_bytes()
    _sql(team_db.admin, "UPDATE people SET age = age")
    second = _ingest(tmp_path, team_db.reader)
    assert second.returncode == 0, second.stderr
    assert snap.read_bytes() == before
    _assert_no_password([first.stdout + first.stderr, second.stdout + second.stderr], tmp_path)


def test_wrong_password_is_one_line_without_it(team_db: TeamDb, tmp_path: Path) -> None:
    write_params(tmp_path, query=QUERY)
    wrong = "Wr0ng-Pa55word"
    result = _ingest(tmp_path, team_db.with_password(wrong))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: cannot connect to the postgresql database '{team_db.name}' on {team_db.host}")
    assert "password authentication failed" in lines[0]
    assert wrong not in result.stdout + result.stderr
    assert set(_files(tmp_path)) == {"params.yaml"}
    _assert_no_password([result.stdout + result.stderr], tmp_path)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT * FROM nowhere", 'relation "nowhere" does not exist'),
        ("DELETE FROM people", "read-only transaction"),
        ("SELECT age FROM people", "has no column 'id'"),
        ("SELECT * FROM people WHERE id < 0", "returned no rows"),
    ],
    ids=["bad-query", "write", "no-id", "no-rows"],
)
def test_query_refusals_are_one_line(team_db: TeamDb, tmp_path: Path, query: str, message: str) -> None:
    write_params(tmp_path, query=query)
    result = _ingest(tmp_path, team_db.reader)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert set(_files(tmp_path)) == {"params.yaml"}
    assert len(_table(team_db)) == 40


# --- connections that fail without PostgreSQL -------------------------------------------------


def test_a_closed_port_fails_at_once(tmp_path: Path) -> None:
    write_params(tmp_path)
    port = free_port()
    start = time.monotonic()
    result = _ingest(tmp_path, f"postgresql+psycopg2://reader:{_quoted(PASSWORD)}@127.0.0.1:{port}/team")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: cannot connect to the postgresql database 'team' on 127.0.0.1:{port}: "
        f'connection to server at "127.0.0.1", port {port} failed: Connection refused'
    ]
    assert time.monotonic() - start < 30
    _assert_no_password([result.stdout + result.stderr], tmp_path)


def test_a_server_that_never_answers_times_out(tmp_path: Path) -> None:
    write_params(tmp_path)
    # The kernel completes the handshake for the backlog; nothing ever replies to the startup packet.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        start = time.monotonic()
        result = _ingest(tmp_path, f"postgresql+psycopg2://reader:{_quoted(PASSWORD)}@127.0.0.1:{port}/team")
        took = time.monotonic() - start
    assert result.returncode == 2
    assert "timeout expired" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert CONNECT_TIMEOUT_SECONDS <= took < CONNECT_TIMEOUT_SECONDS + 20
    _assert_no_password([result.stdout + result.stderr], tmp_path)


# --- dvc repro ----------------------------------------------------------------------------------


def _git_dvc_project(root: Path, *, query: str) -> Path:
    """A git repository holding params.yaml (with data.source) and the repository's dvc.yaml plus ingest."""
    root.mkdir(parents=True, exist_ok=True)
    write_params(root, query=query)
    # The stage's own code is one of its deps; the package itself runs from the installed project.
    (root / "pipeline" / "stages").mkdir(parents=True)
    shutil.copy2(REPO_ROOT / "pipeline" / "stages" / "ingest.py", root / "pipeline" / "stages" / "ingest.py")
    shutil.copy2(REPO_ROOT / "dvc.yaml", root / "dvc.yaml")
    # The stages' commands start the project's interpreter through this launcher.
    (root / "scripts").mkdir()
    shutil.copy2(REPO_ROOT / "scripts" / "stage", root / "scripts" / "stage")
    assert add_ingest_stage(root / "dvc.yaml")
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.email", "ci@example.invalid"],
        ["git", "config", "user.name", "ci"],
        [str(BIN / "dvc"), "init", "-q"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "project"],
    ):
        subprocess.run(cmd, cwd=root, env=tool_env(), check=True, capture_output=True)
    return root


def _dvc(root: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN / "dvc"), *args],
        cwd=root,
        env=tool_env(**{URL_ENV: url}),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, f"dvc {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def _edges(mermaid: str) -> set[tuple[str, str]]:
    """(from, to) stage names of `dvc dag --md`'s flowchart."""
    names = dict(re.findall(r'(node\d+)\["([^"]+)"\]', mermaid))
    return {(names[a], names[b]) for a, b in re.findall(r"(node\d+)-->(node\d+)", mermaid)}


def test_dvc_repro_ingest_on_sqlite(tmp_path: Path) -> None:
    root = _git_dvc_project(tmp_path / "project", query="SELECT * FROM people")
    db = write_sqlite(tmp_path / "team.db", people())
    url = f"sqlite:///{db}"

    _dvc(root, url, "repro", "ingest")
    snap = root / "data" / "raw" / "people.parquet"
    assert pd.read_parquet(snap)["id"].tolist() == sorted(people()["id"])
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["ingest"]
    assert lock["params"]["params.yaml"]["data.source"] == {"query": "SELECT * FROM people", "url_env": URL_ENV}
    assert lock["params"]["params.yaml"]["base.id_column"] == "id"
    assert {o["path"] for o in lock["outs"]} == {"data/raw/people.parquet", "reports/ingest.json"}

    # The downstream stages read data.raw, so DVC links them to ingest without a change to them.
    edges = _edges(_dvc(root, url, "dag", "--md").stdout)
    assert {("ingest", "validate"), ("ingest", "prepare"), ("validate", "prepare")} <= edges

    # Unchanged params: DVC skips the stage. A fresh `pipeline ingest` of the same table gives the
    # same bytes, so DVC still sees nothing to rerun.
    again = _dvc(root, url, "repro", "ingest")
    assert "didn't change" in again.stdout
    before = snap.read_bytes()
    fresh = _ingest(root, url)
    assert fresh.returncode == 0, fresh.stderr
    assert snap.read_bytes() == before
    assert "up to date" in _dvc(root, url, "status", "ingest").stdout

    # New rows: `pipeline ingest` takes them, DVC sees the changed snapshot and reruns from there.
    write_sqlite(db, people(41).iloc[40:])
    assert _ingest(root, url).returncode == 0
    assert "modified" in _dvc(root, url, "status", "ingest").stdout
    _dvc(root, url, "repro", "ingest")
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["ingest"]
    (out,) = [o for o in lock["outs"] if o["path"] == "data/raw/people.parquet"]
    assert out["md5"] == hashlib.md5(snap.read_bytes(), usedforsecurity=False).hexdigest()
    assert len(pd.read_parquet(snap)) == 41


def test_dvc_repro_ingest_on_postgres_keeps_the_password_out_of_dvc_lock(team_db: TeamDb, tmp_path: Path) -> None:
    root = _git_dvc_project(tmp_path, query=QUERY)
    result = _dvc(root, team_db.reader, "repro", "ingest")
    assert (root / "dvc.lock").is_file()
    pd.testing.assert_frame_equal(
        pd.read_parquet(root / "data" / "raw" / "people.parquet"), _table(team_db), check_dtype=False
    )
    _assert_no_password([result.stdout + result.stderr], root)
