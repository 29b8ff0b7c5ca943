"""Drives the external tools (dvc, ruff, mypy, actionlint, zizmor) as subprocesses, with the
project's interpreter first on PATH so that the stages run in the locked environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
WORKFLOWS = Path(".github/workflows")


class ReproFailed(RuntimeError):
    """A stage refused its input or crashed; its own message was printed above."""


def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    # Belt and braces beside .dvc/config: no analytics from any tool the pipeline starts.
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("DO_NOT_TRACK", "true")
    env.setdefault("GX_ANALYTICS_ENABLED", "false")
    return env


def tool(name: str) -> str:
    """The project environment's copy of a command-line tool when it has one, else the one on PATH."""
    return str(BIN / name) if (BIN / name).exists() else name


def reproduce(*, force: bool = False) -> None:
    cmd = [tool("dvc"), "repro", *(["--force"] if force else [])]
    if subprocess.run(cmd, env=tool_env(), check=False).returncode != 0:
        raise ReproFailed("dvc repro failed: the stage above says why; nothing downstream of it was updated")


def summary(*, params_path: Path) -> str:
    from pipeline.core import io
    from pipeline.core.config import load_params
    from pipeline.core.redact import redact
    from pipeline.core.tracking import tracking_uri

    params = load_params(params_path)
    reports = params.paths.reports
    metrics = io.read_json(reports / "metrics.json")
    fairness = io.read_json(reports / "fairness.json")
    train = io.read_json(reports / "train.json")
    run = io.read_json(reports / "run.json")
    # The team server's URI may carry user:password; the summary lands in CI logs.
    uri = redact(tracking_uri(params.tracking))
    ui = f"mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite") else uri
    recall = ", ".join(f"class {c} {b['recall']:.3f}" for c, b in sorted(metrics["per_class"].items()))
    return "\n".join(
        [
            "",
            f"model       {train['chosen']} (best of {len(train['leaderboard'])} by validation {train['primary_metric']})",
            f"test        ROC AUC {metrics['roc_auc']:.4f}  accuracy {metrics['accuracy']:.4f}  F1 {metrics['f1']:.4f}",
            f"recall      {recall}",
            f"fairness    {'passed' if fairness['passed'] else 'FAILED: ' + '; '.join(fairness['breaches'])}",
            f"model card  {params.card.output}",
            f"reports     {reports}/ (validation/data_docs/index.html for Data Docs)",
            f"MLflow run  {run['run_id']} - browse with: {ui}",
        ]
    )


def lint() -> list[str]:
    """Every check runs even after one fails, so a single pass shows all problems. The last one
    refuses what an unresolved `copier update` leaves behind (see update_leftovers).
    """
    checks: list[tuple[str, list[str]]] = [
        ("ruff check", [tool("ruff"), "check", "."]),
        ("ruff format", [tool("ruff"), "format", "--check", "."]),
        ("mypy", [tool("mypy")]),
    ]
    workflows = sorted(str(p) for p in WORKFLOWS.glob("*.y*ml"))
    if workflows:
        checks += [
            ("actionlint", [tool("actionlint"), *workflows]),
            ("zizmor", [tool("zizmor"), "--offline", "--min-severity", "low", *workflows]),
        ]
    failed = []
    for name, cmd in checks:
        print(f"--- {name}", flush=True)
        if subprocess.run(cmd, env=tool_env(), check=False).returncode != 0:
            failed.append(name)
    print("--- update leftovers", flush=True)
    leftovers = update_leftovers(root=Path("."))
    print("\n".join(leftovers) or "none", flush=True)
    if leftovers:
        failed.append("update leftovers")
    return failed


# What `git merge-file` (and so `copier update --conflict inline`) writes around a conflict.
CONFLICT_MARKERS = (b"<<<<<<< ", b">>>>>>> ")
# Git's own test for a binary file: a NUL byte near the start.
_BINARY_SNIFF = 8000


def _git_paths(root: Path, *args: str) -> list[str] | None:
    result = subprocess.run(["git", "ls-files", "-z", *args], cwd=root, capture_output=True, check=False)
    if result.returncode != 0:
        return None
    # An unmerged path is listed once per conflict stage.
    return list(dict.fromkeys(os.fsdecode(p) for p in result.stdout.split(b"\0") if p))


def update_leftovers(*, root: Path) -> list[str]:
    """One line per unresolved update left in the work tree: `*.rej` files that git would commit
    (tracked, or untracked and not ignored) and conflict markers in tracked text files.

    Outside a git work tree nothing is tracked, so nothing is reported.
    """
    rejected = _git_paths(root, "--cached", "--others", "--exclude-standard", "--", "*.rej")
    tracked = _git_paths(root, "--cached")
    if rejected is None or tracked is None:
        return []
    problems = [f"{rel}: hunks an update could not apply; apply them by hand, then delete the file" for rel in rejected]
    for rel in tracked:
        path = root / rel
        if rel.endswith(".rej") or not path.is_file():
            continue
        with path.open("rb") as fh:
            if b"\0" in fh.read(_BINARY_SNIFF):
                continue
            fh.seek(0)
            lines = [n for n, line in enumerate(fh, start=1) if line.startswith(CONFLICT_MARKERS)]
        if lines:
            where = ", ".join(str(n) for n in lines)
            problems.append(f"{rel}: conflict markers on lines {where}; keep the right text and delete the markers")
    return problems


def stop_group(proc: subprocess.Popen[Any], *, sig: signal.Signals = signal.SIGTERM, timeout: float = 20) -> None:
    """Stop a process started with start_new_session=True, children included; kill it if it lingers.

    Servers such as `mlflow server` or `mlflow models serve` run their workers as children, so
    signalling only the parent would leave them bound to the port.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    deadline = time.monotonic() + timeout
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    # The parent can exit before its children have handled the signal: wait for them too, or
    # a worker may still hold the port when the caller starts the next server.
    while _live_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if proc.poll() is None or _live_members(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _live_members(pgid: int) -> list[int]:
    """Pids in the process group that are not zombies (Linux /proc; elsewhere none are seen)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="ascii", errors="replace").rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state, ppid, pgrp.
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live
