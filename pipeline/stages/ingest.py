"""Snapshot a database query into data.raw, so the rest of the pipeline reads a versioned file.

The table lives in a database (`params.data.source`): the query runs over a SQLAlchemy URL read
from the environment variable `data.source.url_env`, never from params. The result is sorted by
`base.id_column` and written as parquet with fixed settings, so an unchanged result gives
byte-identical bytes: DVC then sees the same hash and nothing downstream reruns. The connection
is read-only where the driver allows it, and a wrong URL fails within seconds, naming the host and
database but never the credentials.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pipeline.core.config import Params
from pipeline.core.redact import MASK, redact

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import URL

logger = logging.getLogger(__name__)

REPORT = "ingest.json"
# Long enough for a slow VPN, short enough that a wrong host fails a CI job in seconds, not minutes.
CONNECT_TIMEOUT_SECONDS = 5
# Backends whose database is a local file: connecting to a missing one would create it.
FILE_BACKENDS = ("sqlite", "duckdb")


class IngestError(ValueError):
    """The source is not set, unreachable, or its query gives no usable table: one line says which."""


# --- the pure core ------------------------------------------------------------------------------


def ordered(frame: pd.DataFrame, *, id_column: str) -> pd.DataFrame:
    """Rows sorted by the id; rows sharing an id are ordered by their content, so any order in is one order out."""
    import pandas as pd

    check_result(frame, id_column=id_column)
    # A hash of each row's values breaks ties between duplicate ids without comparing mixed types.
    keys = pd.DataFrame(
        {
            "id": frame[id_column].reset_index(drop=True),
            "tie": pd.util.hash_pandas_object(frame, index=False).to_numpy(),
        }
    )
    order = keys.sort_values(["id", "tie"], kind="mergesort", na_position="last").index
    return frame.reset_index(drop=True).iloc[order].reset_index(drop=True)


def snapshot(frame: pd.DataFrame, *, id_column: str) -> bytes:
    """The query result as parquet bytes that depend on its rows only, not on the order they came in."""
    out = BytesIO()
    try:
        # Fixed compression and no index: the bytes are a function of the sorted rows alone.
        ordered(frame, id_column=id_column).to_parquet(out, index=False, engine="pyarrow", compression="snappy")
    except (ValueError, TypeError, NotImplementedError) as exc:  # pyarrow's ArrowInvalid/ArrowTypeError among them
        raise IngestError(f"the query's result cannot be stored as parquet: {_first_line(exc)}") from None
    return out.getvalue()


def check_result(frame: pd.DataFrame, *, id_column: str) -> None:
    """Refuse a result the pipeline cannot use: no rows, a repeated column name, no id column."""
    names = [str(c) for c in frame.columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise IngestError(f"data.source.query returns the column(s) {repeated} more than once: alias them apart")
    if id_column not in names:
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        raise IngestError(
            f"data.source.query's result has no column {id_column!r} (base.id_column); it returns: {shown}"
        )
    if len(frame) == 0:
        raise IngestError("data.source.query returned no rows: nothing to train on")


def query_hash(query: str) -> str:
    return hashlib.sha256(query.encode("utf-8")).hexdigest()


# --- the database side --------------------------------------------------------------------------


def describe(url: URL) -> str:
    """Where the data comes from, in words that hold no credential."""
    backend = url.get_backend_name()
    if url.host:
        at = f"{url.host}:{url.port}" if url.port else url.host
        return f"{backend} database {url.database!r} on {at}"
    return f"{backend} database {url.database!r}" if url.database else f"{backend} in-memory database"


def parse_url(text: str, *, env: str) -> URL:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text.strip())
    except (ArgumentError, ValueError):
        # The value itself is never echoed: a malformed URL may still hold a password.
        raise IngestError(
            f"{env} does not hold a SQLAlchemy database URL "
            "(e.g. sqlite:///path/to.db, duckdb:///path/to.duckdb, or postgresql+psycopg2://HOST:5432/DB "
            "with user:password@ before HOST)"
        ) from None
    return url


def fetch(url: URL, query: str, *, env: str, raw: str = "") -> pd.DataFrame:
    """Run the query on a read-only connection and return its result; every failure is one IngestError."""
    import pandas as pd
    import sqlalchemy as sa
    from sqlalchemy.exc import ArgumentError
    from sqlalchemy.pool import NullPool

    where = describe(url)
    backend = url.get_backend_name()
    if backend in FILE_BACKENDS and url.database and url.database != ":memory:" and not Path(url.database).is_file():
        raise IngestError(f"{env} names the {backend} database file {url.database}, which does not exist")
    connect_args: dict[str, Any] = {}
    if backend in {"postgresql", "mysql", "mariadb"} and "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    if backend == "duckdb":
        connect_args["read_only"] = True
    try:
        engine = sa.create_engine(url, connect_args=connect_args, poolclass=NullPool)
    except ImportError as exc:
        hint = " (for PostgreSQL use postgresql+psycopg2://)" if backend == "postgresql" else ""
        raise IngestError(f"{env}: the database driver for {url.drivername} is not installed: {exc}{hint}") from None
    except ArgumentError:  # NoSuchModuleError among them: a dialect SQLAlchemy does not know
        raise IngestError(f"{env}: unknown database kind {url.drivername!r} in the URL") from None
    try:
        try:
            conn = engine.connect()
        except Exception as exc:  # every driver has its own error classes for a refused connection
            raise IngestError(f"cannot connect to the {where}: {_scrub(_db_message(exc), url, raw)}") from None
        with conn:
            try:
                frame = pd.read_sql(sa.text(query), _read_only(conn, backend))
            except Exception as exc:  # the database's refusal, whatever the driver calls it
                raise IngestError(
                    f"data.source.query failed on the {where}: {_scrub(_db_message(exc), url, raw)}"
                ) from None
    finally:
        engine.dispose()
    return frame


def _read_only(conn: Any, backend: str) -> Any:
    # The query is the team's to write; the snapshot must never be a way to change their data.
    if backend == "postgresql":
        return conn.execution_options(postgresql_readonly=True)
    if backend == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")
    return conn


def _db_message(exc: BaseException) -> str:
    # SQLAlchemy wraps the driver's error and appends the SQL and a help link: the driver's own
    # first line is what the team's DBA would recognise.
    return _first_line(getattr(exc, "orig", None) or exc)


def _first_line(exc: BaseException | str) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return re.sub(r"\s+", " ", lines[0]) if lines else type(exc).__name__


def _scrub(message: str, url: URL, raw: str = "") -> str:
    """The message with the URL's password masked even where no URL surrounds it."""
    for form in sorted(_password_forms(url, raw), key=len, reverse=True):
        message = message.replace(form, MASK)
    return redact(message)


