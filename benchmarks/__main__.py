"""`python -m benchmarks [pipeline|drift|serve ...]`: run benchmarks against their peers and
write benchmarks/results/<name>.json. With no name, all of them.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SUITES = {
    "pipeline": "benchmarks.pipeline_bench",
    "drift": "benchmarks.drift_bench",
    "serve": "benchmarks.serve_bench",
    # 10M rows by default; `python -m benchmarks.score_bench --rows N` for another size.
    "score": "benchmarks.score_bench",
}


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # One line per readiness poll would bury the figures.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    names = argv or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {sorted(SUITES)}", file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    for name in names:
        module = importlib.import_module(SUITES[name])
        figures = module.run()
        (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2, sort_keys=True, default=str) + "\n")
        print(module.render(figures) if hasattr(module, "render") else json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
