"""The daemon process: one per data directory (a lock file it holds for its whole life; the kernel
releases it on any exit, SIGKILL included, so a killed daemon is replaced by the next start).

It runs the job worker, the watcher of this machine's repositories, and a local socket server for
the CLI (searches on the warm model) and MCP servers (which stay attached while they live). It exits
after ``daemon_idle_seconds`` with no job to claim, no attached server, and no request or sync; on
exit it releases the embedded PostgreSQL (stopping it when no other live process uses it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import signal
import time
from datetime import UTC, datetime
from typing import Any

from filelock import FileLock, Timeout

from codebase_mcp import package_version
from codebase_mcp.daemon.client import OTHER_DATABASE, OTHER_MODEL
from codebase_mcp.daemon.paths import DaemonPaths, database_key
from codebase_mcp.daemon.watcher import Watcher
from codebase_mcp.domain import SearchFilters
from codebase_mcp.errors import CodebaseError, DatabaseUnavailable, InvalidInput
from codebase_mcp.jobs.worker import Worker
from codebase_mcp.runtime import Runtime, open_runtime
from codebase_mcp.settings import Settings
from codebase_mcp.storage import job_store

log = logging.getLogger(__name__)

IDLE_CHECK_SECONDS = 1.0


class _OtherDatabase(Exception):
    """A request meant for a daemon of another database (the caller falls back to its own work)."""


class _OtherModel(Exception):
    """An embed request for another model than this daemon's."""


MAX_EMBED_TEXTS = 64  # one request embeds a query or a few, not a repository


