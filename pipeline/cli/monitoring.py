"""Commands of the monitoring wing: the drift check and its simulated batches, samples for human
labelling, retraining, and the drift workflow's GitHub calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import DEFAULT_PARAMS, LogUrlOpt, ParamsOpt, fail, known_errors, verbose

app = typer.Typer()
sample_app = typer.Typer(help="Logged predictions for human labelling.", no_args_is_help=True)
github_app = typer.Typer(help="The drift workflow's GitHub calls: token check and alert issue.", no_args_is_help=True)
app.add_typer(sample_app, name="sample")
app.add_typer(github_app, name="github")
TokenEnvOpt = Annotated[str, typer.Option("--token-env", help="Environment variable holding the token.")]


@app.command()
def drift(
    *,
    current: Annotated[
        Path | None,
        typer.Option(
            "--current",
            help="Production batch (parquet or CSV); or use --log-url. Default: the newest "
            "<period>_features.parquet in params retrain.production_dir.",
        ),
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
            help="Exit 0 for every verdict, data quality too (read it from GITHUB_OUTPUT or drift.json); bad input still exits 2.",
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
    """Compare a production batch with the reference: exit 0 no drift, 1 drift or data quality (features missing or infinite beyond the reference's share), 2 not enough data or bad input."""
    from pipeline.core.config import load_params
    from pipeline.monitoring.drift import EXIT_CODES, NOT_ENOUGH_DATA, DriftInputError, run
    from pipeline.monitoring.drift.check import default_batch
    from pipeline.monitoring.drift.report import one_line

    verbose()
    refusals: tuple[type[Exception], ...] = (*known_errors(), DriftInputError)
    try:
        config = load_params(params)
        # Predictions belong to one batch: with --predictions the batch must be named, not guessed.
        if current is None and log_url is None and predictions is None:
            current = default_batch(params=config)
            typer.echo(f"current batch: {current} (newest in params retrain.production_dir)")
        summary = run(
            params=config,
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
        fail(str(exc), code=EXIT_CODES[NOT_ENOUGH_DATA])
    typer.echo(one_line(summary=summary))
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
    from pipeline.monitoring.simulate import KINDS, SimulationError, write_batch
    from pipeline.monitoring.simulate import simulate as build

    if kind not in KINDS:
        fail(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}", code=2)
    refusals: tuple[type[Exception], ...] = (*known_errors(), SimulationError)
    try:
        config = load_params(params)
        frame = io.read_table(reference or config.data.raw)
        chosen_seed = config.base.seed if seed is None else seed
        batch = build(reference=frame, kind=kind, params=config, seed=chosen_seed, rows=rows)
        features_path, labels_path = write_batch(batch=batch, out_dir=out_dir, name=name or kind, params=config)
    except refusals as exc:
        fail(str(exc), code=2)
    typer.echo(f"wrote {features_path}" + (f" and {labels_path}" if labels_path else ""))


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

    verbose()
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
    except (*known_errors(), SampleError, PredictionLogError) as exc:  # type: ignore[misc]
        fail(str(exc), code=2)
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

    verbose()
    try:
        config = load_params(params)
        # The drift check's own report, when it ran first (as in the workflow).
        found = config.drift.out_dir / "drift.json"
        drift_path = drift if drift is not None else (found if found.is_file() else None)
        summary = run(params=config, params_path=params, drift_path=drift_path, champion_model=champion_model)
    except RetrainRefused as exc:
        if exit_zero_on_refusal:
            # An expected outcome for the workflow (it alerts instead), so not an error; printed
            # past fail(), so it gets fail()'s redaction here.
            from pipeline.core.redact import redact

            typer.secho(redact(f"retraining refused: {exc}"), fg=typer.colors.YELLOW, err=True)
            return
        fail(f"retraining refused: {exc}", code=EXIT_CODES[REFUSED])
    except (*known_errors(), RetrainInputError, GateInputError) as exc:  # type: ignore[misc]
        fail(str(exc), code=EXIT_CODES["bad input"])
    except runner.ReproFailed as exc:
        fail(str(exc), code=EXIT_CODES["failed"])
    gate_verdict = "passed" if summary["gate_passed"] else "FAILED"
    typer.echo(
        f"retrained on {summary['data']['new']['path']} ({summary['data']['new']['rows']} rows); gate {gate_verdict}"
    )
    typer.echo(f"pull-request body: {summary['body']}")


@github_app.command("preflight")
def github_preflight(token_env: TokenEnvOpt = "RETRAIN_TOKEN") -> None:
    """Fail with a clear message when the pull-request token secret is missing."""
    from pipeline.monitoring.github import GitHubError, require_token

    try:
        require_token(name=token_env)
    except GitHubError as exc:
        fail(str(exc))
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

    verbose()
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
    except (*known_errors(), github.GitHubError) as exc:  # type: ignore[misc]
        fail(str(exc))
    typer.echo(f"{action} issue #{number}")
