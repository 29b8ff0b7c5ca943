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
# `pipeline retrain` retrains; `pipeline retrain paths` lists what its pull request commits.
retrain_app = typer.Typer()
app.add_typer(sample_app, name="sample")
app.add_typer(github_app, name="github")
app.add_typer(retrain_app, name="retrain")
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
        typer.Option(
            "--log-url",
            help="Read the batch, its predictions and their labels from this prediction log "
            "(default without --current: PREDICTION_LOG_URL when set).",
        ),
    ] = None,
    env: Annotated[
        str | None, typer.Option("--env", help="From the log: this environment's answers (default: params drift.env).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="From the log: ISO date/time or age (default: params drift.window, e.g. 7d)."),
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="From the log: ISO date/time or age; exclusive.")] = None,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Compare a production batch with the reference: exit 0 no drift, 1 drift or data quality (features missing or infinite beyond the reference's share), 2 not enough data or bad input, 3 no production data at all."""
    import os

    from pipeline.core.config import load_params
    from pipeline.core.predlog import LOG_URL_ENV
    from pipeline.monitoring.drift import EXIT_CODES, NOT_ENOUGH_DATA, DriftInputError, run
    from pipeline.monitoring.drift.check import default_batch
    from pipeline.monitoring.drift.quality import EXIT_NO_DATA, NoProductionData
    from pipeline.monitoring.drift.report import one_line, write_no_data_output

    verbose()
    refusals: tuple[type[Exception], ...] = (*known_errors(), DriftInputError)
    try:
        config = load_params(params)
        if current is None and predictions is None and log_url is None:
            # A team's production data is in its log; the shipped files are the demo's fallback.
            log_url = os.environ.get(LOG_URL_ENV) or None
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
    except NoProductionData as exc:
        # A monitoring gap, not a broken input: the workflow opens an alert on verdict=no data.
        if github_output := os.environ.get("GITHUB_OUTPUT"):
            write_no_data_output(reason=str(exc), path=github_output)
        if exit_zero_on_verdict:
            # The workflow alerts on verdict=no data: a failed step must still mean a broken check.
            from pipeline.core.redact import redact

            typer.secho(redact(f"no production data: {exc}"), fg=typer.colors.YELLOW, err=True)
            raise typer.Exit(0) from None
        fail(f"no production data: {exc}", code=EXIT_NO_DATA)
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


@retrain_app.callback(invoke_without_command=True)
def retrain(
    ctx: typer.Context,
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
    log_url: Annotated[
        str | None,
        typer.Option(
            "--log-url",
            help="Labelled rows from this prediction log (default: PREDICTION_LOG_URL when set; else the "
            "labelled period files in params retrain.production_dir, the demo's path).",
        ),
    ] = None,
    env: Annotated[
        str | None, typer.Option("--env", help="From the log: this environment's answers (default: params drift.env).")
    ] = None,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """New training table from reference + labelled production data (the prediction log when PREDICTION_LOG_URL is set), stored in the DVC remote, rerun, gate, PR body: exit 0 ready, 1 failed, 2 bad input (no or unreachable remote too), 3 too few labels."""
    if ctx.invoked_subcommand is not None:
        return
    import os

    from pipeline.ci.gate import GateInputError
    from pipeline.core import runner
    from pipeline.core.config import load_params
    from pipeline.core.dvc_remote import RemoteError
    from pipeline.core.predlog import LOG_URL_ENV
    from pipeline.monitoring.retrain import EXIT_CODES, REFUSED, RetrainInputError, RetrainRefused, run

    verbose()
    try:
        config = load_params(params)
        # The drift check's own report, when it ran first (as in the workflow).
        found = config.drift.out_dir / "drift.json"
        drift_path = drift if drift is not None else (found if found.is_file() else None)
        summary = run(
            params=config,
            params_path=params,
            drift_path=drift_path,
            champion_model=champion_model,
            log_url=log_url or os.environ.get(LOG_URL_ENV) or None,
            env=env,
        )
    except RetrainRefused as exc:
        if exit_zero_on_refusal:
            # An expected outcome for the workflow (it alerts instead), so not an error; printed
            # past fail(), so it gets fail()'s redaction here.
            from pipeline.core.redact import redact

            typer.secho(redact(f"retraining refused: {exc}"), fg=typer.colors.YELLOW, err=True)
            return
        fail(f"retraining refused: {exc}", code=EXIT_CODES[REFUSED])
    except (*known_errors(), RetrainInputError, GateInputError, RemoteError) as exc:  # type: ignore[misc]
        fail(" ".join(str(exc).split()), code=EXIT_CODES["bad input"])
    except runner.ReproFailed as exc:
        fail(str(exc), code=EXIT_CODES["failed"])
    gate_verdict = "passed" if summary["gate_passed"] else "FAILED"
    typer.echo(
        f"retraining {summary['status']}: retrained on {summary['data']['new']['path']} "
        f"({summary['data']['new']['rows']} rows); gate {gate_verdict}"
    )
    if summary["storage"]:
        typer.echo(f"stored: {summary['storage']['pointer']} -> DVC remote {summary['storage']['remote']!r}")
    typer.echo(f"pull-request body: {summary['body']}")


@retrain_app.command("paths")
def retrain_paths(params: ParamsOpt = DEFAULT_PARAMS) -> None:
    """The paths the retraining pull request commits, one per line: params.yaml, dvc.lock, the table's .dvc pointer and the outputs dvc.yaml keeps in git; never a DVC-tracked table. Also `paths` in GITHUB_OUTPUT."""
    import os

    from pipeline.ci.dvcfiles import write_paths_output
    from pipeline.core.config import load_params
    from pipeline.core.dvc_remote import RemoteError
    from pipeline.monitoring.retrain import commit_paths

    try:
        config = load_params(params)
        paths = commit_paths(raw=config.data.raw, params_path=params)
    except (*known_errors(), RemoteError, OSError) as exc:  # type: ignore[misc]
        fail(" ".join(str(exc).split()), code=2)
    for path in paths:
        typer.echo(path)
    if output := os.environ.get("GITHUB_OUTPUT"):
        # The workflow's pull-request step takes its add-paths from this output.
        write_paths_output(paths, path=Path(output))


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
    """Open or update the one alert issue: drift found but retraining refused (too few labels), or no production data (no drift.json; the reason from DRIFT_REASON)."""
    import os

    from pipeline.core import io
    from pipeline.core.config import load_params
    from pipeline.monitoring import github
    from pipeline.monitoring.retrain import RetrainInputError, RetrainRefused, plan, plan_from_log, why_lines

    verbose()
    try:
        token = github.require_token(name=token_env)
        repo = os.environ.get("GITHUB_REPOSITORY", "")
        if not repo:
            raise github.GitHubError(github.ERR_NO_REPO)
        config = load_params(params)
        report = drift or config.drift.out_dir / "drift.json"
        if drift is None and not report.is_file():
            # No production data: the check wrote no report; its reason comes from its step output.
            body = github.no_data_body(reason=os.environ.get("DRIFT_REASON", ""), run_url=github.run_url())
        else:
            try:
                # The same rows retraining would read: the log's window when the log is configured.
                if log_url := os.environ.get("PREDICTION_LOG_URL"):
                    plan_from_log(params=config, url=log_url)
                else:
                    plan(params=config)
                reason = "retraining is possible now: rerun the workflow"
            except (RetrainRefused, RetrainInputError) as exc:
                reason = str(exc)
            findings = io.read_json(report)
            body = github.alert_body(why=why_lines(findings), reason=reason, run_url=github.run_url())
        with github.client_for(token=token) as client:
            action, number = github.open_or_update_alert(client=client, repo=repo, body=body)
    except (*known_errors(), github.GitHubError) as exc:  # type: ignore[misc]
        fail(str(exc))
    typer.echo(f"{action} issue #{number}")
