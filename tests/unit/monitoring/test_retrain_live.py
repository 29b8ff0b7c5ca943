"""Retraining from the prediction log into a DVC remote: the labelled answers of the window (one
per association id, inputs that pass validation, only the declared columns, labels mapped through
the target's two values, ids optionally pseudonymised), the table tracked by a `.dvc` pointer and
pushed before anything else moves, and every refusal a single line that changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core import dvc_remote, predlog
from pipeline.core.config import Params, load_params
from pipeline.monitoring import retrain
from pipeline.monitoring.retrain.live import snapshot_frame
from pipeline.monitoring.retrain.run import _store
from tests import live_support as live
from tests.conftest import DEMO_PARAMS, REPO_ROOT
from tests.conftest_servers import free_port

pytestmark = pytest.mark.unit

NOW = time.time()
DAY = live.DAY
REFERENCE_ROWS = 2000
ROWS = 1500
MIN_LABELLED = 1000


@pytest.fixture(autouse=True)
def _no_live_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PREDICTION_LOG_URL", "DVC_REMOTE_URL", "GITHUB_OUTPUT", "RETRAIN_ID_SALT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def month(params: Params) -> pd.DataFrame:
    return live.demo_month(REPO_ROOT, params, year=2016, rows=ROWS, seed=7)


def _set(text: str, key: str, value: str) -> str:
    return re.sub(rf"(?m)^(\s+{key}:).*$", rf"\g<1> {value}", text, count=1)


def _project(root: Path, params: Params, raw_frame: pd.DataFrame, *, remote: str | Path | None, **keys: str) -> Path:
    """params.yaml (min_labelled_rows lowered, plus `keys`), a small reference, dvc.yaml, git + DVC."""
    text = _set(DEMO_PARAMS.read_text(encoding="utf-8"), "min_labelled_rows", str(MIN_LABELLED))
    for key, value in keys.items():
        text = _set(text, key, value)
    (root / "params.yaml").write_text(text, encoding="utf-8")
    reference = root / params.retrain.reference
    reference.parent.mkdir(parents=True)
    raw_frame.iloc[:REFERENCE_ROWS].to_parquet(reference, index=False)
    shutil.copy2(REPO_ROOT / "dvc.yaml", root / "dvc.yaml")
    return live.git_dvc_project(root, remote=remote)


def _answers_with_labels(url: str, params: Params, month: pd.DataFrame, *, label_ids: list[str] | None = None) -> None:
    times = live.spread(start=NOW - 20 * DAY, end=NOW - 60, count=len(month))
    live.write_log(url, live.answers(month, params, times=times, scores=live.scores_for(month, params, seed=1)))
    records = live.labels(month, params, observed=NOW - 3600, ids=label_ids)
    predlog.write_labels(url=url, records=records, duplicates="refuse", now=NOW)


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    folder = tmp_path / "remote"
    folder.mkdir()
    return folder


@pytest.fixture
def project(
    tmp_path: Path,
    params: Params,
    raw_frame: pd.DataFrame,
    month: pd.DataFrame,
    remote: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    _project(root, params, raw_frame, remote=remote)
    _answers_with_labels(str(tmp_path / "log.db"), params, month)
    monkeypatch.chdir(root)
    return root


def _fake_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    # The pipeline rerun and the gate are the end-to-end test's; here only what retraining writes.
    decision = {"passed": True, "summary": "stub", "reasons": [], "champion_source": {"kind": "file"}}
    monkeypatch.setattr("pipeline.ci.gate.run", lambda **_: {**decision, "candidate": {}, "champion": {}, "deltas": {}})


# --------------------------------------------------------------------------- the rows


def test_the_window_gives_one_valid_labelled_row_per_id_and_declared_columns_only(
    params: Params, raw_frame: pd.DataFrame, month: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = str(tmp_path / "log.db")
    times = live.spread(start=NOW - 10 * DAY, end=NOW, count=ROWS)
    scores = live.scores_for(month, params, seed=2)
    broken = month.iloc[:30].copy()
    broken.loc[broken.index[:20], "AGEP"] = 500.0  # outside params data.numeric's range
    broken.loc[broken.index[20:], "SCHL"] = "99"  # a code the list lacks (scored as `other` at most)
    good = month.iloc[30:]
    rows = live.answers(broken, params, times=times[:30], scores=scores[:30])
    # Inputs the service never declared must not reach the training table.
    rows += live.answers(good, params, times=times[30:], scores=scores[30:], extra={"email": "a@b.c"})
    # The shadow model's row of the same requests: one row per association id all the same.
    rows += live.answers(good.iloc[:100], params, times=times[30:130], scores=scores[30:130], role="shadow")
    live.write_log(url, rows)
    predlog.write_labels(url=url, records=live.labels(month, params, observed=NOW - 60), duplicates="refuse", now=NOW)
    (tmp_path / "data" / "raw").mkdir(parents=True)
    raw_frame.iloc[:REFERENCE_ROWS].to_parquet(tmp_path / params.retrain.reference, index=False)
    monkeypatch.chdir(tmp_path)
    plan = retrain.plan_from_log(params=_min_labelled(params, MIN_LABELLED), url=url, now=NOW)
    reference = pd.read_parquet(tmp_path / params.retrain.reference)
    assert plan.log["labelled"] == ROWS
    assert plan.log["invalid"] == 30
    assert plan.labelled_rows == ROWS - 30
    frame = plan.frame
    assert list(frame.columns) == list(reference.columns)
    assert "email" not in frame.columns
    assert len(frame) == REFERENCE_ROWS + ROWS - 30
    production = frame.iloc[REFERENCE_ROWS:].set_index(params.base.id_column)
    assert production.index.dtype == reference[params.base.id_column].dtype
    assert production.index.is_unique
    assert not set(broken[params.base.id_column]) & set(production.index)
    expected = good.set_index(params.base.id_column)
    assert production.loc[expected.index, params.base.target].tolist() == expected[params.base.target].tolist()
    assert production.loc[expected.index, "AGEP"].tolist() == expected["AGEP"].astype(float).tolist()
    assert production.loc[expected.index, "SCHL"].tolist() == expected["SCHL"].astype(str).tolist()
    assert production["year"].isna().all()
    # The reference's rows whole; its metadata column holds nulls now, so ints read as floats.
    pd.testing.assert_frame_equal(frame.iloc[:REFERENCE_ROWS], reference, check_dtype=False)


def test_the_table_passes_the_suite_the_log_rows_would_fail(
    params: Params, raw_frame: pd.DataFrame, month: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.monitoring.retrain.live import production_rows
    from pipeline.stages.validate import run_suite

    url = str(tmp_path / "log.db")
    broken = month.copy()
    broken.loc[broken.index[:5], "AGEP"] = 121.0
    broken.loc[broken.index[5:9], "RAC1P"] = "0"
    times = live.spread(start=NOW - 5 * DAY, end=NOW, count=ROWS)
    live.write_log(url, live.answers(broken, params, times=times, scores=live.scores_for(month, params, seed=3)))
    predlog.write_labels(url=url, records=live.labels(month, params, observed=NOW - 60), duplicates="refuse", now=NOW)
    (tmp_path / "data" / "raw").mkdir(parents=True)
    raw_frame.iloc[:REFERENCE_ROWS].to_parquet(tmp_path / params.retrain.reference, index=False)
    monkeypatch.chdir(tmp_path)
    small = params.model_copy(update={"validation": params.validation.model_copy(update={"min_rows": 1})})
    # The same suite without the target, on every logged row: the broken ones fail it.
    logged = predlog.labelled_predictions(url, now=NOW)
    every_row, _ = production_rows(labelled=logged, params=params.model_copy(update={"data": _no_checks(params)}))
    as_table = every_row.rename(columns={"association_id": params.base.id_column}).drop(columns=["label"])
    outcome = run_suite(frame=as_table.assign(year=2016), params=small, with_target=False)
    assert not outcome.success
    assert {f.column for f in outcome.failures} == {"AGEP", "RAC1P"}
    # The training table retraining writes passes the full suite the pipeline's first stage runs.
    plan = retrain.plan_from_log(params=_min_labelled(small, MIN_LABELLED), url=url, now=NOW)
    assert plan.log["invalid"] == 9
    assert run_suite(frame=plan.frame, params=small, with_target=True).success


def _no_checks(params: Params) -> Any:
    """params.data with every range and code list wide open: nothing is left out."""
    data = params.data
    numeric = {c: s.model_copy(update={"min": -1e9, "max": 1e9}) for c, s in data.numeric.items()}
    categorical = {c: s.model_copy(update={"values": (*s.values, "0", "99")}) for c, s in data.categorical.items()}
    return data.model_copy(update={"numeric": numeric, "categorical": categorical})


def _min_labelled(params: Params, rows: int) -> Params:
    return params.model_copy(update={"retrain": params.retrain.model_copy(update={"min_labelled_rows": rows})})


def test_labels_are_mapped_through_the_targets_two_values(params: Params) -> None:
    base = params.base.model_copy(update={"positive_label": "yes", "negative_label": "no"})
    text = params.model_copy(update={"base": base})
    reference = pd.DataFrame({"id": ["r1", "r2"], "AGEP": [30.0, 40.0], "SCHL": ["1", "2"], "employed": ["no", "yes"]})
    rows = pd.DataFrame({"association_id": ["a", "b"], "label": [1, 0], "AGEP": [50.0, 60.0], "SCHL": ["3", "4"]})
    rows = rows.assign(**{c: "1" for c in params.data.categorical if c != "SCHL"})
    frame = snapshot_frame(reference=reference, rows=rows, params=text, key=None, source="ref")
    assert frame["employed"].tolist() == ["no", "yes", "yes", "no"]
    assert frame["id"].tolist() == ["r1", "r2", "a", "b"]
    assert list(frame.columns) == list(reference.columns)


def test_pseudonymised_ids_are_keyed_hashes_and_need_the_key(
    params: Params, raw_frame: pd.DataFrame, month: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = str(tmp_path / "log.db")
    _answers_with_labels(url, params, month)
    (tmp_path / "data" / "raw").mkdir(parents=True)
    raw_frame.iloc[:REFERENCE_ROWS].to_parquet(tmp_path / params.retrain.reference, index=False)
    monkeypatch.chdir(tmp_path)
    policy = params.retrain.model_copy(update={"pseudonymise": True, "min_labelled_rows": MIN_LABELLED})
    hashed = params.model_copy(update={"retrain": policy})
    with pytest.raises(retrain.RetrainInputError, match=r"RETRAIN_ID_SALT .*is not set"):
        retrain.plan_from_log(params=hashed, url=url, now=NOW)
    monkeypatch.setenv("RETRAIN_ID_SALT", "s3cret")
    plan = retrain.plan_from_log(params=hashed, url=url, now=NOW)
    ids = plan.frame[params.base.id_column]
    first = str(month[params.base.id_column].iloc[0])
    assert hmac.new(b"s3cret", first.encode(), hashlib.sha256).hexdigest() in set(ids)
    assert first not in set(ids)
    assert (
        ids.iloc[:REFERENCE_ROWS].tolist()
        == raw_frame[params.base.id_column].iloc[:REFERENCE_ROWS].astype(str).tolist()
    )
    assert plan.log["pseudonymised"] is True


def test_the_retrain_window_never_reads_past_the_retention(
    params: Params, raw_frame: pd.DataFrame, month: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    days = params.serve.log.retention_days
    url = str(tmp_path / "log.db")
    old, recent = month.iloc[:500], month.iloc[500:]
    scores = live.scores_for(month, params, seed=4)
    live.write_log(url, live.answers(old, params, times=[NOW - (days + 5) * DAY] * len(old), scores=scores[:500]))
    live.write_log(url, live.answers(recent, params, times=[NOW - DAY] * len(recent), scores=scores[500:]))
    predlog.write_labels(url=url, records=live.labels(month, params, observed=NOW - 60), duplicates="refuse", now=NOW)
    (tmp_path / "data" / "raw").mkdir(parents=True)
    raw_frame.iloc[:REFERENCE_ROWS].to_parquet(tmp_path / params.retrain.reference, index=False)
    monkeypatch.chdir(tmp_path)
    policy = params.retrain.model_copy(update={"window": "400d", "min_labelled_rows": 10})
    plan = retrain.plan_from_log(params=params.model_copy(update={"retrain": policy}), url=url, now=NOW)
    assert plan.labelled_rows == len(recent)
    assert plan.log["since"] == predlog.iso(NOW - days * DAY)


def test_counting_labels_matched_or_not_stops_at_the_retention(params: Params, tmp_path: Path) -> None:
    url = str(tmp_path / "log.db")
    live.write_log(url, [])
    days = params.serve.log.retention_days
    old = [predlog.LabelRecord(f"old-{i}", 1, "1", NOW - (days + 1) * DAY, "import:x") for i in range(3)]
    new = [predlog.LabelRecord(f"new-{i}", 0, "0", NOW - DAY, "feedback") for i in range(5)]
    predlog.write_labels(url=url, records=old, duplicates="refuse", now=NOW - (days + 1) * DAY)
    predlog.write_labels(url=url, records=new, duplicates="refuse", now=NOW - DAY)
    assert predlog.label_count(url, now=NOW) == 8
    assert predlog.label_count(url, retention_days=days, now=NOW) == 5
    assert predlog.label_count(url, since=NOW - 2 * DAY, now=NOW) == 5
    assert predlog.label_count(url, since=NOW - 0.5 * DAY, now=NOW) == 0


# --------------------------------------------------------------------------- DVC


def test_the_table_is_uploaded_tracked_by_a_pointer_and_pushed(
    project: Path, params: Params, remote: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = pd.read_parquet(params.retrain.reference).iloc[:300]
    path = Path("data/raw") / retrain.content_name(frame)
    storage = _store(frame=frame, path=path, remote="storage")
    pointer = Path(f"{path}.dvc")
    assert storage == {"pointer": pointer.as_posix(), "remote": "storage"}
    md5 = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    assert f"md5: {md5}" in pointer.read_text(encoding="utf-8")
    assert (remote / "files" / "md5" / md5[:2] / md5[2:]).is_file()
    assert f"/{path.name}" in Path("data/raw/.gitignore").read_text(encoding="utf-8").splitlines()
    assert live.run(["git", "check-ignore", "-q", path.as_posix()], project).returncode == 0
    text = _set(Path("params.yaml").read_text(encoding="utf-8"), "raw", path.as_posix())
    Path("params.yaml").write_text(text, encoding="utf-8")
    output = project.parent / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    result = CliRunner().invoke(app, ["retrain", "paths"])
    assert result.exit_code == 0, result.output
    # No dvc.lock nor reports yet in this project: only what exists is listed.
    listed = ["params.yaml", pointer.as_posix(), "data/raw/.gitignore"]
    assert result.output.split() == listed
    # The workflow's add-paths: the same list as one multi-line step output.
    written = output.read_text(encoding="utf-8").splitlines()
    assert written[0].startswith("paths<<")
    assert written[1:] == [*listed, written[0].removeprefix("paths<<")]


@pytest.mark.parametrize("table", ["new", "already in git"])
def test_a_failed_push_leaves_the_tree_as_it_was(
    project: Path, params: Params, monkeypatch: pytest.MonkeyPatch, table: str
) -> None:
    frame = pd.read_parquet(params.retrain.reference).iloc[:300]
    path = Path("data/raw") / retrain.content_name(frame)
    if table == "already in git":
        # The demo path without a remote committed this very table before.
        frame.to_parquet(path, index=False)
        live.must(["git", "add", "--", path.as_posix()], project)
        live.must(["git", "commit", "-qm", "a table in git"], project)
    before = live.tree(project)

    def refuse(*_: object, **__: object) -> None:
        raise dvc_remote.RemoteError("dvc push to 'storage' failed: denied")

    monkeypatch.setattr(dvc_remote, "push", refuse)
    with pytest.raises(dvc_remote.RemoteError, match="denied"):
        _store(frame=frame, path=path, remote="storage")
    assert live.tree(project) == before
    assert live.run(["git", "status", "--porcelain"], project).stdout == ""


# --------------------------------------------------------------------------- the whole run, gate stubbed


def test_run_from_the_log_commits_a_pointer_never_the_table(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_gate(monkeypatch)
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    params_path = Path("params.yaml")
    summary = retrain.run(
        params=load_params(params_path), params_path=params_path, reproduce=False, log_url=str(tmp_path / "log.db")
    )
    new = Path(summary["data"]["new"]["path"])
    assert summary["labelled_rows"] == ROWS
    assert summary["storage"] == {"pointer": f"{new}.dvc", "remote": "storage"}
    assert load_params(params_path).data.raw == new
    assert summary["paths"][0] == "params.yaml"
    assert f"{new}.dvc" in summary["paths"]
    assert not [p for p in summary["paths"] if p.endswith(".parquet")]
    assert Path("reports/retrain/paths.txt").read_text(encoding="utf-8").split() == summary["paths"]
    written = output.read_text(encoding="utf-8")
    assert written.startswith("status=ready\nbody=reports/retrain/pr_body.md\npaths<<")
    assert f"\n{new}.dvc\n" in written
    body = Path(summary["body"]).read_text(encoding="utf-8")
    assert f"`{new}.dvc`" in body
    assert "labelled answers of env `production` in the prediction log" in body


def test_the_demo_path_without_a_remote_keeps_its_table_in_the_tree(
    tmp_path: Path, params: Params, raw_frame: pd.DataFrame, month: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "demo"
    root.mkdir()
    production = root / params.retrain.production_dir
    production.mkdir(parents=True)
    month.drop(columns=[params.base.target]).to_parquet(production / "2016_features.parquet", index=False)
    month[[params.base.id_column, params.base.target]].to_parquet(production / "2016_labels.parquet", index=False)
    _project(root, params, raw_frame, remote=None)
    monkeypatch.chdir(root)
    _fake_gate(monkeypatch)
    summary = retrain.run(params=load_params("params.yaml"), params_path=Path("params.yaml"), reproduce=False)
    assert summary["storage"] is None
    assert summary["data"]["new"]["path"] in summary["paths"]
    assert not Path(summary["data"]["new"]["path"] + ".dvc").exists()


def test_the_demo_path_with_a_remote_also_goes_to_dvc(
    tmp_path: Path,
    params: Params,
    raw_frame: pd.DataFrame,
    month: pd.DataFrame,
    remote: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "demo"
    root.mkdir()
    production = root / params.retrain.production_dir
    production.mkdir(parents=True)
    month.drop(columns=[params.base.target]).to_parquet(production / "2016_features.parquet", index=False)
    month[[params.base.id_column, params.base.target]].to_parquet(production / "2016_labels.parquet", index=False)
    _project(root, params, raw_frame, remote=remote)
    monkeypatch.chdir(root)
    _fake_gate(monkeypatch)
    summary = retrain.run(params=load_params("params.yaml"), params_path=Path("params.yaml"), reproduce=False)
    assert summary["storage"]["pointer"] == summary["data"]["new"]["path"] + ".dvc"
    assert summary["data"]["new"]["path"] not in summary["paths"]


# --------------------------------------------------------------------------- refusals: one line, nothing changed


def _refusal(case: str, root: Path, params: Params, raw_frame: pd.DataFrame, month: pd.DataFrame) -> Path:
    url = root.parent / "log.db"
    remotes: dict[str, str | Path | None] = {
        "no remote": None,
        "remote unreachable": f"http://127.0.0.1:{free_port()}/dvc",
        "remote folder missing": root.parent / "nowhere",
    }
    keys = {"pseudonymise": "true"} if case == "salt unset" else {}
    if case == "too few labelled rows":
        keys["min_labelled_rows"] = str(ROWS + 1)
    remote = remotes.get(case, root.parent / "remote")
    if isinstance(remote, Path) and case != "remote folder missing":
        remote.mkdir(exist_ok=True)
    _project(root, params, raw_frame, remote=remote, **keys)
    label_ids = [f"crm-{i}" for i in range(len(month))] if case == "labels match nothing" else None
    _answers_with_labels(str(url), params, month, label_ids=label_ids)
    return url


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("no remote", 2, "no DVC remote is configured: add one with `dvc remote add -d storage <url>`"),
        ("remote folder missing", 2, "DVC remote 'storage' points at"),
        ("remote unreachable", 2, "DVC remote 'storage' cannot take the training table"),
        ("too few labelled rows", 3, f"retraining refused: only {ROWS} labelled production rows"),
        ("labels match nothing", 2, f"{ROWS} ids were labelled since"),
        ("salt unset", 2, "retrain.pseudonymise is on but RETRAIN_ID_SALT"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    case: str,
    code: int,
    message: str,
    tmp_path: Path,
    params: Params,
    raw_frame: pd.DataFrame,
    month: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "project"
    root.mkdir()
    url = _refusal(case, root, params, raw_frame, month)
    monkeypatch.chdir(root)
    monkeypatch.setenv("PREDICTION_LOG_URL", str(url))
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    before = live.tree(root)
    remote_before = live.tree(tmp_path / "remote") if (tmp_path / "remote").is_dir() else {}
    result = CliRunner().invoke(app, ["retrain"])
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert live.tree(root) == before
    if (tmp_path / "remote").is_dir():
        assert live.tree(tmp_path / "remote") == remote_before
    assert live.run(["git", "status", "--porcelain"], root).stdout == ""
    if code == 3:
        assert output.read_text(encoding="utf-8") == "status=refused\n"
    else:
        assert not output.exists()


def test_too_few_labelled_rows_with_exit_zero_on_refusal_says_refused(
    tmp_path: Path, params: Params, raw_frame: pd.DataFrame, month: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "project"
    root.mkdir()
    url = _refusal("too few labelled rows", root, params, raw_frame, month)
    monkeypatch.chdir(root)
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    before = live.tree(root)
    result = CliRunner().invoke(app, ["retrain", "--exit-zero-on-refusal", "--log-url", str(url)])
    assert result.exit_code == 0, result.output
    assert f"retraining refused: only {ROWS} labelled production rows" in result.output
    assert output.read_text(encoding="utf-8") == "status=refused\n"
    assert live.tree(root) == before


def test_period_labels_in_the_targets_own_values_keep_them(params: Params) -> None:
    # A fork whose target is "yes"/"no": the labels file holds them, and so must the new table.
    base = params.base.model_copy(update={"positive_label": "yes", "negative_label": "no"})
    features = pd.DataFrame({"id": [1, 2, 3], "AGEP": [30.0, 40.0, 50.0]})
    labels = pd.DataFrame({"id": [1, 2, 3], "employed": ["yes", "no", None]})
    joined = retrain.labelled_batch(features=features, labels=labels, base=base, names=("f", "l"))
    assert joined["employed"].tolist() == ["yes", "no"]
    numbers = retrain.labelled_batch(
        features=features, labels=labels.assign(employed=[1.0, 0.0, None]), base=params.base, names=("f", "l")
    )
    assert numbers["employed"].tolist() == [1, 0]
    with pytest.raises(retrain.RetrainInputError, match=r"l: employed must hold .* \('yes' / 'no'\), found \['1'\]"):
        retrain.labelled_batch(features=features, labels=labels.assign(employed=[1, 1, 1]), base=base, names=("f", "l"))
