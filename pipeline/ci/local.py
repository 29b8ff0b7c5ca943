"""`pipeline ci`: the pull-request workflow's sequence on a laptop, without GitHub.

lint -> dvc repro -> smoke -> champion fetch (base) -> gate -> report. Like the workflow's
separate jobs, a failing step does not hide the others' results: the report is always written.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.core.config import load_params

logger = logging.getLogger(__name__)


def _step(name: str, action: Callable[[], Any], failed: list[str]) -> bool:
    logger.info("--- %s", name)
    try:
        action()
    except (ValueError, RuntimeError) as exc:  # every refusal of ours is one of these
        logger.error("%s failed: %s", name, exc)
        failed.append(name)
        return False
    return True


def run(*, params_path: Path, base: str, out: Path, lint: bool = True) -> list[str]:
    """Run every step; return the names of the failed ones (empty: CI would be green)."""
    from pipeline.ci import champion, gate, report
    from pipeline.core import runner
    from pipeline.delivery import smoke

    failed: list[str] = []
    params = load_params(params_path)
    # A verdict left over from an earlier run must never be reported as this run's.
    for stale in (gate.GATE_REPORT, smoke.SMOKE_REPORT):
        (params.paths.reports / stale).unlink(missing_ok=True)
    if lint:
        problems = runner.lint()
        if problems:
            logger.error("lint failed: %s", ", ".join(problems))
            failed.append("lint")
    if _step("pipeline", runner.reproduce, failed):
        _step("smoke", lambda: smoke.run(params=params), failed)
        with tempfile.TemporaryDirectory(prefix="champion-") as tmp:
            model = Path(tmp) / "model.skops"

            def _fetch() -> None:
                champion.fetch(rev=base, out=model, default_model_path=params.paths.model.as_posix())

            def _gate() -> None:
                decision = gate.run(params=params, champion_model=model)
                if not decision["passed"]:
                    raise gate.GateFailed("; ".join(decision["reasons"]))

            if _step("champion fetch", _fetch, failed):
                _step("gate", _gate, failed)
    _step("report", lambda: report.run(params=params, out=out, base=base), failed)
    return failed
