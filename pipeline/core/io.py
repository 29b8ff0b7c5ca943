"""The only place that knows file formats: tables, JSON reports and model files."""

from __future__ import annotations

import hashlib
import json
import math
import re
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

PARQUET_MAGIC = b"PAR1"


class DataFileError(ValueError):
    """A data file is missing, empty or not in a format we read."""


def read_table(path: Path | str) -> pd.DataFrame:
    """Read a parquet or CSV table, refusing empty or unreadable files with a specific reason."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataFileError(f"{path}: the file is empty (0 bytes)")
    suffix = path.suffix.lower()
    with path.open("rb") as fh:
        head = fh.read(4)
    if suffix in {".parquet", ".pq"}:
        if head != PARQUET_MAGIC:
            raise DataFileError(f"{path}: not a parquet file (it does not start with the PAR1 marker)")
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several unrelated types for a damaged file
            raise DataFileError(f"{path}: unreadable parquet file: {exc}") from exc
    elif suffix == ".csv":
        try:
            frame = pd.read_csv(path, dtype_backend="numpy_nullable")
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise DataFileError(f"{path}: not a readable CSV file: {exc}") from exc
    else:
        raise DataFileError(f"{path}: unsupported file type {suffix!r}; use .parquet or .csv")
    if frame.shape[1] == 0:
        raise DataFileError(f"{path}: the table has no columns")
    return plain_dtypes(frame)


def plain_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Nullable extension dtypes (CSV readers, databases, parquet written by other tools) as the
    plain dtypes validation and the model know: ints stay ints unless a value is missing (then
    float64, as numpy has no missing int), booleans likewise (object), text as str.
    """
    out: dict[str, pd.Series] = {}
    for col in frame.columns:
        s = frame[col]
        has_na = bool(s.isna().any())
        if isinstance(s.dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_integer_dtype(s):
            out[col] = s.astype("float64") if has_na else s.astype("int64")
        elif isinstance(s.dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_float_dtype(s):
            out[col] = s.astype("float64")
        elif isinstance(s.dtype, pd.BooleanDtype):
            out[col] = s.astype(object).where(s.notna(), None) if has_na else s.astype(bool)
        elif isinstance(s.dtype, pd.StringDtype) or (
            s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) == "string"
        ):
            out[col] = s.astype(str)
        else:
            out[col] = s
    return pd.DataFrame(out, index=frame.index)


def write_table(frame: pd.DataFrame, path: Path | str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def _clean(value: Any) -> Any:
    # NaN and inf are not JSON; numpy scalars are not serialisable; rounding keeps reruns byte-identical.
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 6)
    if isinstance(value, Path):
        return value.as_posix()
    return value


def write_json(data: Any, path: Path | str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(data), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_json(path: Path | str) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataFileError(f"{path}: report not found; run the stage that writes it first") from exc
    except json.JSONDecodeError as exc:
        raise DataFileError(f"{path}: not valid JSON: {exc}") from exc


def write_text(text: str, path: Path | str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def file_md5(path: Path | str) -> str:
    """The content hash DVC 3 records for a single file, so lineage tags match dvc.lock."""
    digest = hashlib.md5(usedforsecurity=False)
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# skops refuses unknown types on load; these are the exact ones our pipelines contain that
# skops does not trust by default. Listed one by one: trusting everything would defeat skops.
SKOPS_TRUSTED_TYPES = [
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
    "functools.partial",
    "collections.OrderedDict",
    "numpy.dtype",
]


class ModelFileError(ValueError):
    """A model file is missing, damaged or holds types we do not trust."""


def save_model(model: Pipeline, path: Path | str) -> None:
    """Write the model as a skops file whose bytes depend on the model only, so the same model
    always has the same hash in dvc.lock and a rerun is a cache hit.
    """
    import skops.io as sio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(canonical_skops(sio.dumps(model)))


_SKOPS_FILE = re.compile(r'"file": "([^"]+)"')
_SKOPS_ID = re.compile(r'"__id__": (\d+)')
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def canonical_skops(data: bytes) -> bytes:
    """The same skops archive with what varies between runs taken out: skops names array files
    and memo entries after object ids (memory addresses) and stamps every entry with the time.
    Ids are renumbered in order of first appearance, which keeps shared objects shared.
    """
    import zipfile

    source = zipfile.ZipFile(BytesIO(data))
    schema = source.read("schema.json").decode("utf-8")
    files: dict[str, str] = {}
    for name in _SKOPS_FILE.findall(schema):
        files.setdefault(name, f"{len(files):05d}.{name.rsplit('.', 1)[-1]}")
    ids: dict[str, str] = {}
    for value in _SKOPS_ID.findall(schema):
        # From 1: the loader skips its memo for a falsy id.
        ids.setdefault(value, str(len(ids) + 1))
    schema = _SKOPS_FILE.sub(lambda m: f'"file": "{files[m[1]]}"', schema)
    schema = _SKOPS_ID.sub(lambda m: f'"__id__": {ids[m[1]]}', schema)
    unreferenced = sorted(set(source.namelist()) - set(files) - {"schema.json"})
    if unreferenced:
        raise ModelFileError(f"skops archive holds entries its schema does not name: {unreferenced[:3]}")
    out = BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name, payload, original in [
            ("schema.json", schema.encode("utf-8"), "schema.json"),
            *((new, source.read(old), old) for old, new in files.items()),
        ]:
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = source.getinfo(original).compress_type
            info.external_attr = 0o644 << 16
            target.writestr(info, payload)
    return out.getvalue()


def load_model(path: Path | str) -> Pipeline:
    import skops.io as sio

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found; run `dvc repro` (or `pipeline train`) first")
    try:
        untrusted = set(sio.get_untrusted_types(file=path))
    except Exception as exc:  # a damaged zip raises BadZipFile, KeyError or ValueError
        raise ModelFileError(f"{path}: not a readable skops model file: {exc}") from exc
    unexpected = sorted(untrusted - set(SKOPS_TRUSTED_TYPES))
    if unexpected:
        raise ModelFileError(f"{path}: refuses to load untrusted types {unexpected}")
    try:
        return sio.load(path, trusted=sorted(untrusted))
    except Exception as exc:
        raise ModelFileError(f"{path}: model file is damaged: {exc}") from exc
