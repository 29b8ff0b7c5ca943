"""The root `pipeline` app: each wing's module owns its commands and sub-groups; this one only
merges them, floor by floor, so `pipeline --help` lists the commands in the order of the loop.
"""

from __future__ import annotations

import typer

from pipeline.cli import ci, delivery, demo, log, monitoring, project, stages

app = typer.Typer(
    help="Declarative GitOps MLOps template: pipeline stages, CI gate, deployment and drift.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Without a name, add_typer merges a wing's commands and sub-groups into the root.
for wing in (project, stages, delivery, ci, monitoring, log, demo):
    app.add_typer(wing.app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
