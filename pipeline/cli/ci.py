"""Commands of the ci wing, the pull-request checks: model smoke test, champion fetch, gate, report,
and `ci`, which runs that whole sequence locally.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import DEFAULT_PARAMS, ParamsOpt, fail, known_errors, verbose

app = typer.Typer()
champion_app = typer.Typer(help="The champion model the gate compares against.", no_args_is_help=True)
app.add_typer(champion_app, name="champion")


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
    from pipeline.delivery.registry_client import RegistryError
    from pipeline.delivery.smoke import SmokeFailed, run

    verbose()
    if model is not None and version is not None:
        fail("give either --model or --version, not both", code=2)
    refusals: tuple[type[Exception], ...] = (*known_errors(), RegistryError, SmokeFailed)
    try:
        run(params=load_params(params), model_path=model, version=version)
    except refusals as exc:
        fail(str(exc))


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

    verbose()
    refusals: tuple[type[Exception], ...] = (*known_errors(), ChampionError)
    try:
        config = load_params(params)
        fetch(rev=rev, out=out, default_model_path=config.paths.model.as_posix(), rebuild=rebuild)
    except refusals as exc:
        fail(str(exc))


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

    verbose()
    refusals: tuple[type[Exception], ...] = (*known_errors(), GateInputError)
    try:
        decision = run(params=load_params(params), champion_model=champion_model)
    except refusals as exc:
        fail(str(exc), code=2)
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

    verbose()
    try:
        run(params=load_params(params), out=out, base=base)
    except known_errors() as exc:
        fail(str(exc))
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

    verbose()
    try:
        failed = run(params_path=params, base=base, out=out, lint=lint)
    except known_errors() as exc:
        fail(str(exc))
    typer.echo(f"report: {out}")
    if failed:
        fail(f"ci failed: {', '.join(failed)}")
    typer.echo("ci passed")
