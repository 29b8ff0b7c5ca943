"""The input side of `pipeline score`: which files a file, folder or glob names, each bad file
refused with a line naming it, missing or unusable columns refused before a row is read, and
batches of exactly the configured size whatever the files' own chunking.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.core.config import Params
from pipeline.delivery.score.inputs import ScoreError, find_files, fingerprint, open_input
from pipeline.delivery.score.reading import batches
from tests.score_support import demo_rows

pytestmark = pytest.mark.unit


def _parquet(path: Path, frame: pd.DataFrame, *, row_group_size: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group_size)
    return path


def test_a_folder_is_its_data_files_in_name_order(tmp_path: Path) -> None:
    rows = demo_rows(4)
    for name in ("b.parquet", "a.parquet", "sub/c.parquet", ".hidden.parquet", "_SUCCESS"):
        _parquet(tmp_path / "in" / name, rows)
    names = [p.relative_to(tmp_path / "in").as_posix() for p in find_files(str(tmp_path / "in"))]
    assert names == ["a.parquet", "b.parquet", "sub/c.parquet"]


def test_a_glob_names_the_matching_files(tmp_path: Path) -> None:
    rows = demo_rows(4)
    for name in ("2016_features.parquet", "2017_features.parquet", "2016_labels.parquet"):
        _parquet(tmp_path / name, rows)
    found = find_files(str(tmp_path / "*_features.parquet"))
    assert [p.name for p in found] == ["2016_features.parquet", "2017_features.parquet"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: d / "nope.parquet", "not found"),
        (lambda d: d / "*.parquet", "matches no file"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "holds no files"),
    ],
    ids=["missing", "glob-without-match", "empty-folder"],
)
def test_no_input_is_refused(tmp_path: Path, params: Params, setup: Callable[[Path], Path], message: str) -> None:
    with pytest.raises(ScoreError, match=message):
        open_input(str(setup(tmp_path)), params)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("in.parquet", b"", r"in.parquet: the file is empty \(0 bytes\)"),
        ("in.csv", b"", r"in.csv: the file is empty \(0 bytes\)"),
        ("in.parquet", b"id,AGEP\n1,30\n", "in.parquet: not a parquet file"),
        ("in.parquet", b"PAR1 but nothing else of a parquet file", "in.parquet: unreadable parquet file"),
        ("in.txt", b"id,AGEP\n1,30\n", r"in.txt: not a parquet or CSV file"),
        ("in.json", b"{}", r"in.json: not a parquet or CSV file"),
    ],
    ids=["empty-parquet", "empty-csv", "csv-named-parquet", "damaged-parquet", "text", "json"],
)
def test_a_file_that_is_not_a_table_is_refused(
    tmp_path: Path, params: Params, name: str, content: bytes, message: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ScoreError, match=message):
        open_input(str(tmp_path / name), params)


def test_a_table_without_rows_is_refused(tmp_path: Path, params: Params) -> None:
    path = _parquet(tmp_path / "in.parquet", demo_rows(3).iloc[:0])
    with pytest.raises(ScoreError, match="holds no rows"):
        open_input(str(path), params)


def test_mixed_formats_are_refused(tmp_path: Path, params: Params) -> None:
    _parquet(tmp_path / "in" / "a.parquet", demo_rows(3))
    demo_rows(3).to_csv(tmp_path / "in" / "b.csv", index=False)
    with pytest.raises(ScoreError, match="mixes parquet and CSV"):
        open_input(str(tmp_path / "in"), params)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.drop(columns=["SCHL"]), r"missing column\(s\) \['SCHL'\] \(declared in params data\)"),
        (lambda f: f.drop(columns=["id"]), r"missing column\(s\) \['id'\] \(params base.id_column\)"),
        (lambda f: f.assign(AGEP=f["AGEP"].astype(str)), "column 'AGEP' has type .*string, but params data.numeric"),
        (
            lambda f: f.assign(SEX=pd.to_datetime(0, unit="s")),
            "column 'SEX' has type timestamp.*, but params data.categorical declares codes",
        ),
    ],
    ids=["missing-feature", "missing-id", "text-number", "timestamp-code"],
)
def test_columns_missing_or_of_an_unusable_type_are_refused(
    tmp_path: Path, params: Params, mutate: Callable[[pd.DataFrame], pd.DataFrame], message: str
) -> None:
    path = _parquet(tmp_path / "in.parquet", mutate(demo_rows(5)))
    with pytest.raises(ScoreError, match=message):
        open_input(str(path), params)


def test_a_later_file_is_checked_too(tmp_path: Path, params: Params) -> None:
    _parquet(tmp_path / "in" / "a.parquet", demo_rows(5))
    _parquet(tmp_path / "in" / "b.parquet", demo_rows(5).drop(columns=["RAC1P"]))
    with pytest.raises(ScoreError, match=r"b.parquet: missing column\(s\) \['RAC1P'\]"):
        open_input(str(tmp_path / "in"), params)


def test_files_that_disagree_on_a_type_are_refused(tmp_path: Path, params: Params) -> None:
    _parquet(tmp_path / "in" / "a.parquet", demo_rows(5))
    _parquet(tmp_path / "in" / "b.parquet", demo_rows(5).assign(id=lambda f: "x" + f["id"].astype(str)))
    with pytest.raises(ScoreError, match="disagree on column types"):
        open_input(str(tmp_path / "in"), params)


def test_batches_have_the_configured_size_across_files_and_row_groups(tmp_path: Path, params: Params) -> None:
    rows = demo_rows(12)
    _parquet(tmp_path / "in" / "a.parquet", rows.iloc[:7], row_group_size=3)
    _parquet(tmp_path / "in" / "b.parquet", rows.iloc[7:], row_group_size=2)
    source = open_input(str(tmp_path / "in"), params)
    tables = list(batches(source, rows=5))
    assert [t.num_rows for t in tables] == [5, 5, 2]
    assert [i for t in tables for i in t.column("id").to_pylist()] == rows["id"].tolist()
    # Only the id and the declared columns are read: the target and metadata stay on disk.
    assert set(tables[0].column_names) == {"id", *params.data.columns}


def test_csv_input_reads_like_parquet(tmp_path: Path, params: Params) -> None:
    rows = demo_rows(9)
    rows.to_csv(tmp_path / "in.csv", index=False)
    source = open_input(str(tmp_path / "in.csv"), params)
    assert source.format == "csv"
    (table,) = list(batches(source, rows=100))
    assert table.column("id").to_pylist() == rows["id"].tolist()


def test_fingerprint_follows_content_not_names(tmp_path: Path) -> None:
    a = _parquet(tmp_path / "a.parquet", demo_rows(5))
    b = tmp_path / "renamed.parquet"
    b.write_bytes(a.read_bytes())
    c = _parquet(tmp_path / "c.parquet", demo_rows(5, offset=5))
    assert fingerprint([a]) == fingerprint([b])
    assert fingerprint([a]) != fingerprint([c])
    assert fingerprint([a, c]) != fingerprint([c, a])
