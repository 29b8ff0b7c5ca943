"""`pipeline init` on a project folder: the files it writes (and the comments it keeps), and each
bad input refused with one line, exit code 2 and nothing written.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner, Result

from pipeline.cli.entry import app
from pipeline.core.config import ConfigError, load_params
from pipeline.stages.card import load_source
from pipeline.stages.init import apply
from pipeline.stages.init.render import MARKER
from tests.conftest import DEMO
from tests.init_support import ID, PERIOD, SENSITIVE, TARGET, churn_table, demo_project, snapshot

pytestmark = pytest.mark.unit

TABLE = "data/raw/churn.csv"
REPLACED = ("base", "data", "fairness", "simulate")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    demo_project(tmp_path)
    (tmp_path / "data" / "raw").mkdir(parents=True)
    churn_table(rows=1500).to_csv(tmp_path / TABLE, index=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def init(*args: str) -> Result:
    return CliRunner().invoke(app, ["init", *args])


def _comments_outside(text: str) -> list[str]:
    """Comment lines that do not sit inside a section init replaces."""
    kept, inside = [], False
    for line in text.splitlines():
        if line and not line.startswith((" ", "#")):
            inside = line.split(":")[0] in REPLACED
        if line.lstrip().startswith("#") and not (inside and line.startswith(" ")):
            kept.append(line)
    return kept


def test_init_writes_params_that_load_and_describe_the_table(project: Path) -> None:
    before = (project / "params.yaml").read_text(encoding="utf-8")
    result = init("--data", TABLE, "--target", TARGET, "--id", ID, "--audit-only", SENSITIVE)
    assert result.exit_code == 0, result.output
    params = load_params(project / "params.yaml")
    assert (params.base.target, params.base.id_column) == (TARGET, ID)
    assert (params.base.positive_label, params.base.negative_label) == ("yes", "no")
    assert params.data.raw.as_posix() == params.retrain.reference.as_posix() == TABLE
    assert params.retrain.production_dir.as_posix() == "data/incoming"
    assert params.data.numeric["age"].dtype == "int"
    assert params.data.numeric["age"].nullable
    assert params.data.numeric["age"].min <= 18
    assert params.data.numeric["age"].max >= 80
    assert params.data.categorical["region"].nullable
    assert params.data.categorical["plan"].values == ("basic", "plus", "premium")
    assert params.data.audit_only == (SENSITIVE,)
    assert SENSITIVE not in params.data.features
    assert params.data.metadata_columns == (PERIOD,)
    assert params.prepare.representation.group_features == (SENSITIVE,)
    assert params.fairness.groups[SENSITIVE].codes == {"female": ("female",), "male": ("male",)}
    # A few thousand rows: 0.10 would be within sampling noise, so the threshold is wider.
    assert params.fairness.thresholds[SENSITIVE].demographic_parity > 0.10
    assert (
        params.fairness.thresholds[SENSITIVE].equalized_odds == params.fairness.thresholds[SENSITIVE].demographic_parity
    )
    assert params.simulate.covariate.feature in params.data.numeric_features
    assert params.simulate.new_category.code not in params.data.categorical[params.simulate.new_category.column].values
    assert params.tracking.experiment == params.tracking.registered_model == "churn"
    assert params.drift.performance.period_column == PERIOD
    assert params.validation.min_rows == 750
    # Every comment outside the replaced sections is still there, in order.
    after = (project / "params.yaml").read_text(encoding="utf-8")
    assert _comments_outside(after) == _comments_outside(before)
    assert len(_comments_outside(before)) > 30
    # What it decided, one line per column, and the files it wrote.
    assert "region         input       categorical str nullable" in result.output
    assert "signup_month   metadata" in result.output
    assert "wrote params.yaml" in result.output
    assert "stay in place" in result.output


def test_init_resets_the_manifests_and_writes_the_card_skeleton_and_data_dictionary(project: Path) -> None:
    assert init("--data", TABLE, "--target", TARGET, "--id", ID, "--sensitive", SENSITIVE).exit_code == 0
    for env in ("staging", "production"):
        text = (project / "deploy" / f"{env}.yaml").read_text(encoding="utf-8")
        manifest = yaml.safe_load(text)
        assert manifest["model"] == "churn"
        assert manifest["champion"] is None
        assert (manifest["challenger"], manifest["strategy"], manifest["traffic_share"]) == (None, "none", 0.0)
        assert text.startswith("# Desired state")
    demo_card = yaml.safe_load((DEMO / "docs/model_card_source.yaml").read_text(encoding="utf-8"))
    card_text = (project / "docs/model_card_source.yaml").read_text(encoding="utf-8")
    assert list(yaml.safe_load(card_text)) == list(demo_card)
    assert "TODO" in load_source(project / "docs/model_card_source.yaml").overview
    assert "gender (female, male)" in card_text
    readme = (project / "data/README.md").read_text(encoding="utf-8")
    assert "| region | input | str | 25 |" in readme
    assert f"| {PERIOD} | metadata |" in readme
    assert (project / "data/incoming/README.md").is_file()


def test_a_second_run_for_the_same_table_keeps_the_card_and_the_deployed_versions(project: Path) -> None:
    assert init("--data", TABLE, "--target", TARGET, "--id", ID).exit_code == 0
    card = project / "docs/model_card_source.yaml"
    card.write_text(card.read_text(encoding="utf-8").replace("TODO: the team", "The churn team"), encoding="utf-8")
    manifest = project / "deploy/production.yaml"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace("champion: null", "champion: 3"), encoding="utf-8")
    again = init("--data", TABLE, "--target", TARGET, "--id", ID)
    assert again.exit_code == 0, again.output
    assert "The churn team" in card.read_text(encoding="utf-8")
    assert "kept docs/model_card_source.yaml" in again.output
    assert yaml.safe_load(manifest.read_text(encoding="utf-8"))["champion"] == 3
    assert "kept deploy/production.yaml (model churn already" in again.output
    renamed = init("--data", TABLE, "--target", TARGET, "--id", ID, "--name", "churn-v2")
    assert renamed.exit_code == 0, renamed.output
    # A new model name is a new registry entry: no version of it is deployed yet.
    deployed = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    assert (deployed["model"], deployed["champion"]) == ("churn-v2", None)
    assert "The churn team" in card.read_text(encoding="utf-8")
    assert init("--data", TABLE, "--target", TARGET, "--id", ID, "--force").exit_code == 0
    assert "The churn team" not in card.read_text(encoding="utf-8")


def test_a_project_set_up_for_another_table_needs_force(project: Path) -> None:
    assert init("--data", TABLE, "--target", TARGET, "--id", ID).exit_code == 0
    other = project / "data/raw/other.csv"
    churn_table(rows=1500, seed=3).to_csv(other, index=False)
    before = snapshot(project)
    refused = init("--data", "data/raw/other.csv", "--target", TARGET, "--id", ID)
    assert refused.exit_code == 2
    assert "params.yaml data.raw is data/raw/churn.csv, not data/raw/other.csv" in refused.output
    assert "--force" in refused.output
    assert snapshot(project) == before
    forced = init("--data", "data/raw/other.csv", "--target", TARGET, "--id", ID, "--force")
    assert forced.exit_code == 0, forced.output
    assert load_params(project / "params.yaml").data.raw.as_posix() == "data/raw/other.csv"


def test_a_small_sensitive_group_is_a_warning_with_report_only_thresholds(project: Path) -> None:
    frame = churn_table(rows=1500)
    frame[SENSITIVE] = ["x"] * 150 + ["y"] * 1350
    frame.to_csv(project / TABLE, index=False)
    result = init("--data", TABLE, "--target", TARGET, "--id", ID, "--sensitive", SENSITIVE)
    assert result.exit_code == 0, result.output
    assert "warning: fairness: 'gender' is reported, not judged" in result.output
    assert "'x' 150 rows (~90 in the train split)" in result.output
    params = load_params(project / "params.yaml")
    assert params.fairness.thresholds[SENSITIVE].demographic_parity is None
    assert params.prepare.representation.group_features == ()


def test_the_written_files_are_put_back_when_the_new_params_do_not_load(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = apply.load_params
    params_file = project / "params.yaml"

    def refuse_written(path: Path | str = "params.yaml") -> object:
        if Path(path).resolve() == params_file.resolve() and MARKER in params_file.read_text(encoding="utf-8"):
            raise ConfigError("params.yaml: refused for the test")
        return real(path)

    monkeypatch.setattr(apply, "load_params", refuse_written)
    before = snapshot(project)
    result = init("--data", TABLE, "--target", TARGET, "--id", ID)
    assert result.exit_code == 2
    assert "refused for the test" in result.output
    assert snapshot(project) == before
    assert not (project / "data/incoming").exists()


def _write(project: Path, frame: pd.DataFrame, name: str = "bad.csv") -> str:
    frame.to_csv(project / "data" / "raw" / name, index=False)
    return f"data/raw/{name}"


BAD = {
    "empty_table": (lambda f: f.iloc[:0], [], "data/raw/bad.csv: the table has no rows"),
    "no_such_target": (lambda f: f, ["--target", "label"], "no target column 'label'"),
    "one_valued_target": (lambda f: f.assign(churned="yes"), [], "target 'churned' holds a single value ('yes')"),
    "multiclass_target": (
        lambda f: f.assign(churned=["a", "b", "c"] * 500),
        [],
        "3 distinct values ('a', 'b', 'c', ...): only binary targets are supported (multiclass and regression are not)",
    ),
    "duplicated_ids": (
        lambda f: f.assign(customer_id=[7, 7, 9, 9, 9, *range(100, 1595)]),
        [],
        "id column 'customer_id' is not unique: 2 values repeat over 5 rows (e.g. 7, 9)",
    ),
    "only_target_and_id": (
        lambda f: f[[ID, TARGET]],
        [],
        "no model input besides the target and the id column (no other column)",
    ),
    "missing_sensitive": (lambda f: f, ["--sensitive", "race"], "--sensitive column 'race' is not in the table"),
    "missing_id": (lambda f: f, ["--id", "key"], "--id column 'key' is not in the table"),
    "no_id_column": (lambda f: f.rename(columns={ID: "key"}), ["--id", ""], "no --id given and no column named 'id'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_nothing_written(project: Path, case: str) -> None:
    mutate, extra, message = BAD[case]
    path = _write(project, mutate(churn_table(rows=1500)))
    before = snapshot(project)
    options = {"--target": TARGET, "--id": ID}
    for flag, value in zip(extra[::2], extra[1::2], strict=True):
        options[flag] = value
    args = [a for flag, value in options.items() if value for a in (flag, value)]
    result = init("--data", path, *args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert snapshot(project) == before


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"not parquet at all", "bad.parquet", "data/raw/bad.parquet: not a parquet file"),
        (b"", "empty.csv", "data/raw/empty.csv: the file is empty"),
        (None, "absent.csv", "data/raw/absent.csv: file not found"),
    ],
)
def test_an_unreadable_file_is_refused(project: Path, content: bytes | None, name: str, message: str) -> None:
    if content is not None:
        (project / "data/raw" / name).write_bytes(content)
    before = snapshot(project)
    result = init("--data", f"data/raw/{name}", "--target", TARGET)
    assert result.exit_code == 2
    assert message in result.output
    assert snapshot(project) == before


def test_a_table_outside_the_project_is_refused(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("elsewhere") / "t.csv"
    churn_table(rows=200).to_csv(outside, index=False)
    result = init("--data", str(outside), "--target", TARGET, "--id", ID)
    assert result.exit_code == 2
    assert "outside the project; copy it under data/raw/ first" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give either --data FILE or --query SQL"),
        (["--data", TABLE, "--query", "SELECT 1"], "give either --data FILE or --query SQL"),
        (["--query", "SELECT 1", "--name", "x"], "--query needs --url-env NAME"),
        (["--query", "SELECT 1", "--url-env", "lower-case", "--name", "x"], "--query needs --url-env NAME"),
        (["--query", "SELECT 1", "--url-env", "INIT_DB"], "--query needs --name"),
        (["--query", "SELECT 1", "--url-env", "INIT_UNSET_URL", "--name", "x"], "INIT_UNSET_URL: the environment"),
        (["--data", TABLE, "--name", "__"], "give a name with letters or digits"),
    ],
)
def test_bad_source_options_are_refused(project: Path, args: list[str], message: str) -> None:
    before = snapshot(project)
    result = init(*args, "--target", TARGET, "--id", ID)
    assert result.exit_code == 2
    assert message in result.output
    assert snapshot(project) == before


def test_the_earlier_data_readme_is_carried_along_under_its_own_heading(project: Path) -> None:
    readme = project / "data/README.md"
    readme.write_text("# Demo data\n\n## Provenance and licence\nApache-2.0\n```bash\n# a shell comment\n```\n")
    assert init("--data", TABLE, "--target", TARGET, "--id", ID).exit_code == 0
    first = readme.read_text(encoding="utf-8")
    assert first.startswith("# Data: churn")
    assert "## Before `pipeline init`\n\n## Demo data\n\n### Provenance and licence\nApache-2.0\n" in first
    assert "\n# a shell comment\n" in first
    churn_table(rows=1500, seed=3).to_csv(project / "data/raw/other.csv", index=False)
    assert init("--data", "data/raw/other.csv", "--target", TARGET, "--id", ID, "--force").exit_code == 0
    second = readme.read_text(encoding="utf-8")
    assert second.startswith("# Data: other")
    assert second.count("## Before `pipeline init`") == 1
    assert second.endswith(first[first.index("## Before") :])
