"""The demo project the template's tests run on (tests/fixtures/demo/) is the one the template
ships: while the root still runs the demo, the two must be the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import DEMO, DEMO_FILES, REPO_ROOT, demo_data_files, demo_params

pytestmark = pytest.mark.unit


def _root_table() -> str | None:
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    return str((raw.get("data") or {}).get("raw")) if isinstance(raw, dict) else None


@pytest.mark.parametrize("rel", DEMO_FILES, ids=[p.as_posix() for p in DEMO_FILES])
def test_demo_fixture_equals_the_shipped_file(rel: Path) -> None:
    demo_table = demo_params().data.raw.as_posix()
    if _root_table() != demo_table:
        pytest.skip(
            f"the root params.yaml has been retargeted (data.raw is not {demo_table}): "
            "tests/fixtures/demo/ keeps the demo project the template's tests run on"
        )
    assert (DEMO / rel).read_bytes() == (REPO_ROOT / rel).read_bytes(), (
        f"{rel} and tests/fixtures/demo/{rel} differ: the template's tests would run on a stale demo. "
        f"After changing {rel}, run: cp {rel} tests/fixtures/demo/{rel}"
    )


def test_demo_tables_are_in_place() -> None:
    # A fork keeps the demo's tables next to its own: the template's tests read them.
    missing = [p.as_posix() for p in demo_data_files() if not (REPO_ROOT / p).is_file()]
    assert not missing, f"the demo's tables are missing: {missing}"


def test_demo_fixture_holds_every_demo_file() -> None:
    held = sorted(p.relative_to(DEMO) for p in DEMO.rglob("*") if p.is_file())
    assert held == sorted(DEMO_FILES)
