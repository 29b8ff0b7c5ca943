"""`pipeline init`: the first command a team runs, pointing the template at its own table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import DEFAULT_PARAMS, ParamsOpt, fail, known_errors

app = typer.Typer()

INIT_HELP = (
    "Point the project at your own table: infer its schema and write params.yaml (base, data, fairness, "
    "simulate and the keys sized by the table), deploy/*.yaml (your model's name, no version yet), the model "
    "card source skeleton and data/README.md. Then `make run`.\n\n"
    "Columns: whole numbers with at most 10 distinct values are codes (categorical), more are numeric; numeric "
    "ranges are the observed ones widened by 10% of their width on each side (not below 0 for a column with no "
    "negative value); dates, periods and whole numbers in a column named like a period (year, month, ...) are "
    "metadata; all-null, constant, free-text columns and text with more than --max-categories values are left "
    "out, with the reason.\n\n"
    "Target: binary only. 0/1 and true/false predict 1/true, yes/no-like text predicts yes; any other pair "
    "needs --positive-label.\n\n"
    "Fairness: --sensitive and --audit-only columns get one group per value (values too small to judge merged "
    'into "other") or quartile bands for numbers; a column with a group too small for prepare\'s representation '
    "check is reported, not judged.\n\n"
    "Everything is checked before anything is written: bad input exits 2 and writes nothing."
)


def _columns(values: list[str] | None) -> tuple[str, ...]:
    # Repeated options and comma-separated lists both work: --sensitive a --sensitive b,c
    return tuple(dict.fromkeys(c.strip() for v in values or [] for c in v.split(",") if c.strip()))


@app.command(help=INIT_HELP, short_help="Point the project at your own table (the first command to run).")
def init(
    target: Annotated[str, typer.Option("--target", help="The binary target column.")],
    data: Annotated[
        Path | None, typer.Option("--data", help="The table inside the project (.parquet or .csv).")
    ] = None,
    id_column: Annotated[
        str | None, typer.Option("--id", help="The unique row key (default: a unique column named id).")
    ] = None,
    sensitive: Annotated[
        list[str] | None, typer.Option("--sensitive", help="A sensitive column, grouped for fairness (repeatable).")
    ] = None,
    audit_only: Annotated[
        list[str] | None,
        typer.Option("--audit-only", help="A column validated and grouped for fairness, never a model input."),
    ] = None,
    positive_label: Annotated[
        str | None, typer.Option("--positive-label", help="The target value the model predicts.")
    ] = None,
    max_categories: Annotated[
        int, typer.Option("--max-categories", min=2, help="More distinct text values than this: left out.")
    ] = 50,
    query: Annotated[
        str | None, typer.Option("--query", help="SQL whose result is the table (snapshotted by the ingest stage).")
    ] = None,
    url_env: Annotated[
        str | None, typer.Option("--url-env", help="Environment variable holding the database URL (with --query).")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Experiment and registered model name (default: the file's name).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Start over for a project set up for another table.")] = False,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    from pipeline.core.params_edit import ParamsEditError
    from pipeline.stages.init import InitError, Options, Request, run

    options = Options(
        target=target,
        id_column=id_column,
        sensitive=_columns(sensitive),
        audit_only=_columns(audit_only),
        positive_label=positive_label,
        max_categories=max_categories,
    )
    request = Request(options=options, data=data, query=query, url_env=url_env, name=name, force=force)
    try:
        result = run(request=request, root=Path("."), params_path=params)
    except (*known_errors(), InitError, ParamsEditError) as exc:  # type: ignore[misc]
        fail(str(exc), code=2)
    for line in result.summary():
        typer.echo(line)
