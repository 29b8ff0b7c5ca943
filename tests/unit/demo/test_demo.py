"""The demo's pure pieces: monthly slicing, the timeline, condensed checks and plot data."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from pipeline.demo import loop, timeline, workspace
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


def test_monthly_slices_are_disjoint_seeded_and_equal() -> None:
    frame = pd.DataFrame({"id": range(1000), "x": range(1000)})
    slices = timeline.monthly_slices(frame=frame, rows_per_slice=50, seed=1)
    assert len(slices) == timeline.MONTHS
    assert {len(s) for s in slices} == {50}
    ids = pd.concat(slices)["id"]
    assert ids.is_unique
    again = timeline.monthly_slices(frame=frame, rows_per_slice=50, seed=1)
    assert all(a.equals(b) for a, b in zip(slices, again, strict=True))
    assert not slices[0].equals(timeline.monthly_slices(frame=frame, rows_per_slice=50, seed=2)[0])


def test_short_year_gives_smaller_slices() -> None:
    frame = pd.DataFrame({"id": range(30)})
    slices = timeline.monthly_slices(frame=frame, rows_per_slice=50, seed=0)
    assert sum(len(s) for s in slices) == 30
    assert timeline.period_name(year="2016", month=3) == "2016-03"


def test_timeline_is_aligned() -> None:
    events = [timeline.Event("2016Q1", "monitor", "quiet"), timeline.Event("2019Q2", "retrain", "new table")]
    lines = timeline.render_timeline(events).splitlines()
    assert lines == ["2016Q1  monitor  quiet", "2019Q2  retrain  new table"]
    assert timeline.render_timeline([]) == ""


def _summary(*, verdict: str, effects: list[float | None], perf: dict[str, Any] | None) -> dict[str, Any]:
    features = {f"f{i}": {"effect": e, "severity": 0.0 if e is None else e / 0.1} for i, e in enumerate(effects)}
    drifted = [name for name, f in features.items() if f["severity"] > 1]
    return {
        "verdict": verdict,
        "data_drift": {
            "verdict": "drift" if drifted else "no drift",
            "drifted_features": drifted,
            "features": features,
        },
        "performance": perf,
    }


def test_condense_and_plot_data() -> None:
    quiet = timeline.condense(
        quarter="2016Q1", simulated=False, summary=_summary(verdict="no drift", effects=[0.02, None], perf=None)
    )
    loud = timeline.condense(
        quarter="2019Q2",
        simulated=True,
        summary=_summary(
            verdict="drift",
            effects=[0.3, 0.01],
            perf={"verdict": "drift", "overall": {"roc_auc": 0.84, "accuracy": 0.8, "rows": 600}},
        ),
    )
    assert quiet.max_severity == pytest.approx(0.2)
    assert quiet.roc_auc is None
    assert loud.drifted == ("f0",)
    assert loud.labelled_rows == 600
    data = timeline.plot_data([quiet, loud])
    assert data["quarter"] == ["2016Q1", "2019Q2"]
    assert math.isnan(data["roc_auc"][0])
    assert data["roc_auc"][1] == 0.84
    assert data["simulated"] == [False, True]
    assert "no labels yet" in timeline.check_line(quiet)
    assert "ROC AUC 0.840 on 600 rows (drift)" in timeline.check_line(loud)
    report = timeline.report_markdown(
        events=[timeline.Event("2016Q1", "monitor", "quiet")],
        checks=[quiet, loud],
        plots={"Drift": "max_severity.png"},
        extras={"Lineage": "version 2"},
    )
    assert "![Drift](max_severity.png)" in report
    assert "| 2019Q2 | yes | drift | f0 | 3.00 | 0.840 | 0.800 |" in report
    assert "## Lineage" in report


def test_too_small_slices_are_refused(tmp_path: Any) -> None:
    with pytest.raises(workspace.DemoError, match="--rows-per-slice must be at least"):
        loop.run(source=demo_root(), out_dir=tmp_path, rows_per_slice=1, sample_rows=100)


def demo_root() -> Any:

    return REPO_ROOT


def test_the_package_face_and_the_loop_export_the_same_entry_points() -> None:
    import pipeline.demo

    assert pipeline.demo.run is loop.run
    assert pipeline.demo.DemoError is loop.DemoError is workspace.DemoError
