"""`pipeline labels import FILE`: CSV and parquet files into the label store, the summary line,
both duplicate rules, and every bad file refused in one line with exit 2 and nothing written.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core import predlog
from tests.conftest import DEMO_PARAMS, demo_params_text
from tests.predlog_support import log_row

pytestmark = pytest.mark.unit

LOGGED = ["a", "b", "007"]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "log.db"
    store = predlog.open_store(str(path))
    try:
        store.write([log_row(i, time.time() - 3600) for i in LOGGED])
    finally:
        store.close()
    return path


def _params(tmp_path: Path, *, labels: dict[str, Any] | None = None, base: dict[str, Any] | None = None) -> Path:
    raw = yaml.safe_load(demo_params_text())
    raw["labels"].update(labels or {})
    raw["base"].update(base or {})
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _import(file: Path, log: Path, params: Path = DEMO_PARAMS) -> Any:
    return CliRunner().invoke(app, ["labels", "import", str(file), "--params", str(params), "--log-url", str(log)])


def _stored(log: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(log)
    try:
        sql = "SELECT association_id, version, label, raw_label, observed_at, source, received_at FROM labels"
        return sorted(conn.execute(sql).fetchall(), key=repr)
    finally:
        conn.close()


def _iso(days_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()


def test_a_csv_is_stored_whole_and_summarised(tmp_path: Path, log: Path) -> None:
    file = tmp_path / "labels.csv"
    file.write_text("association_id,label\na,1\nb,0\n007,1\nnever-logged,0\n", encoding="utf-8")
    result = _import(file, log)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "labels.csv: 4 rows, 4 inserted, 0 already stored, 0 refused duplicates (labels.duplicates: refuse); "
        "3 ids matched a logged prediction, 1 unmatched (kept)"
    )
    rows = _stored(log)
    # "007" stays text (a CSV reader would make it 7, which matches nothing); the unknown id is kept.
    assert [(r[0], r[1], r[2], r[3], r[5]) for r in rows] == [
        ("007", 1, 1, "1", "import:labels.csv"),
        ("a", 1, 1, "1", "import:labels.csv"),
        ("b", 1, 0, "0", "import:labels.csv"),
        ("never-logged", 1, 0, "0", "import:labels.csv"),
    ]
    # Without an observed_at column a label is observed when it is imported.
    assert all(abs(r[4] - time.time()) < 60 and r[4] == r[6] for r in rows)

    again = _import(file, log)
    assert again.exit_code == 0, again.output
    assert "4 rows, 0 inserted, 4 already stored, 0 refused duplicates" in again.output
    assert _stored(log) == rows


def test_parquet_with_params_columns_raw_labels_and_observed_times(tmp_path: Path, log: Path) -> None:
    params = _params(
        tmp_path,
        labels={"id_column": "request", "label_column": "outcome", "observed_at_column": "seen"},
        base={"positive_label": "yes", "negative_label": "no"},
    )
    seen = pd.Timestamp(datetime.now(UTC) - timedelta(days=2)).tz_localize(None).floor("s")
    frame = pd.DataFrame(
        {
            "request": ["a", "b"],
            "outcome": ["yes", "no"],
            # A timestamp without a zone is UTC; an empty one is the import's time.
            "seen": pd.Series([seen, pd.NaT], dtype="datetime64[us]"),
            "other": [1, 2],
        }
    )
    file = tmp_path / "truth.parquet"
    frame.to_parquet(file, index=False)
    result = _import(file, log, params)
    assert result.exit_code == 0, result.output
    assert "truth.parquet: 2 rows, 2 inserted" in result.output
    rows = _stored(log)
    assert [(r[0], r[2], r[3], r[5]) for r in rows] == [
        ("a", 1, "yes", "import:truth.parquet"),
        ("b", 0, "no", "import:truth.parquet"),
    ]
    assert rows[0][4] == seen.tz_localize("UTC").timestamp()
    assert abs(rows[1][4] - time.time()) < 60


def test_iso_text_times_in_a_csv(tmp_path: Path, log: Path) -> None:
    params = _params(tmp_path, labels={"observed_at_column": "observed_at"})
    file = tmp_path / "labels.csv"
    file.write_text(f"association_id,label,observed_at\na,1,2030-01-01T00:00:00+02:00\nb,0,{_iso(1)}\n")
    # 2030 is in the future for this test's clock: refused, nothing written.
    bad = _import(file, log, params)
    assert bad.exit_code == 2
    assert "'observed_at': 1 value(s) are in the future" in bad.output
    assert _stored(log) == []
    file.write_text(f"association_id,label,observed_at\na,1,{_iso(3)}\nb,0,{_iso(1)}\n")
    ok = _import(file, log, params)
    assert ok.exit_code == 0, ok.output
    observed = {r[0]: r[4] for r in _stored(log)}
    assert abs(observed["a"] - (time.time() - 3 * 86_400)) < 60


def test_refused_duplicates_are_counted_and_named(tmp_path: Path, log: Path) -> None:
    predlog.write_labels(
        url=str(log), records=[predlog.LabelRecord("a", 0, "0", time.time(), "feedback")], duplicates="refuse"
    )
    file = tmp_path / "late.csv"
    file.write_text("association_id,label\na,1\nb,1\n")
    result = _import(file, log)
    assert result.exit_code == 0, result.output
    assert "2 rows, 1 inserted, 0 already stored, 1 refused duplicates (labels.duplicates: refuse)" in result.output
    assert "warning: refused 1 label(s) for ids already labelled: a (sent 1, stored 0 from feedback)" in result.output
    assert [(r[0], r[2], r[5]) for r in _stored(log)] == [("a", 0, "feedback"), ("b", 1, "import:late.csv")]


def test_the_version_rule_keeps_a_correction(tmp_path: Path, log: Path) -> None:
    predlog.write_labels(
        url=str(log), records=[predlog.LabelRecord("a", 0, "0", time.time(), "feedback")], duplicates="refuse"
    )
    file = tmp_path / "fix.csv"
    file.write_text("association_id,label\na,1\n")
    result = _import(file, log, _params(tmp_path, labels={"duplicates": "version"}))
    assert result.exit_code == 0, result.output
    assert "1 rows, 1 inserted, 0 already stored, 0 refused duplicates (labels.duplicates: version)" in result.output
    joined = predlog.labelled_predictions(str(log))
    assert joined.set_index("association_id").loc["a", ["label", "label_version", "label_source"]].tolist() == [
        1,
        2,
        "import:fix.csv",
    ]


def _csv(text: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / "labels.csv"
        path.write_text(text, encoding="utf-8")
        return path

    return make


def _parquet(frame: pd.DataFrame) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / "labels.parquet"
        frame.to_parquet(path, index=False)
        return path

    return make


def _raw(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    return make


GOOD = "a,1\nb,0\n"
BAD_FILES: list[tuple[str, Callable[[Path], Path], list[str]]] = [
    (
        "missing_column",
        _csv("id,label\na,1\n"),
        ["missing column(s) ['association_id']", "labels.id_column", "['id', 'label']"],
    ),
    (
        "label_values",
        _csv("association_id,label\n" + GOOD + "".join(f"x{v},{v}\n" for v in range(2, 9))),
        [
            "column 'label': 7 values are neither base.positive_label (1) nor base.negative_label (0)",
            "e.g. 2, 3, 4, 5, 6",
        ],
    ),
    ("label_words", _csv("association_id,label\n" + GOOD + "c,maybe\n"), ["column 'label'", "'maybe'"]),
    ("empty_label", _csv("association_id,label\n" + GOOD + "c,\n"), ["column 'label': 1 empty value(s), in row(s) 3"]),
    (
        "empty_id",
        _csv("association_id,label\n" + GOOD + ",1\n"),
        ["column 'association_id': 1 unusable", "must not be empty"],
    ),
    ("long_id", _csv("association_id,label\n" + GOOD + "x" * 129 + ",1\n"), ["unusable association id", "at most 128"]),
    ("control_id", _csv("association_id,label\n" + GOOD + '"a\tb",1\n'), ["unusable association id", "U+0009"]),
    (
        "float_ids",
        _parquet(pd.DataFrame({"association_id": [1.5, 2.0], "label": [1, 0]})),
        ["must be text or whole numbers, not float64"],
    ),
    ("zero_bytes", _raw("labels.csv", b""), ["the file is empty"]),
    ("header_only", _csv("association_id,label\n"), ["no rows: nothing to import"]),
    ("bad_parquet", _raw("labels.parquet", b"PAR1 this is not parquet"), ["unreadable parquet file"]),
    ("not_parquet", _raw("labels.parquet", b"association_id,label\na,1\n"), ["not a parquet file"]),
    ("wrong_type", _raw("labels.txt", b"association_id,label\na,1\n"), ["unsupported file type '.txt'"]),
    ("missing_file", lambda folder: folder / "absent.csv", ["absent.csv: file not found"]),
]


@pytest.mark.parametrize(("case", "make", "needles"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_a_bad_file_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, log: Path, case: str, make: Callable[[Path], Path], needles: list[str]
) -> None:
    result = _import(make(tmp_path), log)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, (case, result.output)
    assert _stored(log) == []


@pytest.mark.parametrize(
    ("days_ago", "needles"),
    [
        (None, ["column 'seen': 1 value(s) are not ISO 8601 date-times", "'yesterday'"]),
        (-2, ["column 'seen': 1 value(s) are in the future"]),
        (120, ["column 'seen': 1 value(s) are older than the log keeps data", "retention_days = 90"]),
    ],
)
def test_bad_observation_times_are_refused(
    tmp_path: Path, log: Path, days_ago: float | None, needles: list[str]
) -> None:
    params = _params(tmp_path, labels={"observed_at_column": "seen"})
    file = tmp_path / "labels.csv"
    seen = "yesterday" if days_ago is None else _iso(days_ago)
    file.write_text(f"association_id,label,seen\na,1,{_iso(1)}\nb,0,{seen}\n")
    result = _import(file, log, params)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    for needle in needles:
        assert needle in result.output, result.output
    assert _stored(log) == []


def test_a_numeric_time_column_is_refused(tmp_path: Path, log: Path) -> None:
    params = _params(tmp_path, labels={"observed_at_column": "seen"})
    file = tmp_path / "labels.parquet"
    pd.DataFrame({"association_id": ["a"], "label": [1], "seen": [1_800_000_000]}).to_parquet(file, index=False)
    result = _import(file, log, params)
    assert result.exit_code == 2
    assert "column 'seen': must hold ISO 8601 date-times or timestamps, not int64" in result.output
    assert _stored(log) == []


def test_a_missing_log_is_refused_and_not_created(tmp_path: Path) -> None:
    file = tmp_path / "labels.csv"
    file.write_text("association_id,label\na,1\n")
    absent = tmp_path / "absent.db"
    result = _import(file, absent)
    assert result.exit_code == 2
    assert "prediction log not found" in result.output
    assert not absent.exists()
