"""Command of the demo wing: the whole loop, offline, in a throwaway repository."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import fail, known_errors, registry_refusals, verbose

app = typer.Typer()


@app.command()
def demo(
    *,
    out: Annotated[Path, typer.Option("--out", help="Folder for demo.md, its plots and the check reports.")] = Path(
        "reports/demo"
    ),
    rows_per_slice: Annotated[
        int, typer.Option("--rows-per-slice", help="Requests per monthly slice (12 slices a production period).")
    ] = 400,
    sample_rows: Annotated[
        int, typer.Option("--sample-rows", help="Training sample (params data.sample_rows of the copy; 0 = all).")
    ] = 0,
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="Where the temporary repository goes (default: a new temp dir).")
    ] = None,
) -> None:
    """The whole loop offline in a temporary git repo: train, deploy, traffic, drift, retrain PR, CI, canary, promote."""
    from pipeline.demo import loop as demo_mod

    verbose()
    try:
        result = demo_mod.run(
            source=Path.cwd(), out_dir=out, rows_per_slice=rows_per_slice, sample_rows=sample_rows, workdir=workdir
        )
    except (*known_errors(), *registry_refusals(), demo_mod.DemoError) as exc:  # type: ignore[misc]
        fail(str(exc))
    typer.echo(result["timeline"])
    typer.echo(result["lineage"])
    typer.echo(f"report: {result['report']}")
