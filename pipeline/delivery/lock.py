"""The deploy lock: one apply per environment at a time, held in the registry itself, and an apply
that is killed or terminated never blocks the next one for the lock's whole time to live.

The lock records its owner (host, machine identity, pid and the pid's start time): a waiter on
the same machine sees at once that the owner's process is gone and takes the lock over. SIGTERM
unwinds the apply like Ctrl-C does, so the lock is released on the way out. Only an owner on
another machine that died without unwinding (SIGKILL, power loss) holds the lock until it
expires, or until `pipeline deploy unlock` removes it.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.delivery import registry_client
from pipeline.delivery.manifest import DeployError, manifest_path

if TYPE_CHECKING:
    from types import FrameType

    from mlflow import MlflowClient

    from pipeline.core.config import Params

logger = logging.getLogger(__name__)

LOCK_NAME = "{name}.deploy-lock.{env}"

ERR_HELD = (
    "another apply to {env} holds the lock {lock} (waited {waited:.0f} s): {owner}; it expires at "
    "{expires}. Retry when it has finished; if that apply is dead, `pipeline deploy unlock --env {env}` "
    "removes the lock"
)
ERR_TAKE = "cannot take the deploy lock {lock}: {detail}"
ERR_TERMINATED = (
    "apply to {env} stopped by {signal}; the lock was released and serving keeps the last complete "
    "state; run `pipeline deploy apply --env {env}` again to finish"
)


class ApplyTerminated(BaseException):
    """SIGTERM arrived during an apply. A BaseException, like KeyboardInterrupt: no `except
    Exception` on the way out may swallow it, while every `finally` still runs.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# ---- who holds the lock ---------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def machine_id() -> str:
    """This kernel boot and pid namespace ("" where unknown): pids are comparable only within it.

    The hostname alone is not enough: containers and runners often share one.
    """
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{boot}/{namespace}" if boot and namespace else ""


def process_start(pid: int) -> str:
    """When `pid` started, in clock ticks since boot ("" where unknown): tells a reused pid apart."""
    stat = _read(f"/proc/{pid}/stat")
    # The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""


def owner_tags(*, holder: str, ttl: float) -> dict[str, str]:
    now = time.time()
    return {
        "holder": holder,
        "host": socket.gethostname(),
        "machine": machine_id(),
        "pid": str(os.getpid()),
        "pid_start": process_start(os.getpid()),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "expires": str(now + ttl),
    }


def owner_gone(tags: dict[str, str]) -> bool:
    """True when the lock's owner ran on this machine and its process no longer exists.

    False when it may still run, and whenever this machine cannot tell (another host, no /proc).
    """
    machine = tags.get("machine", "")
    if not machine or machine != machine_id():
        return False
    try:
        pid = int(tags.get("pid", ""))
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        pass
    stat = _read(f"/proc/{pid}/stat")
    if stat.rpartition(")")[2].split()[:1] == ["Z"]:  # exited, not yet reaped by its parent
        return True
    started = tags.get("pid_start", "")
    return bool(started) and process_start(pid) not in {"", started}


def describe_owner(tags: dict[str, str]) -> str:
    return (
        f"held by {tags.get('holder', 'unknown')} on {tags.get('host', 'unknown host')} "
        f"(pid {tags.get('pid', '?')}) since {tags.get('started', '?')}"
    )


def _expiry(tags: dict[str, str]) -> float:
    try:
        return float(tags.get("expires", "inf"))
    except ValueError:
        return float("inf")


# ---- taking and releasing -------------------------------------------------------------------


def _lock_tags(mlflow_client: MlflowClient, *, lock_name: str) -> dict[str, str] | None:
    """The lock's tags, or None when nobody holds it."""
    try:
        return dict(mlflow_client.get_registered_model(lock_name).tags or {})
    except Exception as exc:
        if registry_client._not_found(exc):
            return None
        raise registry_client.request_error(exc, what=lock_name, uri=mlflow_client.tracking_uri) from exc


