"""Every index run is a run of one kind, driven through one controller.

A queued job (a worker runs it), ``codebase-mcp index`` in the foreground and the daemon's sync of a
watched repository all hand the indexer a ``RunControl``. The indexer reports its progress to it
(``report``), asks it at every batch boundary and while it waits for its repository whether to stop
(``check``: it raises the ``errors.Signal`` that stops the run, a cancel, the time limit or a lost record,
from this one place), fences every committed batch with it (``fence``, inside the batch's transaction)
and runs its CPU work on its executor (``in_thread``: the run's priority).

``RecordedRun`` is the control of every run the program starts: a row of the job table of its
``RunKind``, with a heartbeat, a cancel flag read back from every write, a time limit, and its outcome
written when it ends. What differs between kinds is policy, set by its constructor:

| kind | recorded from | time limit | CPU priority | when its process stops |
|---|---|---|---|---|
| ``index`` | its queueing (a worker claims it) | ``indexing_job_timeout_seconds`` | lower | back to the queue |
| ``foreground`` | its start | none (a person is waiting) | normal | cancelled |
| ``sync`` | its first write (or its failure) | none | lower | cancelled |

The base ``RunControl`` records nothing: the library's own calls (tests, benchmarks) use it.

Every run of a repository holds the one repository lock for its whole length (``repository_lock``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from codebase_mcp.core.identity import process_id
from codebase_mcp.domain import BatchStats, Job, JobPhase, JobStatus, JobUpdate, Progress, RunKind
from codebase_mcp.errors import Cancelled, CodebaseError, DatabaseUnavailable, JobTimedOut, LostOwnership
from codebase_mcp.settings import Settings
from codebase_mcp.storage import index_store, job_store, locks
from codebase_mcp.storage.database import Conn, Database

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The nice value of the threads that do a background run's CPU work: above the event loop's and the
#: searches'.
BACKGROUND_NICE = 10
_background: ThreadPoolExecutor | None = None


def _lower_priority() -> None:
    if sys.platform == "linux":  # per thread on Linux only; elsewhere this would renice the process
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)


def background_executor() -> ThreadPoolExecutor:
    """The threads that read, chunk and embed for jobs and syncs, at a lower CPU priority than the event
    loop and the threads searches use (asyncio's default executor): while a run works in the daemon or
    a server, the scheduler gives searches and status polls the cores first (docs/benchmarks/search-latency.md)."""
    global _background
    if _background is None:
        # two: a batch is read and chunked while the previous one is stored, or embedded
        _background = ThreadPoolExecutor(max_workers=2, thread_name_prefix="job", initializer=_lower_priority)
    return _background


def new_owner_id() -> str:
    """An id for a worker or a run's owner: ``host:pid:suffix`` (``identity.process_of_worker``)."""
    return f"{process_id()}:{uuid.uuid4().hex[:6]}"


class RunControl:
    """A run nobody records: it shows its progress to ``on_progress`` (if given), never stops on its own,
    fences nothing and works on ``executor`` (None: asyncio's default). Subclasses decide the rest."""

    def __init__(self, on_progress: Callable[[Progress], None] | None = None, executor: Executor | None = None) -> None:
        self.on_progress = on_progress
        self.executor = executor
        self.latest: Progress | None = None  # the indexer's live progress record, once it has reported

    def report(self, progress: Progress) -> None:
        """The run's progress changed (the indexer updates ``progress`` in place and reports it)."""
        self.latest = progress
        if self.on_progress is not None:
            self.on_progress(progress)

    def check(self) -> None:
        """Raise the ``Signal`` that stops the run here, if any: called at every batch boundary, and while
        the run waits for another run of its repository."""

    async def fence(self, conn: Conn, stats: BatchStats) -> None:
        """Inside the transaction of a batch that commits ``stats``: the run's record, checked (it raises
        ``LostOwnership`` when another owner has it) and updated in the same commit."""

    def in_thread(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``fn(*args)`` on the run's executor (its CPU priority)."""
        return asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    @property
    def nice(self) -> int:
        """The nice value of a worker process that does this run's CPU work: a background run's executor's."""
        return BACKGROUND_NICE if self.executor is not None and self.executor is _background else 0


@asynccontextmanager
async def repository_lock(db: Database, repo_id: int, run: RunControl) -> AsyncIterator[None]:
    """The one lock on "who may index this repository", held by every run for its whole length (a job,
    a foreground run, a sync), across processes and machines: PostgreSQL's session advisory lock
    ``(locks.REPOSITORY, repository id)``. A second run waits, still honouring its stop check, then finds
    only what changed meanwhile; PostgreSQL releases the lock if the holder dies."""

    def give_up() -> bool:
        try:
            run.check()
        except Cancelled:
            raise Cancelled("Indexing was cancelled while another run of this repository was finishing.") from None
        return False

    async with db.session_lock(locks.REPOSITORY, repo_id, give_up=give_up):
        yield


def job_update(p: Progress, started: float) -> JobUpdate:
    """What a run's row says about its progress: half the bar for reading files, half for vectors."""
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


@dataclass(frozen=True)
class Outcome:
    """How a recorded run ended: the status its record gets (PENDING: a job handed back for another
    attempt; None: another owner holds the record, so nothing is written) and what the record says."""

    status: JobStatus | None
    message: str
    error: str | None = None
    progress: Progress | None = None  # a completed run's final figures
    cause: Exception | None = None  # what stopped the run, when something did


#: Why ``check`` stopped a run (``RecordedRun.stopped_by``).
STOP_CANCEL, STOP_SHUTDOWN, STOP_PREEMPTED = "cancel", "shutdown", "preempted"


class RecordedRun(RunControl):
    """A run recorded in the job table (see the module's table for each kind's policy). Build one with
    ``claimed``, ``foreground`` or ``sync``, then ``execute`` the indexer under it."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        kind: RunKind,
        project_id: str,
        repo_path: str,
        *,
        job: Job | None = None,
        owner: str | None = None,
        timeout: float | None = None,
        stopping: asyncio.Event | None = None,
        preempt: Callable[[Progress], bool] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        super().__init__(on_progress, None if kind is RunKind.FOREGROUND else background_executor())
        self.db, self.settings, self.kind = db, settings, kind
        self.project_id, self.repo_path = project_id, repo_path
        self.job = job  # the run's row (None: not recorded yet)
        self.owner = owner or new_owner_id()
        self.timeout = timeout
        self.stopping = stopping  # set: the process is shutting down (a job goes back to the queue)
        self.preempt = preempt  # whether the run should give way, given its progress
        self.started = time.monotonic()
        self.started_at = datetime.now(UTC)
        self.stopped_by: str | None = None  # STOP_* once ``check`` has stopped the run
        self.outcome: Outcome | None = None  # once the run has ended
        self.recorded = False  # whether its outcome is written
        self._cancel = job.cancel_requested if job is not None else False
        self._lost = False
        # a sync's row, inserted in the transaction of its first write, until that write is known to have
        # committed (a later write, heartbeat or progress update found the row)
        self._unconfirmed = False
        self._last_push = 0.0
        self._pushes: set[asyncio.Task[None]] = set()

    @classmethod
    def claimed(
        cls, db: Database, settings: Settings, job: Job, worker_id: str, stopping: asyncio.Event
    ) -> RecordedRun:
        """The run of a queued job a worker has claimed (``stopping``: the worker is shutting down)."""
        return cls(
            db,
            settings,
            RunKind.INDEX,
            job.project_id,
            job.repo_path,
            job=job,
            owner=worker_id,
            timeout=settings.indexing_job_timeout_seconds,
            stopping=stopping,
        )

    @classmethod
    def foreground(
        cls,
        db: Database,
        settings: Settings,
        project_id: str,
        root: str,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> RecordedRun:
        """``codebase-mcp index`` in its own process, recorded from its start."""
        return cls(db, settings, RunKind.FOREGROUND, project_id, root, on_progress=on_progress)

    @classmethod
    def sync(
        cls, db: Database, settings: Settings, project_id: str, root: str, preempt: Callable[[Progress], bool]
    ) -> RecordedRun:
        """A watcher's sync, recorded from its first write: a sync that finds nothing to change leaves no
        row. ``preempt``: give way (at a batch boundary) when it holds, e.g. newer edits while embedding."""
        return cls(db, settings, RunKind.SYNC, project_id, root, preempt=preempt)

    @property
    def preempted(self) -> bool:
        return self.stopped_by == STOP_PREEMPTED

    async def execute(self, index: Callable[[], Awaitable[Progress]]) -> Outcome:
        """Run ``index`` (the indexer, handed this control) as this run: its heartbeat beats while it
        runs, and how it ended is written to its record. A ``CancelledError`` (the process is stopping)
        is recorded too, and propagates. Raises ``DatabaseUnavailable`` when the outcome could not be
        written: ``record(run.outcome)`` again once the database answers."""
        if self.kind is RunKind.FOREGROUND:
            await self._insert()
        beat = asyncio.create_task(self._heartbeat())
        try:
            outcome = await self._run(index)
        except asyncio.CancelledError:
            await self._interrupted()
            raise
        finally:
            beat.cancel()
            for task in list(self._pushes):
                task.cancel()
        self.outcome = outcome
        await self.record(outcome)
        return outcome

    async def _run(self, index: Callable[[], Awaitable[Progress]]) -> Outcome:
        try:
            final = await index()
            # the last progress tick may still be in flight (and is cancelled): publish the final
            # figures before the outcome, so a completed run shows them
            if self.job is not None:
                async with self.db.connection() as conn:
                    await job_store.publish_progress(
                        conn, self.job.id, self.job.attempt, job_update(final, self.started)
                    )
            return Outcome(JobStatus.COMPLETED, "completed", progress=final)
        except Exception as exc:
            return self._stopped(exc)

    def _stopped(self, exc: Exception) -> Outcome:
        """The outcome of a run that ``exc`` stopped."""
        requeue = self.kind is RunKind.INDEX  # a job resumes in another attempt; the other kinds end
        if isinstance(exc, LostOwnership):
            log.warning("%s run of %s was taken over; stopping", self.kind, self.repo_path)
            return Outcome(None, "taken over", cause=exc)
        if isinstance(exc, Cancelled):
            if self.stopped_by == STOP_PREEMPTED:
                return Outcome(JobStatus.CANCELLED, "gave way to newer edits; the next sync continues", cause=exc)
            if self.stopped_by == STOP_SHUTDOWN and requeue:  # the worker is stopping: another resumes
                return Outcome(JobStatus.PENDING, "requeued: worker stopped", cause=exc)
            return Outcome(JobStatus.CANCELLED, "cancelled at a batch boundary; the index is consistent", cause=exc)
        if isinstance(exc, JobTimedOut):
            return Outcome(JobStatus.FAILED, "failed", str(exc), cause=exc)
        if isinstance(exc, DatabaseUnavailable) and requeue:
            # the database went away (restart, failover, terminated connection): hand the job back so
            # it resumes from its last committed batch once the database answers again
            log.warning("%s: database error, requeueing: %s", self.repo_path, exc.message)
            return Outcome(JobStatus.PENDING, f"requeued after a database error: {exc.message[:300]}", cause=exc)
        if isinstance(exc, CodebaseError):
            return Outcome(JobStatus.FAILED, "failed", exc.message, cause=exc)
        log.error("%s run of %s failed", self.kind, self.repo_path, exc_info=exc)
        return Outcome(JobStatus.FAILED, "failed", f"Internal error ({type(exc).__name__}); see the log.", cause=exc)

    async def record(self, outcome: Outcome) -> bool:
        """Write how the run ended; False when nothing was written (another owner has the record, or a
        sync that changed nothing has none)."""
        if outcome.status is None:
            return False
        if self.job is None:
            if outcome.status is not JobStatus.FAILED:
                return False
            await self._insert()  # a failing sync is worth a record even if it wrote nothing
        job = self.job
        assert job is not None
        async with self.db.connection() as conn:
            if outcome.status is JobStatus.PENDING:
                recorded = await job_store.requeue(conn, job.id, job.attempt, outcome.message)
            else:
                recorded = await job_store.finish(
                    conn, job.id, job.attempt, outcome.status, outcome.message, outcome.error
                )
            if recorded and self.kind is RunKind.SYNC:
                await job_store.keep_last_sync(conn, job)
        if not recorded and self._unconfirmed:  # the write that recorded the run rolled back: it has no row
            self.job, self._unconfirmed = None, False
            return await self.record(outcome)
        self.recorded = recorded
        if recorded:
            log.info("%s %s: %s", self.kind, job.id, outcome.status)
        else:  # fenced out: the outcome of a stale attempt is not written
            log.warning("%s %s attempt %d was taken over; its outcome is discarded", self.kind, job.id, job.attempt)
        return recorded

    async def _interrupted(self) -> None:
        """The process is stopping this run (a signal, the daemon's exit): its record says so now rather
        than after a heartbeat timeout, and a job goes back to the queue."""
        job = self.job
        if job is None:
            return
        outcome = (
            Outcome(JobStatus.PENDING, "requeued: its process stopped")
            if self.kind is RunKind.INDEX
            else Outcome(JobStatus.CANCELLED, "stopped with its process; what it stored stays indexed")
        )
        try:
            await asyncio.wait_for(self.record(outcome), 5.0)
        except Exception as exc:  # the heartbeat timeout ends the record instead
            log.warning("could not record the end of %s %s: %s", self.kind, job.id, exc)

    async def _insert(self) -> None:
        async with self.db.connection() as conn:
            await index_store.ensure_project(conn, self.project_id)
            # runs of processes that died without ending theirs: said before this one is listed beside them
            await job_store.end_abandoned_runs(conn, self.settings.job_heartbeat_timeout_seconds, self.owner)
            self.job = await job_store.start_run(
                conn, self.kind, self.project_id, self.repo_path, self.owner, self.started_at
            )

    def report(self, progress: Progress) -> None:
        super().report(progress)
        if self.job is None:
            return
        now = time.monotonic()
        if now - self._last_push < 1.0 and progress.phase not in {JobPhase.FINALIZING, JobPhase.DONE}:
            return
        self._last_push = now
        task = asyncio.get_running_loop().create_task(self._push(self.job, job_update(progress, self.started)))
        self._pushes.add(task)
        task.add_done_callback(self._pushes.discard)

    def check(self) -> None:
        if self._lost:
            raise LostOwnership(f"the record of this {self.kind} run was taken over")
        if self.timeout is not None and time.monotonic() - self.started > self.timeout:
            raise JobTimedOut(
                f"The job ran longer than {self.timeout:g} s (INDEXING_JOB_TIMEOUT_SECONDS); what it stored "
                "stays indexed. Start it again to continue."
            )
        if self._cancel:
            self.stopped_by = STOP_CANCEL
            raise Cancelled("Indexing was cancelled; the files stored so far stay indexed.")
        if self.stopping is not None and self.stopping.is_set():
            self.stopped_by = STOP_SHUTDOWN
            raise Cancelled("Indexing stopped with its worker; another attempt resumes it.")
        if self.preempt is not None and self.latest is not None and self.preempt(self.latest):
            self.stopped_by = STOP_PREEMPTED
            raise Cancelled("The sync gave way to newer edits; the next one continues.")

    async def fence(self, conn: Conn, stats: BatchStats) -> None:
        job = self.job
        if job is None:
            if not stats.wrote:
                return
            # recorded in this write's transaction, on its connection (a second one, held while this one
            # waits for it, could exhaust the pool under many syncs): the row exists once the write commits
            job = self.job = await job_store.start_run(
                conn, self.kind, self.project_id, self.repo_path, self.owner, self.started_at
            )
            self._unconfirmed = True
        else:
            self._unconfirmed = False  # a write before this one committed, and its row with it
        update = job_update(self.latest, self.started) if self.latest is not None else None
        self._cancel = await job_store.add_counts(conn, job.id, job.attempt, stats, update)

    async def _push(self, job: Job, update: JobUpdate) -> None:
        try:
            async with self.db.connection() as conn:
                self._cancel = await job_store.publish_progress(conn, job.id, job.attempt, update)
        except LostOwnership:
            self._lost = not self._unconfirmed  # the next check stops the run
        except Exception:
            log.exception("progress update failed")
        else:
            self._unconfirmed = False

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.job_heartbeat_seconds)
            job = self.job
            if job is None:
                continue  # a sync is recorded from its first write
            try:
                async with self.db.connection() as conn:
                    self._cancel = await job_store.heartbeat(conn, job.id, job.attempt, self.owner)
                self._unconfirmed = False
            except LostOwnership:
                if self._unconfirmed:
                    continue  # the write that records the run has not committed yet
                self._lost = True
                return
            except DatabaseUnavailable as exc:
                log.warning("heartbeat failed: %s", exc.message[:300])
            except Exception:
                log.exception("heartbeat failed")
