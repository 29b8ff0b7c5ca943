"""The package's shape: each wing imports only core/ and the wings below it, modules stay small,
and every wing says what it does.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

PACKAGE = REPO_ROOT / "pipeline"
# Lowest first. A wing may import itself and any wing of a lower floor, never one above.
FLOORS = ["core", "stages", "delivery", "ci", "monitoring", "demo", "cli"]
MAX_LINES = 420


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _wing(path: Path) -> str | None:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


def _imported_wings(path: Path) -> set[tuple[str, int]]:
    """(wing, line) for every `pipeline.<wing>` import anywhere in the module, lazy ones included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "pipeline" else [f"pipeline.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "pipeline" and len(parts) > 1:
                found.add((parts[1], node.lineno))
    return found


def test_every_module_sits_in_a_wing() -> None:
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name not in {"__init__.py", "__main__.py"}]
    assert not loose, f"modules outside a wing: {loose}"
    wings = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert wings == set(FLOORS), f"wings on disk {sorted(wings)} differ from the floors {FLOORS}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_wing_imports_upward(path: Path) -> None:
    wing = _wing(path)
    if wing is None:
        return
    upward = [
        f"line {line}: pipeline.{target}"
        for target, line in sorted(_imported_wings(path))
        if target in FLOORS and FLOORS.index(target) > FLOORS.index(wing)
    ]
    assert not upward, f"{path.relative_to(REPO_ROOT)} ({wing}) imports a wing above it: {upward}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, (
        f"{path.relative_to(REPO_ROOT)} has {lines} lines (at most {MAX_LINES}): split it by concern"
    )


@pytest.mark.parametrize("wing", FLOORS)
def test_each_wing_says_what_it_does_and_its_names_resolve(wing: str) -> None:
    package = importlib.import_module(f"pipeline.{wing}")
    assert package.__doc__, f"pipeline/{wing}/__init__.py needs a docstring"
    assert len(package.__doc__.split()) >= 8, f"pipeline/{wing}/__init__.py: say what the wing does"
    for name in getattr(package, "__all__", []):
        assert getattr(package, name) is not None, f"pipeline.{wing}.{name} does not resolve"


def test_the_upward_check_catches_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text("def f():\n    from pipeline.demo import loop\n    from pipeline import cli\n")
    assert _imported_wings(module) == {("demo", 2), ("cli", 3)}
