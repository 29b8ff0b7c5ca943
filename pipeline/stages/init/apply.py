"""`pipeline init`: read the table (a file or a query), decide, then write every data-dependent file
of the project all at once. Everything is rendered and checked in memory first; files are
replaced atomically and all put back as they were if the written params.yaml does not load.
"""

from __future__ import annotations

import importlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from pipeline.core import params_edit
from pipeline.core.config import ConfigError, Params, label_key, load_params
from pipeline.core.config_keys import missing_from_table
from pipeline.stages.init import render
from pipeline.stages.init.inspect import InitError, Options, inspect_table
from pipeline.stages.init.plan import Plan, Settings, make_plan, slug

# The table the template ships with: a project still pointing at it has not been set up yet.
SHIPPED_TABLE = "data/raw/employment_2015.parquet"
INCOMING = "data/incoming"
DATA_README = "data/README.md"
URL_ENV = re.compile(r"^[A-Z_][A-Z0-9_]*$")


# Floors that a model ignoring a class or a group fails whatever the table; the team raises them
# once it knows what its model reaches (README "Your own data").
INIT_MIN_RECALL_CLASS, INIT_MIN_RECALL_GROUP = 0.5, 0.4
UNCERTAIN_HALF_BAND = 0.05


def decision_threshold(plan: Plan) -> float:
    """The table's positive share: at that threshold a model predicts each class about as often
    as it occurs, so per-class recall floors mean the same on a rare target as on a balanced one.
    """
    target = plan.schema.target
    share = target.counts[label_key(target.positive)] / max(sum(target.counts.values()), 1)
    return round(min(max(share, 0.05), 0.95), 2)


@dataclass(frozen=True)
class Request:
    options: Options
    data: Path | None = None
    query: str | None = None
    url_env: str | None = None
    name: str | None = None
    force: bool = False


@dataclass
class Result:
    plan: Plan
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def summary(self) -> list[str]:
        return render.summary(plan=self.plan, written=self.written, kept=self.kept)


def read_query(*, query: str, url_env: str) -> pd.DataFrame:
    """Run the query once, the way the ingest stage will; the URL never reaches a message."""
    from pipeline.core.io import plain_dtypes

    ingest = importlib.import_module("pipeline.stages.ingest")
    url = os.environ.get(url_env, "")
    if not url.strip():
        raise InitError(f"--url-env {url_env}: the environment variable is not set (it holds the database URL)")
    try:
        frame = ingest.fetch(ingest.parse_url(url, env=url_env), query, env=url_env, raw=url)
    except ingest.IngestError as exc:
        raise InitError(f"--query: {exc}") from None
    return plain_dtypes(frame)