def _password_forms(url: URL, raw: str) -> set[str]:
    # The password as the driver saw it, as SQLAlchemy and urllib would spell it, and as the
    # team typed it into the variable (any mix of percent-encoding).
    from urllib.parse import quote, quote_plus

    if not url.password:
        return set()
    password = str(url.password)
    rendered = url.render_as_string(hide_password=False).split("@")[0].rsplit(":", 1)[-1]
    forms = {password, quote(password, safe=""), quote_plus(password), rendered}
    typed = re.match(r"^[^:/]+://[^:/@]*:(?P<password>.+)@[^@]*$", raw.strip())
    if typed:
        forms.add(typed["password"])
    return {f for f in forms if f}


# --- files --------------------------------------------------------------------------------------


def write_atomic(data: bytes, path: Path) -> None:
    """Write through a temporary file in the same folder and rename: a kill never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        # mkstemp creates the file private to its owner; a snapshot is read like any other data file.
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def source_report(url: URL, *, env: str) -> dict[str, Any]:
    return {
        "dialect": url.get_backend_name(),
        "driver": url.get_driver_name(),
        "host": url.host,
        "port": url.port,
        "database": url.database,
        "url_env": env,
        # Rendered with the password hidden, then redacted: no user, password or secret parameter survives.
        "url": redact(url.render_as_string(hide_password=True)),
    }


def main(*, params: Params) -> dict[str, Any]:
    """Query data.source, write the snapshot to data.raw and the report; nothing is written on a failure."""
    import json

    source = params.data.source
    if source is None:
        raise IngestError(
            "data.source is not set in params.yaml: give data.source.query and data.source.url_env "
            "to read the table from a database (docs/ingest.md)"
        )
    raw = Path(params.data.raw)
    if raw.suffix.lower() not in {".parquet", ".pq"}:
        raise IngestError(f"data.raw is {raw}: a database snapshot is parquet, so data.raw must end in .parquet")
    text = os.environ.get(source.url_env, "")
    if not text.strip():
        state = "is empty" if source.url_env in os.environ else "is not set"
        raise IngestError(
            f"environment variable {source.url_env} (data.source.url_env) {state}: "
            "export the database's SQLAlchemy URL in it"
        )
    url = parse_url(text, env=source.url_env)
    frame = fetch(url, source.query, env=source.url_env, raw=text)
    data = snapshot(frame, id_column=params.base.id_column)
    report = {
        "rows": len(frame),
        "columns": [str(c) for c in frame.columns],
        "query_sha256": query_hash(source.query),
        "source": source_report(url, env=source.url_env),
        "snapshot": {"path": raw.as_posix(), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)},
    }
    write_atomic(data, raw)
    body = json.dumps(report, indent=2, sort_keys=True) + "\n"
    write_atomic(body.encode("utf-8"), params.paths.reports / REPORT)
    logger.info("ingest: %d rows x %d columns from the %s -> %s", len(frame), frame.shape[1], describe(url), raw)
    return report


# --- the dvc.yaml stage -------------------------------------------------------------------------

_STAGE = """\
# The table lives in a database: this stage snapshots data.source.query into data.raw, rows
# sorted by base.id_column, so an unchanged table gives the same bytes and nothing downstream
# reruns. The URL comes from the environment variable data.source.url_env, never from params.
# `pipeline ingest` takes a fresh snapshot; `dvc repro` then reruns what it changed.
# persist: a failed query leaves the last snapshot in place, and DVC's run cache never restores
# an old snapshot instead of asking the database.
ingest:
  cmd: sh scripts/stage ingest
  deps:
    - pipeline/stages/ingest.py
  params:
    - data.source
    - base.id_column
  outs:
    - ${data.raw}:
        persist: true
    - ${paths.reports}/ingest.json:
        cache: false
