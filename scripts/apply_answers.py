"""Fill params.yaml and the deploy manifests from the answers of `copier copy` (copier.yml's task).

    python scripts/apply_answers.py .copier-answers.yml

It runs once, right after the copy, with copier's own interpreter: the project's environment does
not exist yet. So it loads pipeline/core/params_edit.py, which uses the standard library only, by
file path: importing the `pipeline` package would need the package's dependencies (lazy_loader,
pydantic, ...). PyYAML is there, since copier reads copier.yml with it.

Every edit is made in memory first: a refused answer prints one line and writes nothing.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
HELPER = ROOT / "pipeline" / "core" / "params_edit.py"
PARAMS = ROOT / "params.yaml"


def load_helper() -> ModuleType:
    spec = importlib.util.spec_from_file_location("params_edit", HELPER)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {HELPER}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(path: Path) -> str:
    # Bytes, not text mode: line endings must survive as they are.
    return path.read_bytes().decode("utf-8")


def edits(*, answers_path: Path, edit: ModuleType) -> tuple[dict[Path, str], list[str]]:
    """The new text of each file to write, and notes for the team; raises on a refused answer."""
    answers: Any = yaml.safe_load(_read(answers_path))
    if not isinstance(answers, dict):
        raise edit.ParamsEditError(f"{answers_path}: expected a mapping of answers")
    params_text = _read(PARAMS)
    applied = edit.apply_answers(params_text=params_text, answers=answers)
    manifests = (yaml.safe_load(params_text).get("deploy") or {}).get("manifests")
    if not isinstance(manifests, str):
        raise edit.ParamsEditError(f"{PARAMS.name}: no deploy.manifests folder to name the model in")
    out = {PARAMS: applied.text}
    for path in sorted((ROOT / manifests).glob("*.yaml")):
        out[path] = edit.set_scalar(
            text=_read(path), key="model", value=answers["registered_model"], source=str(path.relative_to(ROOT))
        )
    return out, applied.notes


def main(*, argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/apply_answers.py ANSWERS_FILE", file=sys.stderr)
        return 2
    edit = load_helper()
    answers_path = ROOT / argv[0]
    try:
        files, notes = edits(answers_path=answers_path, edit=edit)
    except (edit.ParamsEditError, OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        print(f"answers not applied: {exc}", file=sys.stderr)
        return 2
    for path, text in files.items():
        path.write_bytes(text.encode("utf-8"))
    for note in notes:
        print(f"note: {note}")
    print(f"filled from {argv[0]}: {', '.join(str(p.relative_to(ROOT)) for p in files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(argv=sys.argv[1:]))
