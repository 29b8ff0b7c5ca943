"""A second schema, unlike the demo's wherever a team's table may differ: whole-number numeric
columns (two with missing values), a float column, text categoricals (one with missing values),
an integer-coded categorical, a "yes"/"no" target, an audit-only sensitive attribute and a
metadata column of another name. Tests use it to show the pipeline reads params, not the demo.

The target follows a known logistic signal of the model inputs, and never of `group`, so a
model trained on it must learn something real and stay within the fairness thresholds.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml

DEMO_PARAMS = Path(__file__).resolve().parent / "fixtures" / "demo" / "params.yaml"

TABLE = "data/raw/churn.parquet"
TARGET, ID, SENSITIVE, PERIOD = "churned", "id", "group", "cohort"
POSITIVE, NEGATIVE = "yes", "no"
NULL_SHARE = 0.05

PLANS = ("basic", "plus", "premium")
REGIONS = ("north", "south", "east", "west")
# Months of commitment: an integer-coded categorical (the codes mean nothing as numbers).
CONTRACTS = (1, 12, 24)
GROUPS = ("a", "b")
NEW_REGION = "central"

NUMERIC: dict[str, dict[str, Any]] = {
    "age": {"min": 18, "max": 90, "dtype": "int"},
    "tenure_months": {"min": 0, "max": 120, "dtype": "int", "nullable": True},
    "support_calls": {"min": 0, "max": 30, "dtype": "int", "nullable": True},
    "monthly_spend": {"min": 0.0, "max": 500.0},
}
CATEGORICAL: dict[str, dict[str, Any]] = {
    "plan": {"values": list(PLANS)},
    "region": {"values": list(REGIONS), "nullable": True, "unseen": "other"},
    "contract": {"values": list(CONTRACTS), "dtype": "int"},
    SENSITIVE: {"values": list(GROUPS)},
}


def _with_nulls(values: np.ndarray, rng: np.random.Generator, dtype: Literal["Int64", "str"]) -> pd.Series:
    missing = rng.random(len(values)) < NULL_SHARE
    return pd.Series(values).astype(dtype).mask(missing)


def second_schema_table(rows: int, seed: int) -> pd.DataFrame:
    """`rows` seeded rows with about 45% churners; nullable integers arrive as pandas Int64,
    the way a database or another tool's parquet hands them over.
    """
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 81, rows)
    tenure = np.minimum(rng.exponential(30, rows).astype(np.int64), 120)
    calls = np.minimum(rng.poisson(2.5, rows), 30)
    spend = np.round(rng.gamma(4.0, 30.0, rows).clip(0, 500), 2)
    plan = rng.choice(PLANS, rows, p=[0.5, 0.3, 0.2])
    contract = rng.choice(CONTRACTS, rows, p=[0.5, 0.3, 0.2])
    group = rng.choice(GROUPS, rows, p=[0.6, 0.4])
    # Regions differ a little by group (as real attributes do); churn never depends on group.
    region = np.where(
        group == "a",
        rng.choice(REGIONS, rows, p=[0.3, 0.3, 0.2, 0.2]),
        rng.choice(REGIONS, rows, p=[0.2, 0.2, 0.3, 0.3]),
    )
    logit = (
        -1.4
        + 2.6 * (contract == 1)
        - 1.6 * (contract == 24)
        + 0.45 * (calls - 2.5)
        - 0.06 * (tenure - 30)
        + 0.008 * (spend - 120)
        + 0.9 * (plan == "basic")
        - 0.5 * (plan == "premium")
        - 0.025 * (age - 50)
        + 0.3 * (region == "south")
    )
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame(
        {
            ID: rng.permutation(rows).astype(np.int64) + 100_000,
            "age": age.astype(np.int64),
            "tenure_months": _with_nulls(tenure, rng, "Int64"),
            "support_calls": _with_nulls(calls, rng, "Int64"),
            "monthly_spend": spend,
            "plan": pd.Series(plan, dtype="str"),
            "region": _with_nulls(region, rng, "str"),
            "contract": contract.astype(np.int64),
            SENSITIVE: pd.Series(group, dtype="str"),
            TARGET: pd.Series(np.where(churned, POSITIVE, NEGATIVE), dtype="str"),
            PERIOD: np.int64(2024),
        }
    )
    return frame


def second_schema_overlay(*, table: str = TABLE) -> dict[str, Any]:
    """The params sections a team changes for this table; every other section keeps the demo's."""
    return {
        "base": {"target": TARGET, "id_column": ID, "positive_label": POSITIVE, "negative_label": NEGATIVE},
        "data": {
            "raw": table,
            "sample_rows": 0,
            "metadata_columns": [PERIOD],
            "audit_only": [SENSITIVE],
            "numeric": copy.deepcopy(NUMERIC),
            "categorical": copy.deepcopy(CATEGORICAL),
        },
        "prepare": {"representation": {"group_features": [SENSITIVE]}},
        "evaluate": {"min_recall": {"per_class": 0.65, "per_group": 0.6}},
        "fairness": {
            "groups": {
                SENSITIVE: {"codes": {g: [g] for g in GROUPS}},
                "age": {"bins": [18, 30, 45, 60, 200], "labels": ["18-29", "30-44", "45-59", "60+"]},
            },
            "thresholds": {
                SENSITIVE: {"demographic_parity": 0.1, "equalized_odds": 0.1},
                "age": {"demographic_parity": None, "equalized_odds": None},
            },
        },
        "tracking": {"experiment": "churn", "registered_model": "churn"},
        "drift": {"performance": {"period_column": PERIOD}},
        "simulate": {
            "covariate": {"feature": "age", "strength": 0.3},
            "concept": {"share": 0.3, "codes": {"plan": ["basic"]}, "ranges": {"age": [25, 45]}},
            "new_category": {"column": "region", "code": NEW_REGION, "share": 0.2},
        },
        "retrain": {"reference": table, "production_dir": "data/incoming"},
    }


# Sections replaced whole: merging key by key would keep the demo's columns beside the new ones.
_REPLACED = ("numeric", "categorical", "groups", "thresholds", "codes", "ranges")


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in _REPLACED:
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def second_schema_params(*, table: str = TABLE, demo_params: Path = DEMO_PARAMS) -> dict[str, Any]:
    """The demo project's params with the second schema's sections in place."""
    demo = yaml.safe_load(demo_params.read_text(encoding="utf-8"))
    return _merge(demo, second_schema_overlay(table=table))


def second_schema_params_text(*, table: str = TABLE, demo_params: Path = DEMO_PARAMS) -> str:
    return yaml.safe_dump(second_schema_params(table=table, demo_params=demo_params), sort_keys=False)


def write_second_schema_project(root: Path, *, rows: int, seed: int, table: str = TABLE) -> Path:
    """params.yaml and the table under root (paths in params stay relative to root)."""
    (root / table).parent.mkdir(parents=True, exist_ok=True)
    second_schema_table(rows, seed).to_parquet(root / table, index=False)
    path = root / "params.yaml"
    path.write_text(second_schema_params_text(table=table), encoding="utf-8")
    return path
