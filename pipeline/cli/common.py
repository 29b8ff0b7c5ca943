"""What every wing's commands share: the --params and --log-url options, the clean failure exit,
the errors a user can fix, and the log level of our own progress messages.

Only typer loads here; the error classes are imported when a command asks for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

ParamsOpt = Annotated[Path, typer.Option("--params", help="Path to params.yaml.")]
DEFAULT_PARAMS = Path("params.yaml")
LogUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--log-url",
        help="Prediction log: a path, sqlite:/// or postgresql:// URL (default: PREDICTION_LOG_URL, then params serve.log.path).",
    ),
]


def fail(message: str, code: int = 1) -> NoReturn:
    from pipeline.core.redact import redact

    # Error texts quote URLs from the environment; a credential in one must not reach a CI log.
    typer.secho(f"error: {redact(message)}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def verbose() -> None:
    """Our own progress at INFO; the libraries' chatter (GE logs every registry call) stays quiet."""
    import logging

    from pipeline.core.redact import install_log_filter

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pipeline").setLevel(logging.INFO)
    install_log_filter()


# Errors a user can fix: shown as one clear message, never as a traceback.
def known_errors() -> tuple[type[Exception], ...]:
    from pipeline.core.config import ConfigError
    from pipeline.core.io import DataFileError, ModelFileError
    from pipeline.core.schema import SchemaError

    return (ConfigError, DataFileError, ModelFileError, SchemaError)


def registry_refusals() -> tuple[type[Exception], ...]:
    """known_errors plus the registry's and deployment's refusals; also turns on verbose logging."""
    from mlflow.exceptions import MlflowException

    from pipeline.delivery.manifest import DeployError
    from pipeline.delivery.registry_client import RegistryError

    verbose()
    # MlflowException: an unreachable or refusing tracking server (after the fail-fast retries).
    return (*known_errors(), RegistryError, DeployError, MlflowException)
