"""A job worker: claims indexing jobs from PostgreSQL and runs them, beating a heartbeat.

The MCP server runs one in-process by default; ``codebase-mcp worker`` runs one standalone, on any
machine that reaches the same database and the repository files. Parsing and embedding run in
threads, so the event loop (and an MCP server sharing it) stays responsive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psutil

from codebase_mcp.core.identity import process_id
from codebase_mcp.domain import BatchStats, Job, JobPhase, JobStatus, JobUpdate, Progress
from codebase_mcp.errors import Cancelled, CodebaseError, DatabaseUnavailable, JobTimedOut, LostOwnership
from codebase_mcp.indexing.indexer import Indexer
from codebase_mcp.indexing.locks import RepositoryLocks
from codebase_mcp.runtime import Runtime
from codebase_mcp.storage import job_store
from codebase_mcp.storage.database import Conn

log = logging.getLogger(__name__)


def live_pids() -> set[int]:
    """Processes of this host that are alive: a killed process whose parent has not reaped it yet (a
    zombie) is dead for our purposes."""
    alive = set()
    for proc in psutil.process_iter(["status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE:
            alive.add(proc.pid)
    return alive


def new_worker_id() -> str:
    return f"{process_id()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: a final status, or PENDING to hand the job back."""

    status: JobStatus
    message: str
    error: str | None = None


#: The nice value of the threads that do a job's CPU work: above the event loop's and the searches'.
BACKGROUND_NICE = 10
_background: ThreadPoolExecutor | None = None


def _lower_priority() -> None:
    if sys.platform == "linux":  # per thread on Linux only; elsewhere this would renice the process
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)


