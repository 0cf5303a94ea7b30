"""Talking to the daemon of a data directory: ask it, start it, stay attached to it.

The protocol is one JSON object per line over the daemon's local socket (owner-only): a request
``{"op": ..., ...}`` gets one reply ``{"ok": true, "result": ...}`` or ``{"ok": false, "code": ...,
"message": ...}`` (our error family, code and message as MCP clients get them). ``attach`` is the
exception: the connection stays open, the daemon counts it as a client that needs it, and says
``{"event": "stop"}`` before it stops on request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from codebase_mcp.daemon.paths import DaemonPaths
from codebase_mcp.errors import DaemonError, error_for_code

log = logging.getLogger(__name__)

LINE_LIMIT = 64 * 1024 * 1024  # the longest reply line (search results at full detail)
OTHER_DATABASE = "other_database"  # the daemon of this data directory uses another database than the caller
OTHER_MODEL = "other_model"  # ... or another embedding model
START_TIMEOUT = 90.0  # a first start creates the embedded cluster: tens of seconds on a slow disk


class NotRunning(Exception):
    """No daemon answers on this data directory's socket."""


async def _connect(paths: DaemonPaths) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.wait_for(asyncio.open_unix_connection(str(paths.socket), limit=LINE_LIMIT), 5.0)
    except (OSError, TimeoutError) as exc:
        raise NotRunning(str(exc)) from exc


async def request(home: Path, op: str, *, timeout: float = 60.0, **args: Any) -> Any:
    """One request to the running daemon; NotRunning when none answers, our error when it refuses."""
    reader, writer = await _connect(DaemonPaths.of(home))
    try:
        writer.write(json.dumps({"op": op, **args}).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, TimeoutError) as exc:
        raise NotRunning(str(exc)) from exc
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if not line:
        raise NotRunning("the daemon closed the connection")
    reply = json.loads(line)
    if reply.get("ok"):
        return reply.get("result")
    if reply.get("code") == OTHER_DATABASE:
        raise NotRunning(str(reply.get("message")))
    raise error_for_code(str(reply.get("code")), str(reply.get("message")))


def request_blocking(home: Path, op: str, *, timeout: float, **args: Any) -> Any:
    """``request`` for a caller in a worker thread (no event loop): a blocking socket, the same protocol."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(DaemonPaths.of(home).socket))
            sock.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
            with sock.makefile("rb") as stream:
                line = stream.readline(LINE_LIMIT)
    except OSError as exc:  # no socket, refused, timed out
        raise NotRunning(str(exc)) from exc
    if not line:
        raise NotRunning("the daemon closed the connection")
    reply = json.loads(line)
    if reply.get("ok"):
        return reply.get("result")
    if reply.get("code") in (OTHER_DATABASE, OTHER_MODEL):
        raise NotRunning(str(reply.get("message")))
    raise error_for_code(str(reply.get("code")), str(reply.get("message")))


async def status(home: Path) -> dict[str, Any] | None:
    """The running daemon's status, or None when none runs."""
    try:
        result = await request(home, "status", timeout=10.0)
    except NotRunning:
        return None
    return dict(result)


def spawn(home: Path) -> subprocess.Popen[bytes]:
    """Start a daemon for ``home`` detached from this process (own session, no terminal, stdio away
    from ours). If one is already running, the new one sees its lock and exits at once."""
    paths = DaemonPaths.of(home)
    paths.directory.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CODEBASE_MCP_HOME=str(home))
    with paths.log.open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "codebase_mcp", "daemon", "run"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            cwd=str(paths.directory),
            start_new_session=True,
            close_fds=True,
        )
    # reap it when it exits, so a long-lived starter (an MCP server) keeps no zombie
    threading.Thread(target=proc.wait, name="daemon-reaper", daemon=True).start()
    return proc


