"""The validation report is a DVC output: the same data must give the same bytes."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from pipeline.core.config import Params
from pipeline.stages import validate


def _report(params: Params, raw: Path, out: Path) -> dict[str, bytes]:
    paths = params.paths.model_copy(update={"reports": out})
    validate.main(params=params.model_copy(update={"paths": paths}), source=raw)
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_two_runs_write_byte_identical_reports(params: Params, raw_frame: pd.DataFrame, tmp_path: Path) -> None:
    raw = tmp_path / "raw.parquet"
    raw_frame.head(3000).to_parquet(raw, index=False)
    first = _report(params, raw, tmp_path / "a")
    time.sleep(1.1)  # the pages stamp times to the microsecond: a second apart must still match
    second = _report(params, raw, tmp_path / "b")
    assert any(name.endswith(".html") for name in first)
    assert first.keys() == second.keys()
    changed = [name for name in first if first[name] != second[name]]
    assert not changed