class Daemon:
    def __init__(self, runtime: Runtime, paths: DaemonPaths) -> None:
        self.rt = runtime
        self.settings = runtime.settings
        self.paths = paths
        # a job and a sync of one repository take turns on its repository lock (indexing/run.py)
        self.watcher = Watcher(runtime, self.touch) if self.settings.watch else None
        # jobs queued through us (servers, the CLI) wake the worker at once; the slow poll finds the others
        self.worker = Worker(
            runtime,
            poll_seconds=max(self.settings.job_poll_seconds, 5.0),
            # a repository is watched from the moment its job completes
            on_completed=lambda _job: self.watcher.look_now() if self.watcher else None,
        )
        self.stopping = asyncio.Event()
        self.attached: set[asyncio.StreamWriter] = set()
        self.started_at = datetime.now(UTC)
        self.last_activity = time.monotonic()
        self.stop_reason = ""
        self.database_key = database_key(self.settings.database_url)
        self.searches = 0
        self.embeds = 0  # queries embedded for MCP servers

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def stop(self, reason: str) -> None:
        if not self.stopping.is_set():
            self.stop_reason = reason
            self.stopping.set()

    def status(self) -> dict[str, Any]:
        job = self.worker.current
        return {
            "pid": os.getpid(),
            "version": package_version(),
            "home": str(self.settings.home),
            "database": "embedded" if self.rt.db.embedded else "external",
            "started_at": self.started_at.isoformat(),
            "idle_seconds": round(time.monotonic() - self.last_activity, 1),
            "idle_exit_seconds": self.settings.daemon_idle_seconds,
            "attached_servers": len(self.attached),
            "jobs_run": self.worker.jobs_run,
            "searches": self.searches,
            "queries_embedded": self.embeds,
            "current_job": {"job_id": str(job.id), "repo_path": job.repo_path} if job else None,
            "watching": self.settings.watch,
            "repositories": self.watcher.status() if self.watcher else [],
        }

    async def run(self) -> None:
        if self.paths.socket.exists() or self.paths.socket.is_symlink():
            self.paths.socket.unlink()  # left by a daemon that was killed: we hold the lock now
        server = await asyncio.start_unix_server(self._client, path=str(self.paths.socket), limit=1024 * 1024)
        os.chmod(self.paths.socket, 0o600)
        tasks = [asyncio.create_task(self.worker.run()), asyncio.create_task(self._idle_watch())]
        if self.watcher is not None:
            tasks.append(asyncio.create_task(self.watcher.run(self.stopping)))
        log.info("daemon %d serving %s", os.getpid(), self.settings.home)
        try:
            await self.stopping.wait()
        finally:
            log.info("daemon %d stopping: %s", os.getpid(), self.stop_reason)
            server.close()
            for writer in list(self.attached):
                with contextlib.suppress(Exception):
                    writer.write(b'{"event": "stop"}\n')
                    await writer.drain()
                writer.close()
            self.worker.stop()  # hands a job in flight back at its next batch boundary, resumable
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
            with contextlib.suppress(OSError):
                self.paths.socket.unlink()

    async def _idle_watch(self) -> None:
        while not self.stopping.is_set():
            await asyncio.sleep(IDLE_CHECK_SECONDS)
            if self.attached or self.worker.current is not None or (self.watcher and self.watcher.busy):
                self.touch()
                continue
            if time.monotonic() - self.last_activity <= self.settings.daemon_idle_seconds:
                continue
            try:
                async with self.rt.db.connection() as conn:
                    # a running job whose worker has missed a few beats will soon be ours to take over
                    waiting = await job_store.claimable_count(conn, 3 * self.settings.job_heartbeat_seconds)
            except DatabaseUnavailable:
                waiting = 1  # cannot tell: stay, the worker retries
            if waiting:
                self.worker.wake()
                self.touch()
            else:
                self.stop(f"idle for {self.settings.daemon_idle_seconds:g} s")

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    message = json.loads(line)
                    op = message.pop("op")
                except (ValueError, KeyError, AttributeError, TypeError):
                    await self._reply(writer, {"ok": False, "code": "invalid_input", "message": "bad request"})
                    continue
                if op != "status":  # looking at the daemon does not keep it alive
                    self.touch()
                if op == "attach":
                    await self._attached(reader, writer)
                    return
                try:
                    result = await self._handle(op, message)
                    reply: dict[str, Any] = {"ok": True, "result": result}
                except _OtherDatabase as exc:
                    reply = {"ok": False, "code": OTHER_DATABASE, "message": str(exc)}
                except _OtherModel as exc:
                    reply = {"ok": False, "code": OTHER_MODEL, "message": str(exc)}
                except CodebaseError as exc:
                    reply = {"ok": False, "code": exc.code, "message": exc.message}
                except Exception as exc:
                    log.exception("daemon request %r failed", op)
                    reply = {
                        "ok": False,
                        "code": "internal_error",
                        "message": f"Internal error in the daemon ({type(exc).__name__}); see its log.",
                    }
                await self._reply(writer, reply)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, reply: dict[str, Any]) -> None:
        writer.write(json.dumps(reply).encode() + b"\n")
        await writer.drain()

    async def _attached(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """An MCP server needs the daemon until it closes this connection (exits, however it exits)."""
        self.attached.add(writer)
        try:
            while await reader.read(4096):
                pass
        finally:
            self.attached.discard(writer)
            self.touch()

    async def _handle(self, op: str, args: dict[str, Any]) -> Any:
        if op == "status":
            return self.status()
        if op == "wake":  # a job was queued, or a repository indexed: look for both now
            self.worker.wake()
            if self.watcher is not None:
                self.watcher.look_now()
            return {"woken": True}
        if op == "stop":
            self.stop("asked to stop")
            return {"stopping": True, "pid": os.getpid()}
        if op == "search":
            if args.pop("database_key", None) != self.database_key:
                raise _OtherDatabase("this daemon uses another database")
            filters = SearchFilters(**args.get("filters", {}))
            response = await self.rt.search.search(
                str(args["query"]),
                project_id=str(args.get("project", "default")),
                filters=filters,
                limit=int(args.get("limit", 10)),
                mode=args.get("mode", "hybrid"),
                explain=bool(args.get("explain", False)),
            )
            self.searches += 1
            return response.to_dict()
        if op == "embed":
            return await self._embed(args)
        raise InvalidInput(f"Unknown daemon request {op!r}: expected status, wake, stop, search, embed or attach.")

    async def _embed(self, args: dict[str, Any]) -> dict[str, Any]:
        """Queries embedded for the MCP servers of this data directory, so the machine holds one copy of
        the model (the servers load their own only when no daemon answers)."""
        model = self.rt.model
        if args.get("model") != model.name:
            raise _OtherModel(f"this daemon embeds with {model.name}")
        texts = [str(t) for t in args.get("texts", [])][:MAX_EMBED_TEXTS]
        vectors = await asyncio.to_thread(model.embed_batch, texts, "query")
        self.embeds += len(texts)
        return {"dimension": model.dimension, "vectors": base64.b64encode(vectors.astype("<f4").tobytes()).decode()}


async def serve(settings: Settings) -> int:
    """Run the daemon of ``settings.home`` until it is idle or asked to stop; 0 also when another
    daemon already runs (it keeps serving)."""
    paths = DaemonPaths.of(settings.home)
    paths.directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(paths.lock)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("a daemon already runs for %s", settings.home)
        return 0
    try:
        async with open_runtime(settings, max_connections=16) as rt:
            daemon = Daemon(rt, paths)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.add_signal_handler(sig, daemon.stop, signal.Signals(sig).name)
            await daemon.run()
    finally:
        lock.release()
    return 0
