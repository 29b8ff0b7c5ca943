"""Helpers for the ingest tests: params pointing at a database, and tiny source tables."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd

from pipeline.core.config import Params, SourceSection
from tests.conftest import demo_params_text

URL_ENV = "INGEST_TEST_DB_URL"
QUERY = "SELECT * FROM people"


def people(rows: int = 40) -> pd.DataFrame:
    """A small table with the kinds of values a team table holds: ints, floats, text and nulls."""
    return pd.DataFrame(
        {
            "id": [(i * 7919) % 1000 for i in range(rows)],
            "age": [None if i % 9 == 0 else 18.5 + i for i in range(rows)],
            "grade": [str(i % 4) for i in range(rows)],
            "employed": [i % 2 for i in range(rows)],
        }
    )


def write_sqlite(path: Path, frame: pd.DataFrame, *, table: str = "people") -> Path:
    conn = sqlite3.connect(path)
    try:
        # Rows go in shuffled: the snapshot must not depend on the order the database returns.
        frame.sample(frac=1.0, random_state=1).to_sql(table, conn, index=False, if_exists="append")
    finally:
        conn.close()
    return path


def with_source(params: Params, *, root: Path, query: str = QUERY, url_env: str = URL_ENV) -> Params:
    """The repository's params with data.source set and every file this stage writes under root."""
    data = params.data.model_copy(
        update={
            "raw": root / "data" / "raw" / "people.parquet",
            "source": SourceSection(query=query, url_env=url_env),
        }
    )
    paths = params.paths.model_copy(update={"reports": root / "reports"})
    return params.model_copy(update={"data": data, "paths": paths})


def write_params(
    dest: Path, *, query: str = QUERY, url_env: str = URL_ENV, raw: str = "data/raw/people.parquet"
) -> Path:
    """The demo project's params.yaml with data.raw and data.source rewritten, as a team would edit it."""
    text = demo_params_text()
    old = "  raw: data/raw/employment_2015.parquet\n"
    assert old in text, "params.yaml's data.raw line moved: update tests/ingest_support.py"
    # JSON strings are YAML strings: a query's quotes, colons and percent signs stay as written.
    new = f"  raw: {raw}\n  source:\n    query: {json.dumps(query)}\n    url_env: {url_env}\n"
    path = dest / "params.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path
