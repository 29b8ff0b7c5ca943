"""The stages run from a shell that never activated the project's environment: dvc.yaml's
commands find the project's interpreter themselves.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN, copy_template

pytestmark = pytest.mark.e2e


def test_dvc_repro_from_a_plain_shell(tmp_path: Path) -> None:
    repo = copy_template(tmp_path / "fork", sample_rows=6000)
    (repo / ".venv").symlink_to(BIN.parent)
    # What a new terminal has: no activated environment, no project tools on PATH.
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", str(tmp_path)), "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(
        [str(BIN / "dvc"), "repro", "prepare"], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No module named" not in result.stderr
    assert (repo / "reports" / "prepare.json").is_file()
