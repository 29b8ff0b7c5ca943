"""The output folder of `pipeline score`: parts written into a hidden partial folder beside it and
renamed into place only when the `_SUCCESS.json` manifest is in, so a killed run never leaves
output that looks complete; a complete output of the same fingerprint is never written again.

    <output>/predictions/part-00000.parquet ...   one part per batch
    <output>/rejects/part-00003.parquet ...       only for batches with rejects (same number)
    <output>/_SUCCESS.json                        counts, model, input fingerprint, wall time

Part files hold no wall time: the same input, model and params give byte-identical parts.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipeline.core.config import Params
from pipeline.delivery.score.batch import (
    FLAGS,
    LABEL,
    MODEL_NAME,
    MODEL_SHA256,
    MODEL_VERSION,
    PREDICTED,
    REASON,
    ROW,
    SCORE,
    predicted_values,
)
from pipeline.delivery.score.inputs import ScoreError

if TYPE_CHECKING:
    import pyarrow as pa

MANIFEST = "_SUCCESS.json"
PREDICTIONS = "predictions"
REJECTS = "rejects"
PART = "part-{index:05d}.parquet"
PARTIAL = ".{name}.partial-"
REPLACED = ".{name}.replaced-"
# Bumped when the layout or the columns change: an older output is then a different fingerprint.
LAYOUT_VERSION = 1
COMPRESSION = "zstd"


def read_manifest(output: Path) -> dict[str, Any] | None:
    """The manifest of a complete earlier output, None when the folder is absent or empty;
    refuses a folder that holds anything else (it is not ours to replace).
    """
    if not output.exists():
        return None
    if not output.is_dir():
        raise ScoreError(f"output {output} is a file, not a folder")
    if not any(output.iterdir()):
        return None
    manifest = output / MANIFEST
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or "fingerprint" not in data:
        raise ScoreError(
            f"output folder {output} already holds files that are not a complete scoring output "
            f"(no readable {MANIFEST}); choose an empty or new folder"
        )
    return data


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clear_leftovers(output: Path) -> list[Path]:
    """Partial folders of runs that were killed (their process is gone); a live run's stays."""
    removed = []
    for prefix in (PARTIAL, REPLACED):
        for path in output.parent.glob(prefix.format(name=output.name) + "*"):
            pid = path.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


@contextlib.contextmanager
def staging(output: Path) -> Iterator[Path]:
    """A fresh partial folder beside `output` (same file system, so the final rename is atomic);
    removed on any failure or interruption.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.parent / (PARTIAL.format(name=output.name) + str(os.getpid()))
    shutil.rmtree(partial, ignore_errors=True)
    (partial / PREDICTIONS).mkdir(parents=True)
    (partial / REJECTS).mkdir()
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def commit(partial: Path, output: Path) -> None:
    """Put the complete partial folder in place of `output` (an earlier output is replaced whole)."""
    if output.exists():
        replaced = output.parent / (REPLACED.format(name=output.name) + str(os.getpid()))
        output.rename(replaced)
        partial.rename(output)
        shutil.rmtree(replaced, ignore_errors=True)
    else:
        partial.rename(output)


def _label_type(params: Params) -> pa.DataType:
    import pyarrow as pa

    value = predicted_values(params)[0]
    if isinstance(value, bool):
        return pa.bool_()
    return pa.int64() if isinstance(value, int) else pa.string()


def prediction_schema(params: Params, id_type: pa.DataType) -> pa.Schema:
    import pyarrow as pa

    data = params.data
    carried = [pa.field(c, pa.float64() if c in data.numeric else pa.string()) for c in data.audit_only]
    return pa.schema(
        [
            # An id column with no value at all (a CSV with no rows) has the null type.
            pa.field(params.base.id_column, id_type, nullable=pa.types.is_null(id_type)),
            pa.field(SCORE, pa.float64(), nullable=False),
            pa.field(LABEL, pa.int64(), nullable=False),
            pa.field(PREDICTED, _label_type(params), nullable=False),
            pa.field(FLAGS, pa.list_(pa.string()), nullable=False),
            *carried,
            pa.field(MODEL_NAME, pa.string(), nullable=False),
            pa.field(MODEL_VERSION, pa.string(), nullable=False),
            pa.field(MODEL_SHA256, pa.string(), nullable=False),
        ]
    )


def reject_schema(params: Params, id_type: pa.DataType) -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field(params.base.id_column, id_type),
            pa.field(ROW, pa.int64(), nullable=False),
            pa.field(REASON, pa.string(), nullable=False),
        ]
    )


def write_part(frame: pd.DataFrame, schema: pa.Schema, path: Path) -> None:
    """One part with a fixed schema and no pandas or time metadata: the bytes depend on the rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False).replace_schema_metadata(None)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise ScoreError(f"cannot write {path.name}: {exc}") from exc
    pq.write_table(table, path, compression=COMPRESSION)


def write_manifest(partial: Path, manifest: dict[str, Any]) -> None:
    path = partial / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def totals(*, read: int, scored: int, rejected: int, parts: dict[str, list[str]], seconds: float) -> dict[str, Any]:
    """The manifest's counts, the same for every engine."""
    return {
        "rows": {"read": read, "scored": scored, "rejected": rejected},
        "reject_share": round(rejected / read, 6) if read else 0.0,
        "parts": parts,
        "seconds": round(seconds, 3),
    }
