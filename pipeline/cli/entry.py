"""`pipeline <command>`: the one entry point. Heavy libraries are imported inside commands
so that `pipeline --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer

app = typer.Typer(
    help="Declarative GitOps MLOps template: pipeline stages, CI gate, deployment and drift.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ParamsOpt = Annotated[Path, typer.Option("--params", help="Path to params.yaml.")]
DEFAULT_PARAMS = Path("params.yaml")


def _fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


# Errors a user can fix: shown as one clear message, never as a traceback.
def _known_errors() -> tuple[type[Exception], ...]:
    from pipeline.core.config import ConfigError
    from pipeline.core.io import DataFileError, ModelFileError

    return (ConfigError, DataFileError, ModelFileError)


def _stage(name: str, params_path: Path) -> None:
    """Run one pipeline stage by module name, turning refusals into a clean exit 1."""
    import importlib
    import logging

    from pipeline.core.config import load_params

    # Our own progress at INFO; the libraries' chatter (GE logs every registry call) stays quiet.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pipeline").setLevel(logging.INFO)
    try:
        params = load_params(params_path)
        module = importlib.import_module(f"pipeline.stages.{name}")
        if name == "train":
            module.main(params=params, params_path=params_path)
        else:
            module.main(params=params)
    except (*_known_errors(), RuntimeError) as exc:  # type: ignore[misc]
        _fail(str(exc))


@app.command()
def validate(params: ParamsOpt = DEFAULT_PARAMS) -> None:
    """Check the raw data against the Great Expectations suite built from params."""
    _stage("validate", params)


@app.command()
def prepare(params: ParamsOpt = DEFAULT_PARAMS) -> None:
    """Clean and split the data; refuse under-represented groups and target leakage."""
    _stage("prepare", params)


@app.command()
def train(params: ParamsOpt = DEFAULT_PARAMS) -> None:
    """Fit the candidate estimators, keep the best, log the run to MLflow."""
    _stage("train", params)


@app.command()
def evaluate(params: ParamsOpt = DEFAULT_PARAMS) -> None:
    """Score the model on the test split: metrics, plot data, permutation importance."""
    _stage("evaluate", params)


@app.command()
def fairness(params: ParamsOpt = DEFAULT_PARAMS) -> None:
    """Group metrics with fairlearn's MetricFrame; fail on a breached threshold."""
    _stage("fairness", params)


@app.command()
def card(params: ParamsOpt = DEFAULT_PARAMS) -> None:
    """Render model_card.md from the reports."""
    _stage("card", params)


@app.command()
def run(
    params: ParamsOpt = DEFAULT_PARAMS,
    force: Annotated[bool, typer.Option("--force", "-f", help="Rerun every stage.")] = False,
) -> None:
    """The main job: reproduce the whole pipeline with DVC and print a summary."""
    from pipeline.core import runner

    try:
        runner.reproduce(force=force)
        typer.echo(runner.summary(params_path=params))
    except (*_known_errors(), runner.ReproFailed) as exc:  # type: ignore[misc]
        _fail(str(exc))


@app.command()
def lint() -> None:
    """ruff, mypy, and actionlint + zizmor over .github/workflows."""
    from pipeline.core import runner

    failed = runner.lint()
    if failed:
        _fail(f"lint failed: {', '.join(failed)}")


