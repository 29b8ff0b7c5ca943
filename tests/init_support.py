"""Helpers for the `pipeline init` tests: a table unlike the demo's, and a project folder holding
the demo's own files (params, manifests, card source, dvc.yaml) for init to rewrite.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from tests.conftest import DEMO, DEMO_FILES, REPO_ROOT

TARGET, ID, SENSITIVE, PERIOD = "churned", "customer_id", "gender", "signup_month"
PLANS = ("basic", "plus", "premium")


def churn_table(rows: int = 3000, seed: int = 7) -> pd.DataFrame:
    """Whole-number columns with missing values (as pandas Int64), text codes (one with missing
    values), a "yes"/"no" target that follows a logistic signal of age, tenure and plan (never of
    gender), a sensitive attribute and a month column.
    """
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 81, rows)
    tenure = rng.integers(0, 121, rows)
    plan = rng.choice(PLANS, rows, p=[0.5, 0.3, 0.2])
    logit = 1.5 - 0.03 * (age - 18) - 0.025 * tenure + np.select([plan == "basic", plan == "plus"], [0.8, 0.0], -0.8)
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame(
        {
            ID: np.arange(1000, 1000 + rows, dtype=np.int64),
            "age": pd.array(age, dtype="Int64"),
            "tenure_months": pd.array(tenure, dtype="Int64"),
            "plan": plan,
            "region": rng.choice(["north", "south", "east", "west"], rows),
            SENSITIVE: rng.choice(["female", "male"], rows),
            PERIOD: rng.choice([f"2024-{m:02d}" for m in range(1, 13)], rows),
            TARGET: np.where(churned, "yes", "no"),
        }
    )
    frame.loc[rng.choice(rows, rows // 30, replace=False), "age"] = pd.NA
    frame.loc[rng.choice(rows, rows // 50, replace=False), "tenure_months"] = pd.NA
    frame.loc[rng.choice(rows, rows // 60, replace=False), "region"] = None
    return frame


def demo_project(root: Path) -> Path:
    """The demo's params, manifests, card source and dvc.yaml under root, with the demo table."""
    for rel in DEMO_FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(DEMO / rel, root / rel)
    shutil.copy2(REPO_ROOT / "dvc.yaml", root / "dvc.yaml")
    return root


def snapshot(root: Path) -> dict[str, str]:
    """Every file under root by content hash: what "nothing was written" compares."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
