"""The team's trained model (models/ after `make run`) against the team's own floors, on the
prepared test split: every class and every group the model must not ignore.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sklearn.metrics import recall_score

from pipeline.core.config import Params
from pipeline.core.groups import sensitive_frame
from tests.project.support import ROOT, Outputs, current_outputs, project_params

pytestmark = pytest.mark.project


@pytest.fixture(scope="module")
def params() -> Params:
    return project_params()


@pytest.fixture(scope="module")
def outputs(params: Params) -> Outputs:
    return current_outputs(params)


@pytest.fixture(scope="module")
def predicted(outputs: Outputs, params: Params) -> pd.Series:
    """The model's labels at params evaluate.threshold, row for row with the test split."""
    proba = outputs.model.predict_proba(outputs.test[list(params.data.features)])[:, 1]  # type: ignore[attr-defined]
    return pd.Series((proba >= params.evaluate.threshold).astype(int), index=outputs.test.index)


def test_minimum_recall_per_class(outputs: Outputs, predicted: pd.Series, params: Params) -> None:
    y = outputs.test[params.base.target]
    recalls = recall_score(y, predicted, labels=[0, 1], average=None)
    floor = params.evaluate.min_recall.per_class
    by_class = {cls: round(float(r), 3) for cls, r in enumerate(recalls)}
    assert min(recalls) >= floor, f"recall per class {by_class}, below evaluate.min_recall.per_class {floor}"


def test_minimum_recall_per_group(outputs: Outputs, predicted: pd.Series, params: Params) -> None:
    features = params.prepare.representation.group_features
    if not features:
        pytest.skip("params prepare.representation.group_features is empty: no group to judge")
    test, floor = outputs.test, params.evaluate.min_recall.per_group
    groups = sensitive_frame(frame=test, groups={f: params.fairness.groups[f] for f in features})
    positives = test[params.base.target] == 1
    low, judged = [], 0
    for feature in features:
        for group, index in groups[positives].groupby(feature).groups.items():
            if len(index) < params.fairness.min_group_size:
                continue
            judged += 1
            recall = float(predicted.loc[index].mean())
            if recall < floor:
                low.append(f"{feature}={group}: recall {recall:.3f} on {len(index)} positives")
    assert judged, f"no group of {list(features)} has fairness.min_group_size positives in the test split"
    assert not low, f"below evaluate.min_recall.per_group {floor}: {low}"


def test_reports_describe_this_model(outputs: Outputs, predicted: pd.Series, params: Params) -> None:
    reports = ROOT / params.paths.reports
    card = ROOT / params.card.output
    wanted = [reports / n for n in ("validation/validation.json", "prepare.json", "metrics.json", "fairness.json")]
    missing = [str(p.relative_to(ROOT)) for p in (*wanted, card) if not p.is_file()]
    assert not missing, f"missing after `make run`: {missing}"

    def read(name: str) -> dict:
        return json.loads((reports / name).read_text(encoding="utf-8"))

    validation = read("validation/validation.json")
    assert validation["success"]
    assert Path(validation["source"]) == params.data.raw
    assert set(read("fairness.json")["features"]) == set(params.fairness.groups)
    metrics = read("metrics.json")
    assert metrics["rows"] == len(outputs.test)
    y = outputs.test[params.base.target]
    recalls = recall_score(y, predicted, labels=[0, 1], average=None)
    for cls, recall in enumerate(recalls):
        assert metrics["per_class"][str(cls)]["recall"] == pytest.approx(recall, abs=1e-5), cls
    title = yaml.safe_load((ROOT / params.card.source).read_text(encoding="utf-8"))["title"]
    assert title in card.read_text(encoding="utf-8")
