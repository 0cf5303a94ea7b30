"""Who this process is, as other processes see it: ``host:pid``. Job workers are named after it, and
every database session of the process carries it as its ``application_name``, so a worker that takes a
job over from a silent (paused, hung) process can end that process's sessions and the locks they hold."""

from __future__ import annotations

import os
import socket

APPLICATION_PREFIX = "codebase-mcp "
_MAX_APPLICATION_NAME = 63  # PostgreSQL's NAMEDATALEN - 1


def host_name() -> str:
    return socket.gethostname()


def process_id() -> str:
    return f"{host_name()}:{os.getpid()}"


def application_name(process: str | None = None) -> str:
    """The ``application_name`` of the database sessions of ``process`` (this one by default)."""
    return (APPLICATION_PREFIX + (process or process_id()))[:_MAX_APPLICATION_NAME]


def process_of_worker(worker_id: str) -> str | None:
    """``host:pid`` of a worker id ``host:pid:suffix``, or None if it is not one of ours."""
    parts = worker_id.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return f"{parts[0]}:{parts[1]}"
