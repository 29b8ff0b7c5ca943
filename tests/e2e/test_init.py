"""A team's first two commands on a table unlike the demo's: `pipeline init`, then `dvc repro`
with no hand edit in between, in a temporary git repository holding the template.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.core.config import load_params
from tests.conftest import BIN, copy_template, demo_data_files, run
from tests.init_support import ID, PERIOD, SENSITIVE, TARGET, churn_table

pytestmark = pytest.mark.e2e

TABLE = "data/raw/churn.csv"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_template(tmp_path_factory.mktemp("init"), sample_rows=0)
    churn_table(rows=3000).to_csv(root / TABLE, index=False)
    init = run(
        [str(BIN / "pipeline"), "init", "--data", TABLE, "--target", TARGET, "--id", ID, "--audit-only", SENSITIVE],
        root,
    )
    assert "wrote params.yaml" in init.stdout
    run([str(BIN / "dvc"), "repro"], root)
    return root


def test_init_then_repro_validates_trains_and_judges_the_new_table(repo: Path) -> None:
    params = load_params(repo / "params.yaml")
    assert params.data.raw.as_posix() == TABLE
    assert params.data.audit_only == (SENSITIVE,)
    # The demo's absolute accuracy floor is the demo's: a canary is judged against the champion.
    assert params.deploy.guardrails.min_accuracy is None
    assert params.deploy.guardrails.max_accuracy_drop is not None
    validation = json.loads((repo / "reports/validation/validation.json").read_text(encoding="utf-8"))
    assert validation["success"] is True
    assert validation["rows"] == 3000
    assert set(validation["nulls"]) == {"age", "tenure_months", "region"}
    metrics = json.loads((repo / "reports/metrics.json").read_text(encoding="utf-8"))
    # The target follows a real signal of age, tenure and plan: a model that learnt nothing scores 0.5.
    assert metrics["roc_auc"] > 0.7
    fairness = json.loads((repo / "reports/fairness.json").read_text(encoding="utf-8"))
    assert fairness["passed"] is True
    assert set(fairness["features"]) == {SENSITIVE}
    # The audit-only attribute is measured, never learnt from.
    importance = json.loads((repo / "reports/importance.json").read_text(encoding="utf-8"))
    assert {f["feature"] for f in importance["features"]} == {"age", "tenure_months", "plan", "region"}
    card = (repo / "model_card.md").read_text(encoding="utf-8")
    assert TARGET in card
    assert (repo / "models/model.skops").is_file()


def test_init_leaves_the_demo_tables_and_writes_the_team_files(repo: Path) -> None:
    for table in demo_data_files():
        assert (repo / table).is_file(), table
    readme = (repo / "data/README.md").read_text(encoding="utf-8")
    assert f"| {PERIOD} | metadata |" in readme
    assert "TODO" in (repo / "docs/model_card_source.yaml").read_text(encoding="utf-8")
    assert "champion: null" in (repo / "deploy/production.yaml").read_text(encoding="utf-8")
