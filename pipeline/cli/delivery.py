"""Commands of the delivery wing: registering a model, the GitOps `deploy` group, lineage, serving,
and the canary verdict that moves a challenger on or back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import (
    DEFAULT_PARAMS,
    LogUrlOpt,
    ParamsOpt,
    fail,
    known_errors,
    registry_refusals,
    verbose,
)

app = typer.Typer()
deploy_app = typer.Typer(help="Make the registry match deploy/<env>.yaml (GitOps desired state).", no_args_is_help=True)
canary_app = typer.Typer(help="Judge a canary or shadow challenger from the prediction log.", no_args_is_help=True)
app.add_typer(deploy_app, name="deploy")
app.add_typer(canary_app, name="canary")
EnvOpt = Annotated[str, typer.Option("--env", help="Environment: a name in params deploy.environments.")]


@app.command()
def register(params: ParamsOpt = DEFAULT_PARAMS) -> None:
    """Register the current run's model with lineage tags; refuses failed validation, fairness or gate."""
    refusals = registry_refusals()
    from pipeline.core.config import load_params
    from pipeline.delivery.registry import register as register_model

    try:
        config = load_params(params)
        version = register_model(params=config, params_path=params)
    except refusals as exc:
        fail(str(exc))
    typer.echo(f"registered {config.tracking.registered_model} version {version}")


@deploy_app.command("plan")
def deploy_plan(env: EnvOpt, params: ParamsOpt = DEFAULT_PARAMS) -> None:
    """Show what `deploy apply` would change in the registry (read-only)."""
    refusals = registry_refusals()
    from pipeline.core.config import load_params
    from pipeline.delivery import deploy

    try:
        _, changes = deploy.show_plan(params=load_params(params), env=env)
    except refusals as exc:
        fail(str(exc))
    typer.echo(deploy.format_changes(env=env, changes=changes, applied=False))


@deploy_app.command("apply")
def deploy_apply(env: EnvOpt, params: ParamsOpt = DEFAULT_PARAMS) -> None:
    """Move the environment's aliases and deploy tags to match its manifest; idempotent."""
    refusals = registry_refusals()
    from pipeline.core.config import load_params
    from pipeline.delivery import deploy

    try:
        result = deploy.apply(params=load_params(params), env=env)
    except refusals as exc:
        fail(str(exc))
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
    refusals = registry_refusals()
    from pipeline.core.config import load_params
    from pipeline.delivery import deploy

    if strategy not in {"none", "shadow", "canary"}:
        fail(f"--strategy must be none, shadow or canary, not {strategy!r}")
    try:
        path = deploy.propose_version(
            params=load_params(params), env=env, version=version, strategy=strategy, share=share
        )
    except refusals as exc:
        fail(str(exc))
    typer.echo(f"updated {path}" if path else f"{env}: the manifest already rolls that version out")


@deploy_app.command("smoke")
def deploy_smoke(env: EnvOpt, params: ParamsOpt = DEFAULT_PARAMS) -> None:
    """Start the service for an environment on loopback and check its answers and versions."""
    from pipeline.core.config import load_params
    from pipeline.delivery import service_smoke

    refusals: tuple[type[Exception], ...] = (*registry_refusals(), service_smoke.ServiceSmokeFailed)
    try:
        summary = service_smoke.run(params=load_params(params), env=env)
    except refusals as exc:
        fail(str(exc))
    typer.echo(f"{env}: {summary['requests']} requests answered by version(s) {', '.join(summary['versions'])}")


@app.command()
def lineage(
    version: Annotated[str, typer.Argument(help="Registered model version.")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of markdown.")] = False,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Commit, data hashes, params, lock file, run, checks and deploy history of a model version."""
    refusals = registry_refusals()
    import json

    from pipeline.core.config import load_params
    from pipeline.delivery import lineage as lineage_mod

    try:
        data = lineage_mod.collect(params=load_params(params), version=version)
    except refusals as exc:
        fail(str(exc))
    typer.echo(json.dumps(data, indent=2, sort_keys=True) if as_json else lineage_mod.render_markdown(data))


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
    from pipeline.core.config import load_params
    from pipeline.core.predlog import PredictionLogError
    from pipeline.delivery.serve import FileSource, ModelSource, RegistrySource, ServeError, run

    verbose()
    try:
        config = load_params(params)
        if model is None and env not in config.deploy.environments:
            fail(f"unknown environment {env!r}: params deploy.environments lists {list(config.deploy.environments)}")
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
    except (*known_errors(), ServeError, PredictionLogError, OSError) as exc:  # type: ignore[misc]
        fail(str(exc))


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
    from pipeline.core.config import load_params
    from pipeline.delivery.canary import CanaryInputError, analyze, summary_line
    from pipeline.delivery.deploy import DeployError

    verbose()
    try:
        outcome = analyze(
            params=load_params(params), env=env, log_url=log_url, labels_path=labels, apply=apply, out_dir=out_dir
        )
    except (*known_errors(), CanaryInputError, DeployError) as exc:  # type: ignore[misc]
        fail(str(exc), code=2)
    typer.echo(outcome.text)
    typer.echo(summary_line(outcome))
