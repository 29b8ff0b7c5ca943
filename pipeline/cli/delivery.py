"""Commands of the delivery wing: registering a model, the GitOps `deploy` group, lineage, serving,
and the canary verdict that moves a challenger on or back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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
# A store that is missing, locked, corrupt or unreachable: not the input's fault, so not exit 1.
STORE_FAULT_EXIT = 2


@contextmanager
def registry_errors(*, env: str | None = None, extra: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """One line for whatever a registry command meets: a refusal (exit 1); a store fault naming the
    store, credentials masked (exit 2); SIGTERM during an apply (exit 128 + signal).
    """
    import logging

    refusals = (*registry_refusals(), *extra)
    # urllib3 logs every retry against an unreachable server, MLflow every failed SQL statement
    # with its traceback; the one error line below says what matters.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    from pipeline.delivery.lock import ERR_TERMINATED, ApplyTerminated
    from pipeline.delivery.registry_client import RegistryUnavailable, current_uri, store_fault

    try:
        yield
    except typer.Exit:
        raise
    except ApplyTerminated as exc:
        fail(ERR_TERMINATED.format(env=env, signal=exc), code=128 + exc.signum)
    except RegistryUnavailable as exc:
        fail(str(exc), code=STORE_FAULT_EXIT)
    except Exception as exc:
        fault = store_fault(exc, uri=current_uri())
        if fault is not None:
            fail(str(fault), code=STORE_FAULT_EXIT)
        if isinstance(exc, refusals):
            fail(str(exc))
        raise


@app.command()
def register(params: ParamsOpt = DEFAULT_PARAMS) -> None:
    """Register the current run's model with lineage tags; refuses failed validation, fairness or gate."""
    with registry_errors():
        from pipeline.core.config import load_params
        from pipeline.delivery.registry import register as register_model

        config = load_params(params)
        version = register_model(params=config, params_path=params)
    typer.echo(f"registered {config.tracking.registered_model} version {version}")


@deploy_app.command("plan")
def deploy_plan(env: EnvOpt, params: ParamsOpt = DEFAULT_PARAMS) -> None:
    """Show what `deploy apply` would change in the registry (read-only)."""
    with registry_errors(env=env):
        from pipeline.core.config import load_params
        from pipeline.delivery import deploy

        _, changes = deploy.show_plan(params=load_params(params), env=env)
    typer.echo(deploy.format_changes(env=env, changes=changes, applied=False))


@deploy_app.command("apply")
def deploy_apply(env: EnvOpt, params: ParamsOpt = DEFAULT_PARAMS) -> None:
    """Move the environment's aliases and deploy tags to match its manifest; idempotent."""
    with registry_errors(env=env):
        from pipeline.core.config import load_params
        from pipeline.delivery import deploy

        result = deploy.apply(params=load_params(params), env=env)
    typer.echo(deploy.format_changes(env=env, changes=result.changes, applied=True))


@deploy_app.command("unlock")
def deploy_unlock(env: EnvOpt, params: ParamsOpt = DEFAULT_PARAMS) -> None:
    """Remove the environment's deploy lock, left by an apply that died on another machine."""
    with registry_errors(env=env):
        from pipeline.core.config import load_params
        from pipeline.delivery.lock import describe_owner, unlock

        removed = unlock(params=load_params(params), env=env)
    typer.echo(f"{env}: removed the deploy lock {describe_owner(removed)}" if removed else f"{env}: no lock is held")


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
    """Edit deploy/<env>.yaml to roll a version out, pinned to its artifact hash, for a workflow to
    commit or open as a PR; refuses a version the registry does not have.
    """
    if strategy not in {"none", "shadow", "canary"}:
        fail(f"--strategy must be none, shadow or canary, not {strategy!r}")
    with registry_errors(env=env):
        from pipeline.core.config import load_params
        from pipeline.delivery.proposal import propose_version

        path = propose_version(params=load_params(params), env=env, version=version, strategy=strategy, share=share)
    typer.echo(f"updated {path}" if path else f"{env}: the manifest already rolls that version out")


