"""The offline demo end to end at a small scale: it must end with a promoted retrained model and
print that model's lineage.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Minutes on two cores (three full-data pipeline runs): `pytest -m slow` runs it.
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_demo_ends_with_a_promoted_retrained_model(tmp_path: Path) -> None:
    from tests.conftest import tool_env

    result = subprocess.run(
        [
            str(BIN / "pipeline"),
            "demo",
            "--out",
            str(tmp_path / "out"),
            "--workdir",
            str(tmp_path / "repo"),
            "--rows-per-slice",
            "200",
            # The whole 2015 table: on a small sample the gate's holdout shares rows with the
            # champion's training split, which favours the champion.
            "--sample-rows",
            "0",
        ],
        cwd=ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    out = result.stdout
    assert "canary verdict: promote" in out
    assert "champion is version 2" in out
    assert "retrain/drift" in out
    report = (tmp_path / "out" / "demo.md").read_text(encoding="utf-8")
    assert "## Lineage of version 2" in report
    assert (tmp_path / "out" / "max_severity.png").is_file()
    assert (tmp_path / "out" / "roc_auc.png").is_file()
    log = subprocess.run(
        ["git", "log", "--oneline", "main"], cwd=tmp_path / "repo", capture_output=True, text=True, check=True
    ).stdout
    assert "Promote version 2" in log
