from __future__ import annotations

import os
import subprocess

import pytest

from pipeline.runner import stop_group

pytestmark = pytest.mark.unit


def test_stop_group_ends_the_children_too() -> None:
    # A parent that starts a child and waits: the child must not outlive the stop.
    proc = subprocess.Popen(
        ["sh", "-c", "sleep 60 & echo $!; wait"], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    stop_group(proc, timeout=5)
    assert proc.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


def test_stop_group_of_an_ended_process_is_harmless() -> None:
    proc = subprocess.Popen(["true"], start_new_session=True)
    proc.wait()
    stop_group(proc, timeout=1)
    assert proc.returncode == 0
