"""A job worker: claims indexing jobs from PostgreSQL and runs them, beating a heartbeat.

The MCP server runs one in-process by default; ``codebase-mcp worker`` runs one standalone, on any
machine that reaches the same database and the repository files. A job runs under its controller
(``indexing/run.py``: heartbeat, cancel, timeout, fencing, progress, the lower-priority threads), as
every index run does. Parsing and embedding run in threads, so the event loop (and an MCP server sharing
it) stays responsive.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

import psutil

from codebase_mcp.domain import Job, JobStatus
from codebase_mcp.errors import DatabaseUnavailable
from codebase_mcp.indexing.run import RecordedRun, new_owner_id
from codebase_mcp.runtime import Runtime
from codebase_mcp.storage import job_store

log = logging.getLogger(__name__)


def live_pids() -> set[int]:
    """Processes of this host that are alive: a killed process whose parent has not reaped it yet (a
    zombie) is dead for our purposes."""
    alive = set()
    for proc in psutil.process_iter(["status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE:
            alive.add(proc.pid)
    return alive


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        worker_id: str | None = None,
        poll_seconds: float | None = None,
        on_completed: Callable[[Job], None] = lambda _job: None,
    ) -> None:
        self.rt = runtime
        self.settings = runtime.settings
        self.worker_id = worker_id or new_owner_id()
        self.stopping = asyncio.Event()
        self.jobs_run = 0
        self.current: Job | None = None  # the job this worker is running
        self.poll_seconds = poll_seconds or self.settings.job_poll_seconds
        self.on_completed = on_completed  # called once a job's completion is recorded
        self._woken = asyncio.Event()
        # a run whose outcome could not be written because the database was down; written on reconnect
        self._unrecorded: RecordedRun | None = None

    async def run(self) -> None:
        """Claim and run jobs until ``stop()``; at most one at a time per worker."""
        async with self.rt.db.connection() as conn:
            host = socket.gethostname() + ":"
            released = await job_store.release_dead_local_jobs(conn, host, live_pids())
            if released:
                log.info("resuming %d job(s) whose local worker is gone", released)
            await job_store.prune(conn, self.settings.job_retention_days)
        failures = 0
        while not self.stopping.is_set():
            try:
                ran = await self.run_once()
                failures = 0
            except Exception as exc:  # the loop survives the database going away, and retries
                failures += 1
                if isinstance(exc, DatabaseUnavailable):
                    log.warning("database unavailable (%s); retrying", exc.message[:300])
                else:
                    log.exception("worker loop error")
                ran = False
            if not ran:
                # exponential backoff while the database is unavailable, capped at 30 s
                delay = self.settings.job_poll_seconds * (2 ** min(failures, 6)) if failures else 0
                await self._pause(min(delay, 30.0) if failures else self.poll_seconds)

    async def _pause(self, seconds: float) -> None:
        """Wait before looking for jobs again: ``seconds``, or less when stopped or woken."""
        waiters = {asyncio.ensure_future(self.stopping.wait()), asyncio.ensure_future(self._woken.wait())}
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            self._woken.clear()

    def wake(self) -> None:
        """A job was just queued for this worker: look now instead of at the next poll."""
        self._woken.set()

    def stop(self) -> None:
        self.stopping.set()

    async def run_once(self) -> bool:
        unrecorded = self._unrecorded
        if unrecorded is not None and unrecorded.outcome is not None:
            await unrecorded.record(unrecorded.outcome)
            self._unrecorded = None
        async with self.rt.db.connection() as conn:
            # foreground runs and syncs whose process stopped answering: no worker resumes them, but
            # their records end, and their process's sessions (which may hold a repository) with them
            await job_store.end_abandoned_runs(conn, self.settings.job_heartbeat_timeout_seconds, self.worker_id)
            job = await job_store.claim(
                conn,
                self.worker_id,
                self.settings.job_heartbeat_timeout_seconds,
                self.settings.max_concurrent_indexing_jobs,
            )
        if job is None:
            return False
        self.current = job
        try:
            await self._execute(job)
        finally:
            self.current = None
        self.jobs_run += 1
        return True

    async def _execute(self, job: Job) -> None:
        """Run a claimed job under its controller, which writes how the attempt ended."""
        log.info("job %s attempt %d: indexing %s", job.id, job.attempt, job.repo_path)
        run = RecordedRun.claimed(self.rt.db, self.settings, job, self.worker_id, self.stopping)
        try:
            outcome = await run.execute(
                lambda: self.rt.indexer.index(
                    job.repo_path, run=run, project_id=job.project_id, force=job.force_reindex and job.attempt == 1
                )
            )
        except DatabaseUnavailable:
            self._unrecorded = run  # written once the database answers again
            raise
        if run.recorded and outcome.status is JobStatus.COMPLETED:
            self.on_completed(job)
