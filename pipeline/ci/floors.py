"""What judges a candidate when there is no comparable champion: the absolute floors that need
none (data validation, the fairness thresholds, each class's recall floor), and telling a
champion fitted on other input columns from one that can score the candidate's holdout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Float noise from a JSON round trip must not turn "exactly at the limit" into a failure.
EPSILON = 1e-9
VALIDATION_REPORT = Path("validation") / "validation.json"
INCOMPARABLE = "no comparable champion: the champion's features differ (missing: {missing}, new: {new})"
UNSCORABLE = "no comparable champion: the champion cannot score the candidate's holdout ({error})"
RULES = {
    "floors": "judged on absolute floors (gate.incomparable_champion: floors)",
    "fail": "refused (gate.incomparable_champion: fail)",
}


def number(value: Any) -> float | None:
    # Reports store NaN as null; both mean "not measurable" (e.g. a group without positives).
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def model_features(model: Any) -> tuple[str, ...] | None:
    """The input columns a fitted model saw, in its order; None when it does not record them."""
    # A pipeline answers for its first step; one fitted on a bare array has no names.
    names = getattr(model, "feature_names_in_", None)
    return None if names is None else tuple(str(n) for n in names)


def schema_difference(*, champion: Sequence[str], candidate: Sequence[str]) -> dict[str, list[str]] | None:
    """Pure: the champion's inputs the candidate lacks (missing) and the candidate's inputs the
    champion never saw (new); None when both are the same set (order alone is not a difference).
    """
    missing = [c for c in champion if c not in set(candidate)]
    new = [c for c in candidate if c not in set(champion)]
    return {"missing": missing, "new": new} if missing or new else None


def incomparable_line(incomparable: dict[str, Any]) -> str:
    """Pure: why there is nothing to compare with, for the summary and the PR report."""
    if "error" in incomparable:
        return UNSCORABLE.format(error=incomparable["error"])
    return INCOMPARABLE.format(
        missing=", ".join(incomparable["missing"]) or "none", new=", ".join(incomparable["new"]) or "none"
    )


def floor_checks(*, candidate: dict[str, Any], min_recall: float) -> list[dict[str, Any]]:
    """Pure: each class's recall against the absolute floor evaluate.min_recall.per_class."""
    checks = []
    for cls, body in sorted(candidate["metrics"]["per_class"].items()):
        value = number(body["recall"])
        if value is None:
            continue  # no row of this class on the holdout: nothing to judge
        ok = value >= min_recall - EPSILON
        checks.append(
            {
                "kind": "floor",
                "name": f"class {cls} recall",
                "candidate": value,
                "champion": None,
                "delta": None,
                "limit": min_recall,
                "passed": ok,
                "reason": None
                if ok
                else f"recall of class {cls} is {value:.4f}, below the floor {min_recall} (evaluate.min_recall.per_class)",
            }
        )
    return checks
