"""Time a whole process and read its own peak memory."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessFigures:
    wall_s: float
    peak_rss_mb: float
    stdout: str


def measure_process(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> ProcessFigures:
    """Run args to completion; raise with the tail of stderr when it fails."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, cwd=cwd, env=env)
        out = proc.stdout.read() if proc.stdout is not None else b""
        # wait4 reaps this very child and gives its own peak RSS (largest process of its tree
        # that it waited for), unlike RUSAGE_CHILDREN, which keeps the maximum of all children so far.
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(args)} failed ({code}):\n{err.read().decode()[-2000:]}")
    return ProcessFigures(wall_s=wall, peak_rss_mb=usage.ru_maxrss / 1024, stdout=out.decode())