@deploy_app.command("smoke")
def deploy_smoke(env: EnvOpt, params: ParamsOpt = DEFAULT_PARAMS) -> None:
    """Start the service for an environment on loopback and check its answers and versions."""
    from pipeline.core.config import load_params
    from pipeline.delivery import service_smoke

    with registry_errors(env=env, extra=(service_smoke.ServiceSmokeFailed,)):
        summary = service_smoke.run(params=load_params(params), env=env)
    typer.echo(f"{env}: {summary['requests']} requests answered by version(s) {', '.join(summary['versions'])}")


@app.command()
def lineage(
    version: Annotated[str, typer.Argument(help="Registered model version.")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of markdown.")] = False,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Commit, data hashes, params, lock file, run, checks and deploy history of a model version."""
    import json

    from pipeline.core.redact import redact

    with registry_errors():
        from pipeline.core.config import load_params
        from pipeline.delivery import lineage as lineage_mod

        data = lineage_mod.collect(params=load_params(params), version=version)
    # Registry tags and run errors are copied verbatim; any URL in them must lose its password.
    text = json.dumps(data, indent=2, sort_keys=True) if as_json else lineage_mod.render_markdown(data)
    typer.echo(redact(text))


@app.command()
def score(
    *,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="A registry alias (staging-champion; champion = params gate.champion_env's), a version "
            "number, or a .skops model file.",
        ),
    ],
    input_spec: Annotated[
        str, typer.Option("--input", help="A parquet or CSV file, a folder of them, or a quoted glob.")
    ],
    output: Annotated[Path, typer.Option("--output", help="Folder for predictions/, rejects/ and _SUCCESS.json.")],
    rejects_fail: Annotated[
        bool,
        typer.Option(
            "--rejects-fail/--no-rejects-fail",
            help="Exit 1 when the rejected share of rows is above params score.max_reject_share.",
        ),
    ] = True,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an earlier scoring output of another input, model or params.")
    ] = False,
    engine: Annotated[
        str | None,
        typer.Option("--engine", help="local (this process) or dask (a cluster); default: params score.engine."),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Dask scheduler address (default: DASK_SCHEDULER_ADDRESS, else a local cluster sized to the machine).",
        ),
    ] = None,
    log: Annotated[
        bool | None,
        typer.Option(
            "--log/--no-log",
            help="Append the scored rows to the prediction log as env batch (default: params score.log).",
        ),
    ] = None,
    log_url: LogUrlOpt = None,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Score a table in batches: predictions and rejects as parquet parts; a rerun is a no-op."""
    from pipeline.core.config import load_params
    from pipeline.core.predlog import PredictionLogError
    from pipeline.delivery.registry_client import RegistryError
    from pipeline.delivery.score import ScoreError, interrupt_on_sigterm, summary
    from pipeline.delivery.score import score as score_table

    verbose()
    interrupt_on_sigterm()
    try:
        config = load_params(params)
        outcome = score_table(
            params=config,
            model_ref=model,
            input_spec=input_spec,
            output=output,
            force=force,
            engine=engine,
            scheduler=scheduler,
            log=log,
            log_url=log_url,
        )
    except (*known_errors(), ScoreError, RegistryError, PredictionLogError, OSError) as exc:  # type: ignore[misc]
        fail(str(exc), code=2)
    typer.echo(summary(outcome, output=output))
    if rejects_fail and outcome.too_many_rejects(config):
        fail(
            f"{outcome.reject_share():.2%} of the rows were rejected (see {output}/rejects), above params "
            f"score.max_reject_share {config.score.max_reject_share:.2%}"
        )


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
    from pipeline.delivery.registry_client import RegistryError, RegistryUnavailable
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
    except RegistryUnavailable as exc:
        fail(str(exc), code=STORE_FAULT_EXIT)
    except (*known_errors(), ServeError, RegistryError, PredictionLogError, OSError) as exc:  # type: ignore[misc]
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
    from pipeline.delivery.manifest import DeployError

    verbose()
    try:
        outcome = analyze(
            params=load_params(params), env=env, log_url=log_url, labels_path=labels, apply=apply, out_dir=out_dir
        )
    except (*known_errors(), CanaryInputError, DeployError) as exc:  # type: ignore[misc]
        fail(str(exc), code=2)
    typer.echo(outcome.text)
    typer.echo(summary_line(outcome))
