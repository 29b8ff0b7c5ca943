"""Commands for labels that arrive after the prediction (monitoring): importing a file of them
into the prediction log's label store. The service takes them by request on POST /feedback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import DEFAULT_PARAMS, LogUrlOpt, ParamsOpt, fail, known_errors, verbose

# Registered beside `pipeline log` (cli/log.py): labels live in the prediction log's database.
labels_app = typer.Typer(
    help="Labels that arrive later, joined to predictions by association id.", no_args_is_help=True
)


@labels_app.command("import")
def import_labels(
    file: Annotated[
        Path, typer.Argument(help="CSV or parquet: params labels.id_column, label_column (and observed_at_column).")
    ],
    *,
    log_url: LogUrlOpt = None,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Store a file of labels (all rows or none); a second label for an id follows params labels.duplicates."""
    from pipeline.core import predlog
    from pipeline.core.config import load_params
    from pipeline.monitoring import labels

    verbose()
    try:
        config = load_params(params)
        url = predlog.resolve_url(configured=config.serve.log.path, override=log_url)
        summary = labels.import_labels(file, params=config, url=url)
    except (*known_errors(), labels.LabelImportError, predlog.PredictionLogError) as exc:  # type: ignore[misc]
        # Readers' and drivers' messages may span lines; the operator gets one.
        fail(" ".join(str(exc).split()), code=2)
    typer.echo(labels.summary_line(summary))
    refused = labels.refused_line(summary)
    if refused is not None:
        typer.secho(f"warning: {refused}", fg=typer.colors.YELLOW, err=True)