def _inside(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError as exc:
        raise InitError(f"{path}: outside the project; copy it under data/raw/ first") from exc


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve() or (a.is_file() and b.is_file() and os.path.samefile(a, b))


def check_not_initialised(*, params: Params, raw: str, root: Path, force: bool) -> bool:
    """True when init starts over (a new table); refuses a project set up for another table."""
    current = params.data.raw.as_posix()
    if _same_file(root / current, root / raw):
        return False
    exists = (root / current).is_file() or (root / f"{current}.dvc").is_file()
    if current != SHIPPED_TABLE and exists and not force:
        raise InitError(
            f"params.yaml data.raw is {current}, not {raw}: this project is set up for another table; "
            "pass --force to start over with the new one"
        )
    return True


def _card_keys(path: Path) -> dict[str, bool]:
    """The current card source's keys (True: a list), so the skeleton keeps its shape."""
    try:
        current = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        current = None
    if not isinstance(current, dict) or not current:
        return {k: k in {"intended_use", "out_of_scope", "ethical_considerations", "caveats"} for k in render.CARD_TODO}
    return {str(k): isinstance(v, list) for k, v in current.items()}


def params_text(*, text: str, plan: Plan, params: Params, raw: str, request: Request) -> str:
    sections = {
        "base": render.base_section(plan=plan, params=params),
        "data": render.data_section(plan=plan, params=params, raw=raw, query=request.query, url_env=request.url_env),
        "fairness": render.fairness_section(plan=plan, params=params),
        "simulate": render.simulate_section(plan=plan, params=params),
    }
    for key, body in sections.items():
        text = params_edit.replace_section(text=text, key=key, body=body)
    text = params_edit.set_value(
        text=text, key="prepare.representation.group_features", value=render.flow(plan.group_features)
    )
    text = params_edit.set_value(text=text, key="validation.min_rows", value=str(plan.min_rows))
    text = params_edit.set_scalar(text=text, key="tracking.experiment", value=plan.name)
    text = params_edit.set_scalar(text=text, key="tracking.registered_model", value=plan.name)
    text = params_edit.set_scalar(text=text, key="retrain.reference", value=raw)
    text = params_edit.set_scalar(text=text, key="retrain.production_dir", value=INCOMING)
    # A retraining needs as many labelled production rows as the first training is allowed to
    # have: sized by the team's table, not the demo's.
    labelled = min(params.retrain.min_labelled_rows, plan.min_rows)
    text = params_edit.set_value(text=text, key="retrain.min_labelled_rows", value=str(labelled))
    threshold = decision_threshold(plan)
    text = params_edit.set_value(text=text, key="evaluate.threshold", value=str(threshold))
    band = f"[{max(threshold - UNCERTAIN_HALF_BAND, 0):.2f}, {min(threshold + UNCERTAIN_HALF_BAND, 1):.2f}]"
    text = params_edit.set_value(text=text, key="serve.humility.uncertain_band", value=band)
    text = params_edit.set_value(text=text, key="evaluate.min_recall.per_class", value=str(INIT_MIN_RECALL_CLASS))
    text = params_edit.set_value(text=text, key="evaluate.min_recall.per_group", value=str(INIT_MIN_RECALL_GROUP))
    # An absolute accuracy floor depends on the table and the threshold: a canary is judged
    # against the champion on the same traffic (max_accuracy_drop) until the team sets one.
    text = params_edit.set_value(text=text, key="deploy.guardrails.min_accuracy", value="null")
    if plan.period_column is not None:
        text = params_edit.set_scalar(text=text, key="drift.performance.period_column", value=plan.period_column)
    return text


def manifest_text(*, text: str, model: str, source: str) -> str:
    """A manifest for a new registry: this model, no version yet (no champion, no challenger)."""
    text = params_edit.set_scalar(text=text, key="model", value=model, source=source)
    text = params_edit.set_value(text=text, key="champion", value="null", source=source)
    present = set(params_edit.keys_under(text=text, key=""))
    for key, value in (
        ("champion_sha256", "null"),
        ("challenger", "null"),
        ("challenger_sha256", "null"),
        ("strategy", "none"),
        ("traffic_share", "0.0"),
    ):
        if key in present:
            text = params_edit.set_value(text=text, key=key, value=value, source=source)
    return text


def _manifest_model(text: str) -> object:
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return loaded.get("model") if isinstance(loaded, dict) else None


def _check_params(*, text: str, frame_columns: list[str], source: str) -> None:
    """Load the new params from a scratch copy: a problem stops init before anything is written."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "params.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            params = load_params(path)
        except ConfigError as exc:
            raise InitError(
                f"the params init would write do not load: {str(exc).replace(str(path), 'params.yaml')}"
            ) from exc
    missing = missing_from_table(params, frame_columns)
    if missing:
        raise InitError(f"{source}: {'; '.join(missing)}")


def render_files(*, request: Request, root: Path, params_path: Path) -> tuple[Result, dict[Path, str]]:
    """Everything init would write, checked; nothing touches the disk."""
    params = load_params(params_path)
    options = request.options
    if (request.data is None) == (request.query is None):
        raise InitError("give either --data FILE or --query SQL (with --url-env), not both and not neither")
    if request.query is not None:
        if not request.url_env or not URL_ENV.fullmatch(request.url_env):
            raise InitError(
                "--query needs --url-env NAME: the environment variable holding the database URL (A-Z, 0-9, _)"
            )
        if not request.name:
            raise InitError("--query needs --name: it names the snapshot data/raw/<name>.parquet and the model")
        name = slug(request.name)
        raw, source = f"data/raw/{name}.parquet", f"--query ({request.url_env})"
    else:
        assert request.data is not None
        raw = source = _inside(request.data, root)
        name = slug(request.name or request.data.stem)
    if not name:
        raise InitError(f"--name {request.name or ''!r}: give a name with letters or digits (the model's name)")
    fresh = check_not_initialised(params=params, raw=raw, root=root, force=request.force)
    if request.query is not None:
        assert request.url_env is not None
        frame = read_query(query=request.query, url_env=request.url_env)
    else:
        from pipeline.core.io import read_table

        frame = read_table(root / raw)
    frame.columns = [str(c) for c in frame.columns]
    schema = inspect_table(frame=frame, options=options, source=source)
    sensitive = list(dict.fromkeys([*options.sensitive, *options.audit_only]))
    plan = make_plan(frame=frame, schema=schema, sensitive=sensitive, settings=Settings.from_params(params), name=name)

    files: dict[Path, str] = {}
    current = params_path.read_bytes().decode("utf-8")
    files[params_path] = params_text(text=current, plan=plan, params=params, raw=raw, request=request)
    _check_params(text=files[params_path], frame_columns=list(frame.columns), source=source)
    result = Result(plan=plan)
    # A second run for the same table keeps what the team has done since the first: the card
    # text, and the versions deployed under the same model name.
    rerun = not fresh and render.MARKER in current and not request.force
    for env in params.deploy.environments:
        path = root / params.deploy.manifests / f"{env}.yaml"
        if not path.is_file():
            continue
        rel, text = path.relative_to(root).as_posix(), path.read_bytes().decode("utf-8")
        if rerun and _manifest_model(text) == name:
            result.kept.append(f"{rel} (model {name} already; --force resets its versions)")
        else:
            files[path] = manifest_text(text=text, model=name, source=rel)
    card = root / params.card.source
    if not rerun or not card.is_file():
        files[card] = render.card_source(plan=plan, keys=_card_keys(card))
    else:
        result.kept.append(f"{params.card.source.as_posix()} (same table as before; --force rewrites it)")
    readme = root / DATA_README
    previous = readme.read_bytes().decode("utf-8") if readme.is_file() else None
    files[readme] = render.data_readme(plan=plan, raw=raw, query=request.query, previous=previous)
    incoming = root / INCOMING / "README.md"
    if not incoming.is_file():
        files[incoming] = render.INCOMING_README
    result.written = [p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p) for p in files]
    return result, files


def _write_atomically(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content.encode("utf-8"))
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


def _restore(before: dict[Path, bytes | None], created: list[Path]) -> None:
    for path, content in before.items():
        if content is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(content)
    for folder in sorted(created, key=lambda p: len(p.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _new_folders(paths: list[Path]) -> list[Path]:
    """Folders a write would create (so a restore can remove them again)."""
    return sorted({p for path in paths for p in path.parents if not p.exists()})


def run(*, request: Request, root: Path = Path("."), params_path: Path | None = None) -> Result:
    """Decide, then write; on any failure after the first write every file is put back."""
    params_path = params_path or root / "params.yaml"
    result, files = render_files(request=request, root=root, params_path=params_path)
    ingest = importlib.import_module("pipeline.stages.ingest") if request.query else None
    dvc_yaml = root / "dvc.yaml"
    targets = [*files, dvc_yaml] if ingest is not None else list(files)
    before = {p: (p.read_bytes() if p.is_file() else None) for p in targets}
    created = _new_folders(targets)
    try:
        for path, content in files.items():
            _write_atomically(path, content)
        if ingest is not None:
            if ingest.add_ingest_stage(dvc_yaml):
                result.written.append("dvc.yaml (the ingest stage)")
            else:
                result.kept.append("dvc.yaml (it already has the ingest stage)")
        load_params(params_path)
    except BaseException as exc:
        _restore(before, created)
        # The ingest stage refuses a dvc.yaml it cannot extend safely: one line, like any bad input.
        if ingest is not None and isinstance(exc, ingest.IngestError):
            raise InitError(str(exc)) from None
        raise
    return result
