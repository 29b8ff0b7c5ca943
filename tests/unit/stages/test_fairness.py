from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.core.config import FairnessSection, GroupSpec
from pipeline.core.groups import UNMAPPED, group_labels
from pipeline.stages.fairness import assess, render_markdown

pytestmark = pytest.mark.unit


def _section(dp: float | None, eo: float | None, min_group_size: int = 2) -> FairnessSection:
    return FairnessSection(
        min_group_size=min_group_size,
        groups={"SEX": GroupSpec(codes={"male": ("1",), "female": ("2",)})},
        thresholds={"SEX": {"demographic_parity": dp, "equalized_odds": eo}},
    )


def test_codes_and_bins_map_to_named_groups() -> None:
    codes = GroupSpec(codes={"a": ("1", "3"), "b": ("2",)})
    assert list(group_labels(values=pd.Series(["1", "2", "3", "9"]), spec=codes)) == ["a", "b", "a", UNMAPPED]
    bins = GroupSpec(bins=(0, 16, 65, 200), labels=("child", "adult", "senior"))
    assert list(group_labels(values=pd.Series([0.0, 15.9, 16.0, 80.0]), spec=bins)) == [
        "child",
        "child",
        "adult",
        "senior",
    ]


def test_breach_is_reported_with_its_feature() -> None:
    y_true = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    y_pred = np.array([1, 1, 1, 0, 0, 0, 0, 0])  # men: all positives found; women: none
    sensitive = pd.DataFrame({"SEX": ["male"] * 4 + ["female"] * 4})
    report = assess(y_true=y_true, y_pred=y_pred, sensitive=sensitive, section=_section(0.2, 0.2))
    assert not report["passed"]
    body = report["features"]["SEX"]
    assert body["differences"]["demographic_parity"] == pytest.approx(0.75)
    assert body["differences"]["equalized_odds"] == pytest.approx(1.0)
    assert any("equalized odds" in b for b in report["breaches"])


def test_null_threshold_reports_but_does_not_judge() -> None:
    y_true = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    y_pred = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    sensitive = pd.DataFrame({"SEX": ["male"] * 4 + ["female"] * 4})
    report = assess(y_true=y_true, y_pred=y_pred, sensitive=sensitive, section=_section(None, None))
    assert report["passed"]
    assert report["features"]["SEX"]["differences"]["demographic_parity"] == pytest.approx(0.75)


def test_small_groups_are_shown_not_judged() -> None:
    y_true = np.array([1, 0, 1, 0, 1, 0])
    y_pred = np.array([1, 0, 1, 0, 0, 1])
    sensitive = pd.DataFrame({"SEX": ["male"] * 4 + ["female"] * 2})
    report = assess(y_true=y_true, y_pred=y_pred, sensitive=sensitive, section=_section(0.01, 0.01, min_group_size=3))
    groups = {g["group"]: g for g in report["features"]["SEX"]["groups"]}
    assert groups["female"]["judged"] is False
    assert report["passed"]  # one judged group: no difference to measure
    assert math.isnan(report["features"]["SEX"]["differences"]["demographic_parity"])


def test_group_without_positives_has_no_tpr() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 0])
    y_pred = np.array([0, 0, 0, 1, 0, 0])
    sensitive = pd.DataFrame({"SEX": ["male"] * 3 + ["female"] * 3})
    report = assess(y_true=y_true, y_pred=y_pred, sensitive=sensitive, section=_section(1.0, 1.0))
    male = next(g for g in report["features"]["SEX"]["groups"] if g["group"] == "male")
    assert math.isnan(male["true_positive_rate"])
    assert "n/a" in render_markdown(report)