async def listening(home: Path) -> bool:
    """Whether a daemon accepts connections on this data directory's socket (no request is made: a
    busy daemon answers this at once)."""
    try:
        _reader, writer = await _connect(DaemonPaths.of(home))
    except NotRunning:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def wait_started(home: Path, proc: subprocess.Popen[bytes], *, timeout: float = START_TIMEOUT) -> dict[str, Any]:
    """The status of the daemon ``proc`` was spawned to be, once it answers (or of the one that was
    already running, when ``proc`` exits at once because it found that one's lock)."""
    deadline = time.monotonic() + timeout
    while True:
        info = await status(home)
        if info is not None:
            return info
        code = proc.poll()
        if code not in (None, 0):
            raise DaemonError(
                f"The background daemon did not start (exit code {code}). Its log is "
                f"{home / 'logs' / 'codebase-mcp.log'} (and {DaemonPaths.of(home).log})."
            )
        if time.monotonic() > deadline:
            raise DaemonError(
                f"The background daemon did not answer within {timeout:.0f} s. Its log is "
                f"{home / 'logs' / 'codebase-mcp.log'}; `codebase-mcp daemon status` shows whether it runs."
            )
        await asyncio.sleep(0.1)


async def ensure_running(home: Path, *, timeout: float = START_TIMEOUT) -> dict[str, Any]:
    """The running daemon's status, starting one first when none runs."""
    info = await status(home)
    if info is not None:
        return info
    proc = spawn(home)
    log.info("started the background daemon (pid %d) for %s", proc.pid, home)
    return await wait_started(home, proc, timeout=timeout)


async def hand_over(home: Path, *, timeout: float = START_TIMEOUT) -> dict[str, Any]:
    """A job was queued: make sure the daemon runs, and have it look for the job now."""
    info = await ensure_running(home, timeout=timeout)
    with contextlib.suppress(NotRunning):
        await request(home, "wake", timeout=10.0)
    return info


async def kick(home: Path) -> subprocess.Popen[bytes] | None:
    """The quick half of a hand-over, for a caller that must answer at once (a job start over MCP):
    spawn a daemon when none listens, and return it; waiting for it to answer, and waking a running
    one, are ``follow_up``'s, off the caller's path. The spawned daemon is detached, so it starts even
    when the caller exits right after answering, and claims queued jobs as soon as it is up."""
    if await listening(home):
        return None
    proc = spawn(home)
    log.info("started the background daemon (pid %d) for %s", proc.pid, home)
    return proc


async def follow_up(home: Path, spawned: subprocess.Popen[bytes] | None, *, timeout: float = START_TIMEOUT) -> None:
    """The slow half of a hand-over: wait for the daemon ``kick`` spawned to answer (DaemonError when
    it does not), or wake the running one so that it looks for the new job now."""
    if spawned is not None:
        await wait_started(home, spawned, timeout=timeout)
    with contextlib.suppress(NotRunning):
        await request(home, "wake", timeout=10.0)


async def stay_attached(home: Path, stopping: asyncio.Event) -> None:
    """Keep the daemon running while this process runs (an MCP server): start it if none runs, hold a
    connection it counts as a client, and start a new one if it dies (killed, crashed). A daemon that
    was asked to stop (`codebase-mcp daemon stop`) is not restarted here; the next job start does."""
    paths = DaemonPaths.of(home)
    failures = 0
    while not stopping.is_set():
        stopped_on_request = False
        try:
            await ensure_running(home)
            failures = 0
            reader, writer = await _connect(paths)
            try:
                writer.write(b'{"op": "attach"}\n')
                await writer.drain()
                waiter = asyncio.ensure_future(stopping.wait())
                try:
                    while not stopping.is_set():
                        line_task = asyncio.ensure_future(reader.readline())
                        await asyncio.wait({line_task, waiter}, return_when=asyncio.FIRST_COMPLETED)
                        if not line_task.done():
                            line_task.cancel()
                            break
                        line = line_task.result()
                        if not line:
                            log.warning("the background daemon went away; starting it again")
                            break
                        if json.loads(line).get("event") == "stop":
                            stopped_on_request = True
                            break
                finally:
                    waiter.cancel()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        except (NotRunning, OSError, ValueError) as exc:
            log.warning("lost the background daemon: %s", exc)
        except DaemonError as exc:
            failures += 1
            log.warning("%s", exc.message)
        except Exception:  # a bug here must not end the server's link to its daemon unnoticed
            failures += 1
            log.exception("following the background daemon failed; trying again")
        if stopped_on_request:
            await stopping.wait()
            return
        with contextlib.suppress(TimeoutError):  # a daemon that cannot start is retried ever less often
            await asyncio.wait_for(stopping.wait(), min(1.0 * 2**failures, 300.0))