def background_executor() -> ThreadPoolExecutor:
    """The threads that read, chunk and embed for jobs, at a lower CPU priority than the event loop
    and the threads searches use (asyncio's default executor): while a job runs in the server, the
    scheduler gives searches and status polls the cores first (docs/benchmarks/search-latency.md)."""
    global _background
    if _background is None:
        # two: a batch is read and chunked while the previous one is stored, or embedded
        _background = ThreadPoolExecutor(max_workers=2, thread_name_prefix="job", initializer=_lower_priority)
    return _background


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        worker_id: str | None = None,
        locks: RepositoryLocks | None = None,
        poll_seconds: float | None = None,
        on_completed: Callable[[Job], None] = lambda _job: None,
    ) -> None:
        self.rt = runtime
        self.settings = runtime.settings
        self.worker_id = worker_id or new_worker_id()
        self.stopping = asyncio.Event()
        self.jobs_run = 0
        self.current: Job | None = None  # the job this worker is running
        self.poll_seconds = poll_seconds or self.settings.job_poll_seconds
        self.on_completed = on_completed  # called once a job's completion is recorded
        self._woken = asyncio.Event()
        # shared with a watcher in the same process (the daemon): a job and a sync take turns
        self.locks = locks or RepositoryLocks()
        # an outcome that could not be written because the database was down; written on reconnect
        self._unrecorded: tuple[uuid.UUID, int, Outcome] | None = None

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
        if self._unrecorded is not None:
            await self._record(*self._unrecorded)
            self._unrecorded = None
        async with self.rt.db.connection() as conn:
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
            async with self.locks.of(job.repo_path):
                await self._execute(job)
        finally:
            self.current = None
        self.jobs_run += 1
        return True

    async def _execute(self, job: Job) -> None:
        job_id, attempt = job.id, job.attempt
        log.info("job %s attempt %d: indexing %s", job_id, attempt, job.repo_path)
        started = time.monotonic()
        cancel = {"requested": job.cancel_requested}
        last_push = [0.0]
        beat = asyncio.create_task(self._heartbeat(job_id, attempt, cancel))

        latest: list[Progress] = []  # the indexer's live progress record, once it has reported

        async def fence(conn: Conn, stats: BatchStats) -> None:
            update = _update(latest[0], started) if latest else None
            cancel["requested"] = await job_store.add_counts(conn, job_id, attempt, stats, update)

        def should_stop() -> bool:
            if time.monotonic() - started > self.settings.indexing_job_timeout_seconds:
                raise JobTimedOut(
                    f"The job ran longer than {self.settings.indexing_job_timeout_seconds} s "
                    "(INDEXING_JOB_TIMEOUT_SECONDS); what it stored stays indexed. Start it again to continue."
                )
            return cancel["requested"] or self.stopping.is_set()

        pending_push: set[asyncio.Task[None]] = set()
        outcome: Outcome | None

        def progress(p: Progress) -> None:
            latest[:] = [p]
            now = time.monotonic()
            if now - last_push[0] < 1.0 and p.phase not in {JobPhase.FINALIZING, JobPhase.DONE}:
                return
            last_push[0] = now
            task = asyncio.get_running_loop().create_task(self._push(job_id, attempt, p, started, cancel))
            pending_push.add(task)
            task.add_done_callback(pending_push.discard)

        try:
            indexer = Indexer(self.rt.db, self.rt.model, self.settings, executor=background_executor())
            final = await indexer.index(
                job.repo_path,
                project_id=job.project_id,
                force=job.force_reindex and attempt == 1,
                progress=progress,
                should_stop=should_stop,
                fence=fence,
            )
            # the last progress tick may still be in flight (and is cancelled below): publish the
            # final figures before the outcome, so a completed job shows them
            async with self.rt.db.connection() as conn:
                await job_store.publish_progress(conn, job_id, attempt, _update(final, started))
            outcome = Outcome(JobStatus.COMPLETED, "completed")
        except LostOwnership:
            log.warning("job %s attempt %d was taken over by another worker; stopping", job_id, attempt)
            outcome = None
        except Cancelled:
            if cancel["requested"]:
                outcome = Outcome(JobStatus.CANCELLED, "cancelled at a batch boundary; the index is consistent")
            else:  # this worker is shutting down: hand the job back for another to resume
                outcome = Outcome(JobStatus.PENDING, "requeued: worker stopped")
        except JobTimedOut as exc:
            outcome = Outcome(JobStatus.FAILED, "failed", str(exc))
        except DatabaseUnavailable as exc:
            # the database went away (restart, failover, terminated connection): hand the job back
            # so it resumes from its last committed batch once the database answers again
            log.warning("job %s attempt %d: database error, requeueing: %s", job_id, attempt, exc.message)
            outcome = Outcome(JobStatus.PENDING, f"requeued after a database error: {exc.message[:300]}")
        except CodebaseError as exc:
            outcome = Outcome(JobStatus.FAILED, "failed", exc.message)
        except Exception as exc:
            log.exception("job %s failed", job_id)
            outcome = Outcome(JobStatus.FAILED, "failed", f"Internal error ({type(exc).__name__}); see the server log.")
        finally:
            beat.cancel()
            for task in list(pending_push):
                task.cancel()
        if outcome is None:
            return
        try:
            await self._record(job_id, attempt, outcome)
        except DatabaseUnavailable:
            self._unrecorded = (job_id, attempt, outcome)
            raise

    async def _record(self, job_id: uuid.UUID, attempt: int, outcome: Outcome) -> None:
        async with self.rt.db.connection() as conn:
            if outcome.status is JobStatus.PENDING:
                recorded = await job_store.requeue(conn, job_id, attempt, outcome.message)
            else:
                recorded = await job_store.finish(conn, job_id, attempt, outcome.status, outcome.message, outcome.error)
        if recorded:
            log.info("job %s: %s", job_id, outcome.status)
            if outcome.status is JobStatus.COMPLETED and self.current is not None:
                self.on_completed(self.current)
        else:  # fenced out: the outcome of a stale attempt is not written
            log.warning("job %s attempt %d was taken over by another worker; its outcome is discarded", job_id, attempt)

    async def _push(
        self, job_id: uuid.UUID, attempt: int, p: Progress, started: float, cancel: dict[str, bool]
    ) -> None:
        try:
            async with self.rt.db.connection() as conn:
                cancel["requested"] = await job_store.publish_progress(conn, job_id, attempt, _update(p, started))
        except LostOwnership:
            pass  # the indexing batch fence will stop the job
        except Exception:
            log.exception("progress update failed")

    async def _heartbeat(self, job_id: uuid.UUID, attempt: int, cancel: dict[str, bool]) -> None:
        while True:
            await asyncio.sleep(self.settings.job_heartbeat_seconds)
            try:
                async with self.rt.db.connection() as conn:
                    cancel["requested"] = await job_store.heartbeat(conn, job_id, attempt, self.worker_id)
            except LostOwnership:
                return
            except DatabaseUnavailable as exc:
                log.warning("heartbeat failed: %s", exc.message[:300])
            except Exception:
                log.exception("heartbeat failed")


def _update(p: Progress, started: float) -> JobUpdate:
    """What a job's row says about a run's progress: half the bar for reading files, half for vectors."""
    if p.phase == JobPhase.EMBEDDING and p.chunks_total_to_embed:
        fraction = 0.5 + 0.5 * p.chunks_embedded / max(p.chunks_total_to_embed, 1)
    elif p.phase in (JobPhase.EMBEDDING, JobPhase.FINALIZING, JobPhase.DONE):
        fraction = 1.0 if p.phase != JobPhase.EMBEDDING else 0.5
    else:
        fraction = 0.5 * p.files_done / max(p.files_total, 1)
    fraction = min(max(fraction, 0.0), 1.0)
    elapsed = time.monotonic() - started
    eta = elapsed * (1 - fraction) / fraction if fraction > 0.02 else None
    return JobUpdate(
        phase=p.phase if p.phase != JobPhase.DONE else JobPhase.FINALIZING,
        files_total=None if p.phase == JobPhase.SCANNING else p.files_total,
        files_skipped=p.files_skipped,
        progress_percent=round(fraction * 100, 1),
        eta_seconds=round(eta, 1) if eta is not None else None,
        coverage_percent=round(100.0 * min(p.chunks_with_vectors / p.chunks_in_repository, 1.0), 1)
        if p.chunks_in_repository
        else None,
    )
