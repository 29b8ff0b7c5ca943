from __future__ import annotations

import subprocess

import pytest

from pipeline.core.runner import stop_group

pytestmark = pytest.mark.unit


def _gone_or_zombie(pid: int) -> bool:
    # An orphan killed here may wait as a zombie for a container's init to reap it: it is dead.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_stop_group_ends_the_children_too() -> None:
    # A parent that starts a child and waits: the child must not outlive the stop.
    proc = subprocess.Popen(
        ["sh", "-c", "sleep 60 & echo $!; wait"], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert proc.stdout is not None
    with proc.stdout:
        child = int(proc.stdout.readline())
    stop_group(proc, timeout=5)
    assert proc.returncode is not None
    assert _gone_or_zombie(child)


def test_stop_group_of_an_ended_process_is_harmless() -> None:
    proc = subprocess.Popen(["true"], start_new_session=True)
    proc.wait()
    stop_group(proc, timeout=1)
    assert proc.returncode == 0
