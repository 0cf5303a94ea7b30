"""Handing a queued job to the daemon without making the client wait for it.

A job start answers as soon as its row is committed. The daemon is woken, or spawned (detached, so it
starts even if this server exits right after answering, and claims the job as soon as it is up); the
wait for a spawned daemon to answer runs here, in the background. If it does not start, the job says
so in its status message at once, and fails with the reason when no worker has claimed it within
``daemon_start_timeout_seconds`` of the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import time
import uuid

from codebase_mcp.daemon import client as daemon_client
from codebase_mcp.domain import JobStatus
from codebase_mcp.errors import CodebaseError, DaemonError
from codebase_mcp.runtime import Runtime
from codebase_mcp.storage import job_store

log = logging.getLogger(__name__)

WHAT_TO_DO = "`codebase-mcp daemon start` shows why; or set CODEBASE_MCP_DAEMON=false to run jobs inside the server."


class Handovers:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.tasks: set[asyncio.Task[None]] = set()

    async def hand_over(self, job_id: uuid.UUID) -> None:
        """Wake the daemon, or spawn one (milliseconds); the rest happens in the background."""
        started = time.monotonic()
        try:
            spawned = await daemon_client.kick(self.rt.settings.home)
        except OSError as exc:  # could not even spawn it (no such interpreter, out of processes)
            spawned = None
            failure: DaemonError | None = DaemonError(f"The background daemon could not be started: {exc}.")
        else:
            failure = None
        task = asyncio.create_task(self._follow(job_id, spawned, started, failure))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _follow(
        self, job_id: uuid.UUID, spawned: subprocess.Popen[bytes] | None, started: float, failure: DaemonError | None
    ) -> None:
        settings = self.rt.settings
        limit = settings.daemon_start_timeout_seconds
        try:
            if failure is None:
                try:
                    await daemon_client.follow_up(settings.home, spawned, timeout=limit)
                    return
                except DaemonError as exc:
                    failure = exc
            log.warning("job %s waits for a daemon: %s", job_id, failure.message)
            async with self.rt.db.connection() as conn:
                waiting = await job_store.note_unclaimed(
                    conn, job_id, f"queued; the background daemon did not start: {failure.message} {WHAT_TO_DO}"
                )
            # another start (this server's, or any process's) may still bring a worker up in time
            while waiting and time.monotonic() - started < limit:
                await asyncio.sleep(min(1.0, max(limit - (time.monotonic() - started), 0.0)))
                async with self.rt.db.connection() as conn:
                    job = await job_store.get_job(conn, str(job_id))
                waiting = job.status is JobStatus.PENDING and job.attempt == 0
            if waiting:
                async with self.rt.db.connection() as conn:
                    await job_store.fail_unclaimed(
                        conn,
                        job_id,
                        f"No background daemon started within {limit:g} s to run this job: {failure.message} "
                        f"{WHAT_TO_DO}",
                    )
        except CodebaseError as exc:  # the database went away meanwhile: the job stays queued
            log.warning("could not follow the hand-over of job %s: %s", job_id, exc.message[:300])

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