"""


def ingest_stage_text(indent: int = 2) -> str:
    """The dvc.yaml block of the ingest stage, indented to sit under `stages:`."""
    pad = " " * indent
    return "".join(f"{pad}{line}" if line.strip() else line for line in _STAGE.splitlines(keepends=True))


def add_ingest_stage(dvc_yaml: Path) -> bool:
    """Append the ingest stage under `stages:` unless it is there; the other stages and every comment stay as they are.

    dvc.yaml must hold `stages:` as its only top-level key, so appending at the end is appending
    under it. Returns whether the file changed. The validate and prepare stages already read
    ${data.raw}; DVC links them to this stage's output by that path. data.raw must not also be
    tracked by git or by a .dvc file, or DVC refuses two owners of one file.
    """
    text = dvc_yaml.read_text(encoding="utf-8")
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise IngestError(f"{dvc_yaml} is not valid YAML: {_first_line(str(exc))}") from None
    by_hand = f"{dvc_yaml}: add the ingest stage by hand (docs/ingest.md)"
    stages_line = next((line for line in text.splitlines() if re.match(r"stages\s*:", line)), None)
    block_style = stages_line is not None and re.fullmatch(r"stages\s*:\s*(#.*)?", stages_line)
    if not isinstance(parsed, dict) or set(parsed) != {"stages"} or not block_style:
        raise IngestError(f"{by_hand}: it must hold `stages:` as its only top-level key, in block style")
    before = parsed["stages"] or {}
    if "ingest" in before:
        return False
    new = text.rstrip("\n") + "\n\n" + ingest_stage_text(_stage_indent(text))
    try:
        after = yaml.safe_load(new)["stages"]
    except yaml.YAMLError:
        raise IngestError(by_hand) from None
    # The append must add exactly one stage and leave the others as they parse now.
    if "ingest" not in after or {k: v for k, v in after.items() if k != "ingest"} != before:
        raise IngestError(f"{by_hand}: appending it would change the other stages")
    write_atomic(new.encode("utf-8"), dvc_yaml)
    return True


def _stage_indent(text: str) -> int:
    # Match the file's own indentation: the first stage name under `stages:` shows it.
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"stages\s*:", line))
    for line in lines[start + 1 :]:
        if line.strip() and not line.lstrip().startswith("#"):
            return len(line) - len(line.lstrip(" "))
    return 2
