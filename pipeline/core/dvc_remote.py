"""The DVC remote: where training snapshots live instead of git. A team commits its remote in
.dvc/config (`dvc remote add -d storage s3://...`), or a runner names it in DVC_REMOTE_URL, which
is written to the uncommitted .dvc/config.local. Credentials stay in the environment the storage
library reads (AWS_*, GOOGLE_*, AZURE_*), never in a file this project writes.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from pipeline.core.redact import redact
from pipeline.core.runner import tool, tool_env

ENV_URL = "DVC_REMOTE_URL"
REMOTE_NAME = "storage"
ERR_NO_REMOTE = (
    "no DVC remote is configured: add one with `dvc remote add -d storage <url>` (committed in "
    ".dvc/config; s3://, gs://, azure:// or a shared folder) or set {env} on the runner"
)


class RemoteError(RuntimeError):
    """No remote, an unreachable one, or a push/pull that failed; the message is one line."""


def _dvc(args: Sequence[str], *, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("dvc"), *args], cwd=root, env=tool_env(), capture_output=True, text=True, check=False)


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    return redact(lines[-1]) if lines else f"exit status {result.returncode}"


def remotes(*, root: Path = Path(".")) -> dict[str, str]:
    """Remote name -> URL (redacted), as DVC sees them with every config level merged."""
    # `dvc config --list` prints one `remote.<name>.url=<url>` per line; `dvc remote list` wraps a
    # long URL onto the next line when the output is narrow, which would lose it.
    result = _dvc(["config", "--list"], root=root)
    out: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.startswith("remote.") and key.endswith(".url"):
            out[key.removeprefix("remote.").removesuffix(".url")] = redact(value.strip())
    return out


def default_remote(*, root: Path = Path(".")) -> str | None:
    """The default remote's name, after adopting DVC_REMOTE_URL when nothing is configured."""
    result = _dvc(["remote", "default"], root=root)
    if result.returncode == 0 and result.stdout.strip():
        return result.stdout.strip()
    url = os.environ.get(ENV_URL, "").strip()
    if not url:
        return None
    if redact(url) != url:
        # It would land in .dvc/config.local in clear: a file this project writes.
        raise RemoteError(
            f"{ENV_URL} carries a user:password ({redact(url)}): give the storage's credentials through "
            "its own environment variables (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, AZURE_*) instead"
        )
    added = _dvc(["remote", "add", "--local", "--force", "-d", REMOTE_NAME, url], root=root)
    if added.returncode != 0:
        raise RemoteError(f"{ENV_URL} could not be used as the DVC remote: {_last_line(added)}")
    return REMOTE_NAME


def require_remote(*, root: Path = Path(".")) -> str:
    name = default_remote(root=root)
    if name is None:
        raise RemoteError(ERR_NO_REMOTE.format(env=ENV_URL))
    url = remotes(root=root).get(name, "")
    if "://" not in url and url and not (root / url).expanduser().exists() and not Path(url).expanduser().exists():
        # A folder remote that is not there is a typo or an unmounted share: refuse before any work.
        raise RemoteError(f"DVC remote {name!r} points at {url}, which does not exist")
    return name


def push(targets: Sequence[str | Path], *, root: Path = Path(".")) -> None:
    name = require_remote(root=root)
    result = _dvc(["push", "-r", name, *map(str, targets)], root=root)
    if result.returncode != 0:
        raise RemoteError(f"dvc push to {name!r} failed: {_last_line(result)}")


def pull(targets: Sequence[str | Path] = (), *, root: Path = Path("."), allow_missing: bool = False) -> None:
    """`allow_missing`: objects the remote lacks are skipped (the pipeline rebuilds them), not an error."""
    name = require_remote(root=root)
    result = _dvc(["pull", "-r", name, *(["--allow-missing"] if allow_missing else []), *map(str, targets)], root=root)
    if result.returncode != 0:
        raise RemoteError(f"dvc pull from {name!r} failed: {_last_line(result)}")
