"""Commands of the prediction log (core): pruning it to the retention params allow, since the
rows hold people's raw inputs.
"""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.cli.common import DEFAULT_PARAMS, LogUrlOpt, ParamsOpt, fail, known_errors, verbose
from pipeline.cli.labels import labels_app

app = typer.Typer()
log_app = typer.Typer(help="The prediction log: how long its personal data is kept.", no_args_is_help=True)
app.add_typer(log_app, name="log")
app.add_typer(labels_app, name="labels")


@log_app.command("prune")
def prune(
    *,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count the rows that would be deleted; change nothing.")
    ] = False,
    log_url: LogUrlOpt = None,
    params: ParamsOpt = DEFAULT_PARAMS,
) -> None:
    """Delete logged predictions (and labels) older than params serve.log.retention_days; run it daily."""
    from pipeline.core import predlog
    from pipeline.core.config import load_params
    from pipeline.core.redact import redact

    verbose()
    try:
        config = load_params(params)
        url = predlog.resolve_url(configured=config.serve.log.path, override=log_url)
        result = predlog.prune(url=url, retention_days=config.serve.log.retention_days, dry_run=dry_run)
    except (*known_errors(), predlog.PredictionLogError) as exc:  # type: ignore[misc]
        fail(str(exc), code=2)
    verb = "would remove" if result.dry_run else "removed"
    labels = f" and {result.labels} label rows" if result.labels else ""
    typer.echo(
        f"{verb} {result.predictions} prediction rows{labels} older than {predlog.iso(result.cutoff)} "
        f"(retention {result.retention_days} days) from {redact(url)}"
        + (" (dry run: nothing changed)" if result.dry_run else "")
    )
    if result.note is not None:
        typer.secho(f"warning: {result.note}", fg=typer.colors.YELLOW, err=True)
