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
    from pipeline.config import ConfigError
    from pipeline.io import DataFileError, ModelFileError

    return (ConfigError, DataFileError, ModelFileError)


def _stage(name: str, params_path: Path) -> None:
    """Run one pipeline stage by module name, turning refusals into a clean exit 1."""
    import importlib
    import logging

    from pipeline.config import load_params

    # Our own progress at INFO; the libraries' chatter (GE logs every registry call) stays quiet.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pipeline").setLevel(logging.INFO)
    try:
        params = load_params(params_path)
        module = importlib.import_module(f"pipeline.{name}")
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
    from pipeline import runner

    try:
        runner.reproduce(force=force)
        typer.echo(runner.summary(params_path=params))
    except (*_known_errors(), runner.ReproFailed) as exc:  # type: ignore[misc]
        _fail(str(exc))


@app.command()
def lint() -> None:
    """ruff, mypy, and actionlint + zizmor over .github/workflows."""
    from pipeline import runner

    failed = runner.lint()
    if failed:
        _fail(f"lint failed: {', '.join(failed)}")


@app.command()
def drift(
    *,
    current: Annotated[Path, typer.Option("--current", help="Production batch (parquet or CSV).")],
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
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Compare a production batch with the reference: exit 0 no drift, 1 drift, 2 not enough data or bad input."""
    import logging

    from pipeline.config import load_params
    from pipeline.drift import EXIT_CODES, DriftInputError, run

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
        )
    except refusals as exc:
        _fail(str(exc), code=EXIT_CODES["not enough data"])
        return
    typer.echo(f"drift check: {summary['verdict']}")
    raise typer.Exit(EXIT_CODES[summary["verdict"]])


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
    from pipeline import io
    from pipeline.config import load_params
    from pipeline.simulate import KINDS, Kind, SimulationError, write_batch
    from pipeline.simulate import simulate as build

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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
