"""Where a data directory's daemon keeps its lock, socket and state."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

_MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to 107 bytes on Linux, 103 on macOS


@dataclass(frozen=True)
class DaemonPaths:
    directory: Path  # <home>/daemon
    lock: Path  # held (flock) by the running daemon for its whole life; the kernel frees it on any exit
    socket: Path  # the daemon's local socket (owner-only)
    log: Path  # the daemon's stderr (anything that escapes logging, e.g. a crash at start)

    @classmethod
    def of(cls, home: Path) -> DaemonPaths:
        home = home.expanduser().resolve()
        directory = home / "daemon"
        socket = directory / "daemon.sock"
        if len(os.fsencode(socket)) > _MAX_SOCKET_PATH:
            # a deep data directory: the socket lives in the temp dir under a name derived from it
            digest = hashlib.blake2b(os.fsencode(home), digest_size=8).hexdigest()
            socket = Path(tempfile.gettempdir()) / f"codebase-mcp-{os.getuid()}-{digest}.sock"
        return cls(directory, directory / "daemon.lock", socket, directory / "daemon.err")


def database_key(database_url: str | None) -> str:
    """Which database a process uses, without its credentials: the CLI only asks a daemon that uses
    the same one."""
    return hashlib.blake2b((database_url or "embedded").encode(), digest_size=8).hexdigest()
