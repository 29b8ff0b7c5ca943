"""Commands of the stages wing: each DVC stage on its own, `run` for the whole DAG, and `lint`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import DEFAULT_PARAMS, ParamsOpt, fail, known_errors, verbose

app = typer.Typer()


def _stage(name: str, params_path: Path) -> None:
    """Run one pipeline stage by module name, turning refusals into a clean exit 1."""
    import importlib

    from pipeline.core.config import load_params

    verbose()
    try:
        params = load_params(params_path)
        module = importlib.import_module(f"pipeline.stages.{name}")
        if name == "train":
            module.main(params=params, params_path=params_path)
        else:
            module.main(params=params)
    except (*known_errors(), RuntimeError) as exc:  # type: ignore[misc]
        fail(str(exc))


@app.command()
def ingest(params: ParamsOpt = DEFAULT_PARAMS) -> None:
    """Take a fresh snapshot of data.source's query into data.raw (the URL comes from the environment)."""
    from pipeline.core.config import load_params
    from pipeline.stages.ingest import IngestError, main

    verbose()
    try:
        main(params=load_params(params))
    except (*known_errors(), IngestError) as exc:  # type: ignore[misc]
        # Every refusal here is input the user can fix: the params, the URL or the query.
        fail(str(exc), code=2)


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
    except (*known_errors(), runner.ReproFailed) as exc:  # type: ignore[misc]
        fail(str(exc))


@app.command()
def lint() -> None:
    """ruff, mypy, actionlint + zizmor over .github/workflows, and no unresolved update (*.rej, conflict markers)."""
    from pipeline.core import runner

    failed = runner.lint()
    if failed:
        fail(f"lint failed: {', '.join(failed)}")