@contextmanager
def registry_lock(mlflow_client: MlflowClient, *, name: str, env: str, timeout: float, ttl: float) -> Iterator[str]:
    """Mutual exclusion for one environment's apply, held in the registry itself.

    Why a registered model as the lock: creating one is an atomic insert on the name's primary
    key in every store (sqlite, PostgreSQL behind `mlflow server`), so it is a true
    compare-and-set reachable through the plain MLflow API. Tag-based locks are not (two writers
    can both read back their own tag), and a file lock would protect the embedded sqlite store
    only. A lock whose owner is gone (same machine) or that is older than `ttl` is removed; the
    seal and the post-apply read-back in `deploy.apply` catch the rare race of that recovery.
    """
    from pipeline.delivery.registry import actor

    lock_name = LOCK_NAME.format(name=name, env=env)
    token = uuid.uuid4().hex
    started, acquired = time.monotonic(), False
    try:
        while True:
            try:
                mlflow_client.create_registered_model(
                    lock_name,
                    tags={"token": token, **owner_tags(holder=actor(), ttl=ttl)},
                    description=f"Held while `pipeline deploy apply --env {env}` changes {name}; removed afterwards.",
                )
                acquired = True
                break
            except Exception as exc:
                if registry_client._error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                    fault = registry_client.store_fault(exc, uri=mlflow_client.tracking_uri)
                    raise fault or DeployError(
                        ERR_TAKE.format(lock=lock_name, detail=registry_client.one_line(exc))
                    ) from exc
            held = _remove_if_abandoned(mlflow_client, lock_name=lock_name)
            if held is not None and time.monotonic() - started > timeout:
                expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(min(_expiry(held), 4e10)))
                raise DeployError(
                    ERR_HELD.format(
                        env=env,
                        lock=lock_name,
                        waited=time.monotonic() - started,
                        owner=describe_owner(held),
                        expires=expires,
                    )
                )
            if held is not None:
                time.sleep(random.uniform(0.05, 0.3))  # jitter: waiters do not retry in lockstep
        yield token
    finally:
        # Also when acquiring failed: SIGTERM may have cut in after the insert committed.
        _release(mlflow_client, lock_name=lock_name, token=token, quiet=not acquired)


def _release(mlflow_client: MlflowClient, *, lock_name: str, token: str, quiet: bool) -> None:
    """Delete the lock if it is ours; `quiet` when we may never have held it."""
    try:
        tags = _lock_tags(mlflow_client, lock_name=lock_name)
        if tags is not None and tags.get("token") == token:
            mlflow_client.delete_registered_model(lock_name)
    except Exception:  # taken over as abandoned, or the store went away: nothing left to release
        if not quiet:
            logger.warning("deploy lock %s could not be released by its owner", lock_name)


def _remove_if_abandoned(mlflow_client: MlflowClient, *, lock_name: str) -> dict[str, str] | None:
    """Remove the lock when its owner is gone or it expired; returns the tags of a lock still held
    (None when there is none left to wait for).
    """
    tags = _lock_tags(mlflow_client, lock_name=lock_name)
    if tags is None:
        return None
    gone, expired = owner_gone(tags), _expiry(tags) < time.time()
    if not (gone or expired):
        return tags
    why = "its process is gone" if gone else "it expired"
    logger.warning("removing the deploy lock %s (%s): %s", lock_name, why, describe_owner(tags))
    # Read again just before deleting: a lock another waiter took over meanwhile is not ours to remove.
    again = _lock_tags(mlflow_client, lock_name=lock_name)
    if again is not None and again.get("token") == tags.get("token"):
        try:
            mlflow_client.delete_registered_model(lock_name)
        except Exception:  # another waiter removed it first
            logger.info("deploy lock %s was removed by another waiter", lock_name)
    return None


def break_lock(mlflow_client: MlflowClient, *, name: str, env: str) -> dict[str, str] | None:
    """Remove the environment's lock whoever holds it (the operator knows its apply is dead);
    returns the removed lock's tags, None when there was none.
    """
    lock_name = LOCK_NAME.format(name=name, env=env)
    tags = _lock_tags(mlflow_client, lock_name=lock_name)
    if tags is None:
        return None
    logger.warning("removing the deploy lock %s by hand: %s", lock_name, describe_owner(tags))
    try:
        mlflow_client.delete_registered_model(lock_name)
    except Exception as exc:
        if not registry_client._not_found(exc):
            raise registry_client.request_error(exc, what=lock_name, uri=mlflow_client.tracking_uri) from exc
    return tags


def unlock(*, params: Params, env: str, mlflow_client: MlflowClient | None = None) -> dict[str, str] | None:
    """Remove the environment's deploy lock (its apply is known to be dead); returns the removed
    lock's owner tags, None when no lock was held. The next apply converges whatever it left.
    """
    manifest_path(params=params, env=env)  # an unknown environment is refused before any request
    mlflow_client = mlflow_client or registry_client.client(params=params)
    return break_lock(mlflow_client, name=params.tracking.registered_model, env=env)


# ---- SIGTERM --------------------------------------------------------------------------------


@contextmanager
def terminate_unwinds() -> Iterator[None]:
    """Within this block SIGTERM raises ApplyTerminated instead of killing the process outright,
    so `registry_lock` releases the lock. A second SIGTERM while unwinding is ignored: it must not
    cut the release short. Outside the main thread signals cannot be handled: nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handler(signum: int, frame: FrameType | None) -> Any:
        nonlocal fired
        if fired:
            return
        fired = True
        raise ApplyTerminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
