"""A worker killed with SIGKILL whose parent has not reaped it yet (a zombie, as a daemon orphaned by
its starter can stay for a while) is dead: its job is released at once, not after the heartbeat
timeout."""

from __future__ import annotations

import os
import subprocess
import time

import psutil

from codebase_mcp.jobs.worker import live_pids


def test_zombies_are_not_alive() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert child.pid in live_pids()
        child.kill()
        deadline = time.monotonic() + 10
        while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:  # killed, not yet reaped
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert child.pid in psutil.pids(), "still listed by the OS"
        assert child.pid not in live_pids()
        assert os.getpid() in live_pids()
    finally:
        child.kill()
        child.wait()