@app.command()
def drift(
    *,
    current: Annotated[
        Path | None, typer.Option("--current", help="Production batch (parquet or CSV); or use --log-url.")
    ] = None,
    reference: Annotated[
        Path | None, typer.Option("--reference", help="Reference data (default: params data.raw).")
    ] = None,
    predictions: Annotated[
        Path | None, typer.Option("--predictions", help="Prediction log: id and score columns.")
    ] = None,
    labels: Annotated[Path | None, typer.Option("--labels", help="Late labels: id and target columns.")] = None,
    reference_predictions: Annotated[
        Path | None,
        typer.Option("--reference-predictions", help="Scores on the reference data (default: score with the model)."),
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="Champion metrics JSON (default: params drift.performance).")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out-dir", help="Report folder (default: params drift.out_dir).")
    ] = None,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Draw per-feature distribution plots.")] = True,
    exit_zero_on_verdict: Annotated[
        bool,
        typer.Option(
            "--exit-zero-on-verdict",
            help="Exit 0 for every verdict (read it from GITHUB_OUTPUT or drift.json); bad input still exits 2.",
        ),
    ] = False,
    log_url: Annotated[
        str | None,
        typer.Option("--log-url", help="Read the batch and its predictions from this prediction log instead."),
    ] = None,
    env: Annotated[str | None, typer.Option("--env", help="With --log-url: only this environment's answers.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="With --log-url: ISO date/time or age (30d).")] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="With --log-url: ISO date/time or age; exclusive.")
    ] = None,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Compare a production batch with the reference: exit 0 no drift, 1 drift, 2 not enough data or bad input."""
    import logging

    from pipeline.core.config import load_params
    from pipeline.monitoring.drift import EXIT_CODES, DriftInputError, run

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pipeline").setLevel(logging.INFO)
    refusals: tuple[type[Exception], ...] = (*_known_errors(), DriftInputError)
    try:
        summary = run(
            params=load_params(params),
            current_path=current,
            reference_path=reference,
            predictions_path=predictions,
            labels_path=labels,
            reference_predictions_path=reference_predictions,
            baseline_path=baseline,
            out_dir=out_dir,
            plots=plots,
            log_url=log_url,
            env=env,
            since=since,
            until=until,
        )
    except refusals as exc:
        _fail(str(exc), code=EXIT_CODES["not enough data"])
        return
    typer.echo(f"drift check: {summary['verdict']}")
    # A workflow branches on the verdict in its outputs: a failed step must mean the check itself failed.
    raise typer.Exit(0 if exit_zero_on_verdict else EXIT_CODES[summary["verdict"]])


@app.command()
def simulate(
    *,
    kind: Annotated[str, typer.Option("--kind", help="none | covariate | concept | new_category.")],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Folder for <name>_features/_labels.parquet.")],
    name: Annotated[str | None, typer.Option("--name", help="File name prefix (default: the kind).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (default: params base.seed).")] = None,
    rows: Annotated[int | None, typer.Option("--rows", help="Batch size (default: params simulate.rows).")] = None,
    reference: Annotated[
        Path | None, typer.Option("--reference", help="Rows to draw from (default: params data.raw).")
    ] = None,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Write a production batch with controlled drift, built from real rows."""
    from pipeline.core import io
    from pipeline.core.config import load_params
    from pipeline.monitoring.simulate import KINDS, Kind, SimulationError, write_batch
    from pipeline.monitoring.simulate import simulate as build

    if kind not in KINDS:
        _fail(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}", code=2)
    refusals: tuple[type[Exception], ...] = (*_known_errors(), SimulationError)
    try:
        config = load_params(params)
        frame = io.read_table(reference or config.data.raw)
        chosen_seed = config.base.seed if seed is None else seed
        batch = build(reference=frame, kind=cast("Kind", kind), params=config, seed=chosen_seed, rows=rows)
        features_path, labels_path = write_batch(batch=batch, out_dir=out_dir, name=name or kind, params=config)
    except refusals as exc:
        _fail(str(exc), code=2)
        return
    typer.echo(f"wrote {features_path}" + (f" and {labels_path}" if labels_path else ""))


# ---- registry and GitOps deployment ---------------------------------------------------------

deploy_app = typer.Typer(help="Make the registry match deploy/<env>.yaml (GitOps desired state).", no_args_is_help=True)
app.add_typer(deploy_app, name="deploy")
EnvOpt = Annotated[str, typer.Option("--env", help="Environment: a name in params deploy.environments.")]


def _registry_refusals() -> tuple[type[Exception], ...]:
    import logging

    from mlflow.exceptions import MlflowException

    from pipeline.delivery.deploy import DeployError
    from pipeline.delivery.registry import RegistryError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pipeline").setLevel(logging.INFO)
    # MlflowException: an unreachable or refusing tracking server (after the fail-fast retries).
    return (*_known_errors(), RegistryError, DeployError, MlflowException)


@app.command()
def register(params: ParamsOpt = DEFAULT_PARAMS) -> None:
    """Register the current run's model with lineage tags; refuses failed validation, fairness or gate."""
    refusals = _registry_refusals()
    from pipeline.core.config import load_params
    from pipeline.delivery.registry import register as register_model

    try:
        config = load_params(params)
        version = register_model(params=config, params_path=params)
    except refusals as exc:
        _fail(str(exc))
        return
    typer.echo(f"registered {config.tracking.registered_model} version {version}")


@deploy_app.command("plan")
def deploy_plan(env: EnvOpt, params: ParamsOpt = DEFAULT_PARAMS) -> None:
    """Show what `deploy apply` would change in the registry (read-only)."""
    refusals = _registry_refusals()
    from pipeline.core.config import load_params
    from pipeline.delivery import deploy

    try:
        _, changes = deploy.show_plan(params=load_params(params), env=env)
    except refusals as exc:
        _fail(str(exc))
        return
    typer.echo(deploy.format_changes(env=env, changes=changes, applied=False))


@deploy_app.command("apply")
def deploy_apply(env: EnvOpt, params: ParamsOpt = DEFAULT_PARAMS) -> None:
    """Move the environment's aliases and deploy tags to match its manifest; idempotent."""
    refusals = _registry_refusals()
    from pipeline.core.config import load_params
    from pipeline.delivery import deploy

    try:
        result = deploy.apply(params=load_params(params), env=env)
    except refusals as exc:
        _fail(str(exc))
        return
    typer.echo(deploy.format_changes(env=env, changes=result.changes, applied=True))


@deploy_app.command("propose")
def deploy_propose(
    env: EnvOpt,
    version: Annotated[str, typer.Option("--version", help="A version number, or 'registered' (last register).")],
    strategy: Annotated[str, typer.Option("--strategy", help="none (as champion) | shadow | canary.")] = "none",
    share: Annotated[
        float | None, typer.Option("--share", help="Challenger traffic share (default: params deploy.canary_share).")
    ] = None,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Edit deploy/<env>.yaml to roll a version out, for a workflow to commit or open as a PR."""
    refusals = _registry_refusals()
    from pipeline.core.config import load_params
    from pipeline.delivery import deploy

    if strategy not in {"none", "shadow", "canary"}:
        _fail(f"--strategy must be none, shadow or canary, not {strategy!r}")
    try:
        path = deploy.propose_version(
            params=load_params(params), env=env, version=version, strategy=strategy, share=share
        )
    except refusals as exc:
        _fail(str(exc))
        return
    typer.echo(f"updated {path}" if path else f"{env}: the manifest already rolls that version out")


@deploy_app.command("smoke")
def deploy_smoke(env: EnvOpt, params: ParamsOpt = DEFAULT_PARAMS) -> None:
    """Start the service for an environment on loopback and check its answers and versions."""
    from pipeline.core.config import load_params
    from pipeline.delivery import service_smoke

    refusals: tuple[type[Exception], ...] = (*_registry_refusals(), service_smoke.ServiceSmokeFailed)
    try:
        summary = service_smoke.run(params=load_params(params), env=env)
    except refusals as exc:
        _fail(str(exc))
        return
    typer.echo(f"{env}: {summary['requests']} requests answered by version(s) {', '.join(summary['versions'])}")


@app.command()
def lineage(
    version: Annotated[str, typer.Argument(help="Registered model version.")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of markdown.")] = False,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Commit, data hashes, params, lock file, run, checks and deploy history of a model version."""
    refusals = _registry_refusals()
    import json

    from pipeline.core.config import load_params
    from pipeline.delivery import lineage as lineage_mod

    try:
        data = lineage_mod.collect(params=load_params(params), version=version)
    except refusals as exc:
        _fail(str(exc))
        return
    typer.echo(json.dumps(data, indent=2, sort_keys=True) if as_json else lineage_mod.render_markdown(data))


def _verbose() -> None:
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pipeline").setLevel(logging.INFO)


@app.command()
def smoke(
    *,
    model: Annotated[Path | None, typer.Option("--model", help="Model file (default: params paths.model).")] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Registry version of params tracking.registered_model instead.")
    ] = None,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Load the model as serving does, score a fixed sample, check output schema and one-row latency."""
    from pipeline.core.config import load_params
    from pipeline.delivery.registry import RegistryError
    from pipeline.delivery.smoke import SmokeFailed, run

    _verbose()
    if model is not None and version is not None:
        _fail("give either --model or --version, not both", code=2)
    refusals: tuple[type[Exception], ...] = (*_known_errors(), RegistryError, SmokeFailed)
    try:
        run(params=load_params(params), model_path=model, version=version)
    except refusals as exc:
        _fail(str(exc))


champion_app = typer.Typer(help="The champion model the gate compares against.", no_args_is_help=True)
app.add_typer(champion_app, name="champion")


@champion_app.command("fetch")
def champion_fetch(
    *,
    rev: Annotated[str, typer.Option("--rev", help="Base revision (branch, tag or commit).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the base revision's model file.")],
    rebuild: Annotated[
        bool, typer.Option("--rebuild/--no-rebuild", help="Rebuild from the base commit when nothing is cached.")
    ] = True,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Write the model of a base revision (DVC cache or remote, else rebuilt) for `pipeline gate`."""
    from pipeline.ci.champion import ChampionError, fetch
    from pipeline.core.config import load_params

    _verbose()
    refusals: tuple[type[Exception], ...] = (*_known_errors(), ChampionError)
    try:
        config = load_params(params)
        fetch(rev=rev, out=out, default_model_path=config.paths.model.as_posix(), rebuild=rebuild)
    except refusals as exc:
        _fail(str(exc))


@app.command()
def gate(
    *,
    champion_model: Annotated[
        Path | None,
        typer.Option("--champion-model", help="Base branch's model (from `pipeline champion fetch`)."),
    ] = None,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Candidate vs champion on the candidate's holdout; writes reports/gate.json, exit 1 on failure."""
    from pipeline.ci.gate import GateInputError, run
    from pipeline.core.config import load_params

    _verbose()
    refusals: tuple[type[Exception], ...] = (*_known_errors(), GateInputError)
    try:
        decision = run(params=load_params(params), champion_model=champion_model)
    except refusals as exc:
        _fail(str(exc), code=2)
        return
    typer.echo(f"gate {'passed' if decision['passed'] else 'FAILED'}: {decision['summary']}")
    for reason in decision["reasons"]:
        typer.echo(f"  - {reason}")
    if not decision["passed"]:
        raise typer.Exit(1)


@app.command()
def report(
    *,
    out: Annotated[Path, typer.Option("--out", help="Markdown file to write.")] = Path("reports/pr_report.md"),
    base: Annotated[str | None, typer.Option("--base", help="Base revision for the metrics and params diff.")] = None,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """The pull-request report (verdict, diffs, fairness, validation, MLflow run); also the job summary."""
    from pipeline.ci.report import run
    from pipeline.core.config import load_params

    _verbose()
    try:
        run(params=load_params(params), out=out, base=base)
    except _known_errors() as exc:
        _fail(str(exc))
    typer.echo(f"wrote {out}")


@app.command()
def ci(
    *,
    base: Annotated[str, typer.Option("--base", help="Revision whose model is the champion.")] = "HEAD",
    out: Annotated[Path, typer.Option("--out", help="Markdown report to write.")] = Path("reports/pr_report.md"),
    lint: Annotated[bool, typer.Option("--lint/--no-lint", help="Run ruff, mypy, actionlint and zizmor first.")] = True,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """The pull-request workflow locally: lint, dvc repro, smoke, champion fetch, gate, report."""
    from pipeline.ci.local import run

    _verbose()
    try:
        failed = run(params_path=params, base=base, out=out, lint=lint)
    except _known_errors() as exc:
        _fail(str(exc))
        return
    typer.echo(f"report: {out}")
    if failed:
        _fail(f"ci failed: {', '.join(failed)}")
    typer.echo("ci passed")


# ---- serving and canary analysis ------------------------------------------------------------

LogUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--log-url",
        help="Prediction log: a path, sqlite:/// or postgresql:// URL (default: PREDICTION_LOG_URL, then params serve.log.path).",
    ),
]


@app.command()
def serve(
    *,
    env: Annotated[str, typer.Option("--env", help="Environment whose registry aliases are served.")],
    host: Annotated[str | None, typer.Option("--host", help="Bind address (default: params serve.host).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default: params serve.port).")] = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="Serve this model file as the only champion, without the registry.")
    ] = None,
    log_url: LogUrlOpt = None,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Serve predictions for one environment: champion/challenger from the registry aliases."""
    import logging

    from pipeline.core.config import load_params
    from pipeline.core.predlog import PredictionLogError
    from pipeline.delivery.serve import FileSource, ModelSource, RegistrySource, ServeError, run

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pipeline").setLevel(logging.INFO)
    try:
        config = load_params(params)
        if model is None and env not in config.deploy.environments:
            _fail(f"unknown environment {env!r}: params deploy.environments lists {list(config.deploy.environments)}")
        source: ModelSource
        if model is not None:
            source = FileSource(path=model, name=config.tracking.registered_model, features=config.data.features)
        else:
            source = RegistrySource(params=config, env=env)
        run(
            params=config,
            env=env,
            host=host or config.serve.host,
            port=config.serve.port if port is None else port,
            source=source,
            log_url=log_url,
        )
    except (*_known_errors(), ServeError, PredictionLogError, OSError) as exc:  # type: ignore[misc]
        _fail(str(exc))


canary_app = typer.Typer(help="Judge a canary or shadow challenger from the prediction log.", no_args_is_help=True)
app.add_typer(canary_app, name="canary")


@canary_app.command("analyze")
def canary_analyze(
    *,
    env: Annotated[str, typer.Option("--env", help="Environment whose manifest names champion and challenger.")],
    apply: Annotated[
        bool, typer.Option("--apply", help="Edit deploy/<env>.yaml to the verdict (promote or roll back).")
    ] = False,
    labels: Annotated[
        Path | None, typer.Option("--labels", help="Late labels: id and target columns, joined by association id.")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out-dir", help="Report folder (default: params canary.report_dir).")
    ] = None,
    log_url: LogUrlOpt = None,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Write a markdown verdict (promote, hold, roll back) from the guardrails; --apply edits the manifest."""
    import logging

    from pipeline.core.config import load_params
    from pipeline.delivery.canary import CanaryInputError, analyze, summary_line
    from pipeline.delivery.deploy import DeployError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pipeline").setLevel(logging.INFO)
    try:
        outcome = analyze(
            params=load_params(params), env=env, log_url=log_url, labels_path=labels, apply=apply, out_dir=out_dir
        )
    except (*_known_errors(), CanaryInputError, DeployError) as exc:  # type: ignore[misc]
        _fail(str(exc), code=2)
        return
    typer.echo(outcome.text)
    typer.echo(summary_line(outcome))


# ---- drift follow-up: manual sampling, retraining, the drift workflow's GitHub calls, demo ---

sample_app = typer.Typer(help="Logged predictions for human labelling.", no_args_is_help=True)
app.add_typer(sample_app, name="sample")


@sample_app.command("export")
def sample_export(
    *,
    out: Annotated[Path, typer.Option("--out", help="CSV to write: id (association id), score, inputs.")],
    share: Annotated[float, typer.Option("--share", help="Share of logged answers to draw, in (0, 1].")],
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (default: params base.seed).")] = None,
    env: Annotated[str | None, typer.Option("--env", help="Only this environment's answers.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO date/time or age (30d, 12h).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO date/time or age; exclusive.")] = None,
    log_url: LogUrlOpt = None,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Export a seeded random share of logged predictions; labels come back as a file of id and target."""
    from pipeline.core.config import load_params
    from pipeline.core.predlog import PredictionLogError
    from pipeline.monitoring.sample import SampleError, export

    _verbose()
    try:
        rows = export(
            params=load_params(params),
            out=out,
            share=share,
            seed=seed,
            env=env,
            since=since,
            until=until,
            log_url=log_url,
        )
    except (*_known_errors(), SampleError, PredictionLogError) as exc:  # type: ignore[misc]
        _fail(str(exc), code=2)
        return
    typer.echo(f"wrote {len(rows)} rows to {out}")


@app.command()
def retrain(
    *,
    drift: Annotated[
        Path | None,
        typer.Option("--drift", help="drift.json whose findings explain it (default: params drift.out_dir, if there)."),
    ] = None,
    champion_model: Annotated[
        Path | None, typer.Option("--champion-model", help="Fallback champion model file for the gate.")
    ] = None,
    exit_zero_on_refusal: Annotated[
        bool,
        typer.Option(
            "--exit-zero-on-refusal",
            help="Exit 0 when too few labels (status=refused in GITHUB_OUTPUT); failures still exit 1 or 2.",
        ),
    ] = False,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """New training table from reference + labelled production data, rerun, gate, PR body: exit 0 ready, 1 failed, 2 bad input, 3 too few labels."""
    from pipeline.ci.gate import GateInputError
    from pipeline.core import runner
    from pipeline.core.config import load_params
    from pipeline.monitoring.retrain import EXIT_CODES, REFUSED, RetrainInputError, RetrainRefused, run

    _verbose()
    try:
        config = load_params(params)
        # The drift check's own report, when it ran first (as in the workflow).
        found = config.drift.out_dir / "drift.json"
        drift_path = drift if drift is not None else (found if found.is_file() else None)
        summary = run(params=config, params_path=params, drift_path=drift_path, champion_model=champion_model)
    except RetrainRefused as exc:
        if exit_zero_on_refusal:
            # An expected outcome for the workflow (it alerts instead), so not an error.
            typer.secho(f"retraining refused: {exc}", fg=typer.colors.YELLOW, err=True)
            return
        _fail(f"retraining refused: {exc}", code=EXIT_CODES[REFUSED])
        return
    except (*_known_errors(), RetrainInputError, GateInputError) as exc:  # type: ignore[misc]
        _fail(str(exc), code=EXIT_CODES["bad input"])
        return
    except runner.ReproFailed as exc:
        _fail(str(exc), code=EXIT_CODES["failed"])
        return
    gate_verdict = "passed" if summary["gate_passed"] else "FAILED"
    typer.echo(
        f"retrained on {summary['data']['new']['path']} ({summary['data']['new']['rows']} rows); gate {gate_verdict}"
    )
    typer.echo(f"pull-request body: {summary['body']}")


github_app = typer.Typer(help="The drift workflow's GitHub calls: token check and alert issue.", no_args_is_help=True)
app.add_typer(github_app, name="github")
TokenEnvOpt = Annotated[str, typer.Option("--token-env", help="Environment variable holding the token.")]


@github_app.command("preflight")
def github_preflight(token_env: TokenEnvOpt = "RETRAIN_TOKEN") -> None:
    """Fail with a clear message when the pull-request token secret is missing."""
    from pipeline.monitoring.github import GitHubError, require_token

    try:
        require_token(name=token_env)
    except GitHubError as exc:
        _fail(str(exc))
    typer.echo(f"{token_env} is set")


@github_app.command("alert")
def github_alert(
    *,
    drift: Annotated[
        Path | None, typer.Option("--drift", help="drift.json of the check (default: in params drift.out_dir).")
    ] = None,
    token_env: TokenEnvOpt = "GITHUB_TOKEN",
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Open or update the one alert issue: drift found but retraining refused (too few labels)."""
    import os

    from pipeline.core import io
    from pipeline.core.config import load_params
    from pipeline.monitoring import github
    from pipeline.monitoring.retrain import RetrainInputError, RetrainRefused, plan, why_lines

    _verbose()
    try:
        token = github.require_token(name=token_env)
        repo = os.environ.get("GITHUB_REPOSITORY", "")
        if not repo:
            raise github.GitHubError(github.ERR_NO_REPO)
        config = load_params(params)
        try:
            plan(params=config)
            reason = "retraining is possible now: rerun the workflow"
        except (RetrainRefused, RetrainInputError) as exc:
            reason = str(exc)
        findings = io.read_json(drift or config.drift.out_dir / "drift.json")
        body = github.alert_body(why=why_lines(findings), reason=reason, run_url=github.run_url())
        with github.client_for(token=token) as client:
            action, number = github.open_or_update_alert(client=client, repo=repo, body=body)
    except (*_known_errors(), github.GitHubError) as exc:  # type: ignore[misc]
        _fail(str(exc))
        return
    typer.echo(f"{action} issue #{number}")


@app.command()
def demo(
    *,
    out: Annotated[Path, typer.Option("--out", help="Folder for demo.md, its plots and the check reports.")] = Path(
        "reports/demo"
    ),
    rows_per_slice: Annotated[
        int, typer.Option("--rows-per-slice", help="Requests per monthly slice (12 slices a year).")
    ] = 400,
    sample_rows: Annotated[
        int, typer.Option("--sample-rows", help="Training sample (params data.sample_rows of the copy; 0 = all).")
    ] = 0,
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="Where the temporary repository goes (default: a new temp dir).")
    ] = None,
) -> None:
    """The whole loop offline in a temporary git repo: train, deploy, traffic, drift, retrain PR, CI, canary, promote."""
    from pipeline.demo import loop as demo_mod

    _verbose()
    try:
        result = demo_mod.run(
            source=Path.cwd(), out_dir=out, rows_per_slice=rows_per_slice, sample_rows=sample_rows, workdir=workdir
        )
    except (*_known_errors(), *_registry_refusals(), demo_mod.DemoError) as exc:  # type: ignore[misc]
        _fail(str(exc))
        return
    typer.echo(result["timeline"])
    typer.echo(result["lineage"])
    typer.echo(f"report: {result['report']}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
