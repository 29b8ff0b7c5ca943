"""`pipeline <command>`: the one entry point. Heavy libraries are imported inside commands
so that `pipeline --help` stays fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
