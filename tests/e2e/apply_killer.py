"""Kills `pipeline deploy apply` at a chosen registry write, for the crash-safety test.

Run as `python -m tests.e2e.apply_killer` in a workspace. Each line on stdin,
`<n> <SIGKILL|SIGTERM> <before|after> <env> <params>`, forks a child that runs the real CLI
command and sends itself the signal just before (or just after) its n-th registry write; the
parent reaps the child (as a CI runner or a shell would) and answers with its exit status
(negative: killed by that signal). The command's own output goes to apply_killer.log.

Why a forked child instead of a fresh interpreter per kill: importing MLflow takes seconds, and
the kill points must be exact registry writes, not guesses at timing.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

WRITES = (
    "create_registered_model",
    "delete_registered_model",
    "set_registered_model_tag",
    "delete_registered_model_tag",
    "set_registered_model_alias",
    "delete_registered_model_alias",
)


def _arm(*, at: int, signum: int, after: bool) -> None:
    from mlflow import MlflowClient

    count = 0

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal count
            count += 1
            if count == at and not after:
                os.kill(os.getpid(), signum)
            result = original(self, *args, **kwargs)
            if count == at and after:
                os.kill(os.getpid(), signum)
            return result

        return call

    for name in WRITES:
        setattr(MlflowClient, name, wrap(getattr(MlflowClient, name)))


def _child(*, at: int, signum: int, after: bool, env: str, params: str) -> None:
    log = os.open("apply_killer.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    code = 0
    try:
        from pipeline.cli.entry import app

        _arm(at=at, signum=signum, after=after)
        app(["deploy", "apply", "--env", env, "--params", params])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # anything else is a failure the test must see
        import traceback

        traceback.print_exc()
        code = 99
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def main() -> None:
    # Imported once, before any fork; no registry connection is opened in this parent.
    import pipeline.cli.entry
    import pipeline.delivery.deploy  # noqa: F401

    for line in sys.stdin:
        at, sig, when, env, params = line.split()
        pid = os.fork()
        if pid == 0:
            _child(at=int(at), signum=getattr(signal, sig), after=when == "after", env=env, params=params)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)


if __name__ == "__main__":
    main()
