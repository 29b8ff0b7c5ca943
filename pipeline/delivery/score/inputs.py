"""The input of `pipeline score`: a file, a folder of them or a glob, on the local disk or at any
URL fsspec reads (s3://, gs://, abfs://, file://). Every file is checked (format, emptiness,
columns, their types) before anything is written, and fingerprinted so a rerun on the same data
can be recognised; `reading` reads the rows.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pipeline.core.config import Params

if TYPE_CHECKING:
    import pyarrow as pa

PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
CSV_SUFFIXES = frozenset({".csv"})
PARQUET_MAGIC = b"PAR1"
GLOB_CHARS = frozenset("*?[")
CHUNK_BYTES = 1 << 20
URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# What an object store's listing says about a file's content, strongest first.
CONTENT_KEYS = (
    "ETag",
    "etag",
    "md5Hash",
    "md5",
    "content_md5",
    "generation",
    "version_id",
    "LastModified",
    "last_modified",
    "updated",
    "mtime",
    "created",
)


class ScoreError(ValueError):
    """Scoring cannot start or go on: the message names the file, column, model or folder (exit 2)."""


def is_url(spec: str) -> bool:
    return bool(URL.match(spec))


def filesystem(url: str) -> tuple[Any, str]:
    """(fsspec file system, path within it) for a URL; one line naming it when it cannot be used
    (an unknown protocol, or its package, such as s3fs, not installed).
    """
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError, OSError) as exc:
        raise ScoreError(f"input {url}: cannot open its file system: {_first_line(exc)}") from exc


def _is_local(fs: Any) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


@dataclass(frozen=True)
class Input:
    # Local paths, or fsspec URLs when the input was named by one.
    files: tuple[str, ...]
    format: str  # "parquet" | "csv"
    schema: pa.Schema
    # Declared columns the input lacks but may lack (nullable or audit-only): read as all missing.
    absent: tuple[str, ...]
    # Rows per file from the parquet footers; None for CSV (known only once read).
    rows: tuple[int | None, ...] = ()

    def columns(self) -> list[str]:
        """What is read: the id and every declared column present, nothing else."""
        return [str(name) for name in self.schema.names]

    @property
    def remote(self) -> bool:
        return bool(self.files) and is_url(self.files[0])

    def arrow_files(self) -> tuple[Any, list[str]]:
        """(pyarrow file system or None for the local disk, paths within it) for a pyarrow dataset."""
        if not self.remote:
            return None, list(self.files)
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        fs, _ = filesystem(self.files[0])
        paths = [filesystem(url)[1] for url in self.files]
        return (None if _is_local(fs) else PyFileSystem(FSSpecHandler(fs))), paths


def find_files(spec: str) -> tuple[Path, ...]:
    """The data files `spec` names, in a fixed order (the order rows are read and written in)."""
    path = Path(spec)
    if path.is_file():
        return (path,)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
        if not found:
            raise ScoreError(f"input folder {path} holds no files")
        return tuple(found)
    if GLOB_CHARS & set(spec):
        matched = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        if not matched:
            raise ScoreError(f"input {spec!r} matches no file")
        return tuple(matched)
    raise ScoreError(f"input {path} not found")


def find_urls(spec: str) -> tuple[str, ...]:
    """find_files for a URL: a file, a folder (prefix) or a glob in any fsspec file system."""
    fs, root = filesystem(spec)
    try:
        if GLOB_CHARS & set(root):
            found = sorted(p for p in fs.glob(root) if fs.isfile(p))
            if not found:
                raise ScoreError(f"input {spec!r} matches no file")
        elif fs.isfile(root):
            found = [root]
        elif fs.isdir(root):
            top = root.rstrip("/")
            found = sorted(p for p in fs.find(top) if not _hidden(Path(p[len(top) :].lstrip("/"))))
            if not found:
                raise ScoreError(f"input folder {spec} holds no files")
        else:
            raise ScoreError(f"input {spec} not found")
    except OSError as exc:
        raise ScoreError(f"input {spec}: cannot list it: {_first_line(exc)}") from exc
    return tuple(fs.unstrip_protocol(p) for p in found)


def _hidden(rel: Path) -> bool:
    # The usual dataset conventions: dot files and _SUCCESS-style markers are not data.
    return any(part.startswith((".", "_")) for part in rel.parts)


def _open(location: str) -> BinaryIO:
    if is_url(location):
        fs, path = filesystem(location)
        handle: BinaryIO = fs.open(path, "rb")
        return handle
    return Path(location).open("rb")


def _size(location: str) -> int:
    if is_url(location):
        fs, path = filesystem(location)
        return int(fs.size(path))
    return Path(location).stat().st_size


def file_format(files: Iterable[Path | str]) -> str:
    formats = set()
    for path in files:
        suffix = Path(str(path)).suffix.lower()
        if suffix in PARQUET_SUFFIXES:
            formats.add("parquet")
        elif suffix in CSV_SUFFIXES:
            formats.add("csv")
        else:
            raise ScoreError(f"{path}: not a parquet or CSV file (use .parquet, .pq or .csv)")
    if len(formats) > 1:
        raise ScoreError("the input mixes parquet and CSV files: score them separately")
    return formats.pop()


def file_schema(path: Path | str, fmt: str) -> tuple[pa.Schema, int | None]:
    """The file's columns and types, from its footer (parquet, with its row count) or its first
    block (CSV, whose rows are only known once read).
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    location = str(path)
    try:
        empty = _size(location) == 0
    except OSError as exc:
        raise ScoreError(f"{path}: cannot read it: {_first_line(exc)}") from exc
    if empty:
        raise ScoreError(f"{path}: the file is empty (0 bytes)")
    if fmt == "parquet":
        try:
            with _open(location) as fh:
                if fh.read(4) != PARQUET_MAGIC:
                    raise ScoreError(f"{path}: not a parquet file (it does not start with the PAR1 marker)")
                fh.seek(0)
                metadata = pq.read_metadata(fh)
            schema = metadata.schema.to_arrow_schema()
        except (pa.ArrowException, OSError) as exc:
            raise ScoreError(f"{path}: unreadable parquet file: {_first_line(exc)}") from exc
        return schema, metadata.num_rows
    try:
        with _open(location) as fh, pacsv.open_csv(fh) as reader:
            return reader.schema, None
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise ScoreError(f"{path}: not a readable CSV file: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def _kind(column: str, params: Params) -> str:
    if column == params.base.id_column:
        return "id"
    return "numeric" if column in params.data.numeric else "categorical"


def type_problem(kind: str, dtype: pa.DataType) -> str | None:
    """Why a column of this arrow type cannot be read as params declare it, or None."""
    import pyarrow as pa

    t = pa.types
    if t.is_dictionary(dtype):
        dtype = dtype.value_type
    if t.is_null(dtype):
        return None  # every value missing: judged row by row like any other null
    if kind == "numeric" and not (t.is_integer(dtype) or t.is_floating(dtype) or t.is_decimal(dtype)):
        return f"type {dtype}, but params data.numeric declares a number"
    if kind == "categorical" and not (
        t.is_string(dtype)
        or t.is_large_string(dtype)
        or t.is_integer(dtype)
        or t.is_floating(dtype)
        or t.is_boolean(dtype)
    ):
        return f"type {dtype}, but params data.categorical declares codes (text, whole numbers or booleans)"
    if kind == "id" and (t.is_nested(dtype) or t.is_binary(dtype) or t.is_large_binary(dtype)):
        return f"type {dtype}, which cannot identify a row"
    return None


def check_columns(path: Path | str, schema: pa.Schema, params: Params) -> None:
    """Refuses a missing column (unless nullable or audit-only) or one of an unusable type."""
    data = params.data
    wanted = [params.base.id_column, *data.columns]
    missing = [c for c in wanted if c not in schema.names]
    optional = {
        c for c in data.columns if c in data.audit_only or (data.numeric.get(c) or data.categorical[c]).nullable
    }
    required = [c for c in missing if c not in optional]
    if required:
        where = "params base.id_column" if required == [params.base.id_column] else "declared in params data"
        raise ScoreError(f"{path}: missing column(s) {required} ({where})")
    for column in wanted:
        if column in schema.names:
            problem = type_problem(_kind(column, params), schema.field(column).type)
            if problem:
                raise ScoreError(f"{path}: column {column!r} has {problem}")


def open_input(spec: str, params: Params) -> Input:
    """Every file checked before a row is read. An optional column some files lack is missing in
    their rows; the files must agree on every column's type (whole numbers widen to floats).
    """
    import pyarrow as pa

    files = find_urls(spec) if is_url(spec) else tuple(str(p) for p in find_files(spec))
    fmt = file_format(files)
    wanted = [params.base.id_column, *params.data.columns]
    schemas = []
    counts: list[int | None] = []
    for path in files:
        schema, count = file_schema(path, fmt)
        check_columns(path, schema, params)
        schemas.append(pa.schema([schema.field(c) for c in wanted if c in schema.names]))
        counts.append(count)
    rows = None if None in counts else sum(c for c in counts if c is not None)
    if rows == 0:
        raise ScoreError(f"input {spec} holds no rows")
    try:
        unified = pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowException, TypeError) as exc:
        raise ScoreError(f"the input files disagree on column types: {_first_line(exc)}") from exc
    absent = tuple(c for c in wanted if c not in unified.names)
    return Input(
        files=files,
        format=fmt,
        schema=pa.schema([unified.field(c) for c in wanted if c not in absent]),
        absent=absent,
        rows=tuple(counts),
    )


def fingerprint(files: Iterable[Path | str]) -> str:
    """A hash of the files' contents in reading order: renaming or moving them keeps it. A file
    in an object store is known by its listing (size and ETag, checksum or modification time):
    hashing every byte would read the whole table once more before scoring it.
    """
    digest = hashlib.sha256()
    for path in files:
        location = str(path)
        fs, inner = filesystem(location) if is_url(location) else (None, location)
        if fs is not None and not _is_local(fs):
            info = fs.info(inner)
            known = {"size": info.get("size"), **{k: str(info[k]) for k in CONTENT_KEYS if info.get(k) is not None}}
            digest.update(json.dumps(known, sort_keys=True).encode() + b"\n")
            continue
        one = hashlib.sha256()
        with _open(location) as fh:
            for chunk in iter(lambda: fh.read(CHUNK_BYTES), b""):
                one.update(chunk)
        digest.update(one.hexdigest().encode() + b"\n")
    return digest.hexdigest()
