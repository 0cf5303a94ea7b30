"""Every index run under one controller (indexing/run.py), on the real database: what each kind records,
when it stops, and how it ends."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from codebase_mcp.domain import BatchStats, Job, JobPhase, JobStatus, Progress, RunKind
from codebase_mcp.embeddings.fake import FakeEmbeddingModel
from codebase_mcp.indexing.indexer import Indexer
from codebase_mcp.indexing.run import (
    BACKGROUND_NICE,
    RecordedRun,
    RunControl,
    background_executor,
    new_owner_id,
    repository_lock,
)
from codebase_mcp.settings import Settings
from codebase_mcp.storage import job_store, repo_store
from codebase_mcp.storage.database import Conn, Database


async def jobs(db: Database) -> list[Job]:
    async with db.connection() as conn:
        return await job_store.list_jobs(conn, None, None, 50)


async def repo_id(db: Database, root: Path) -> int:
    async with db.connection() as conn:
        return (await repo_store.find_repository(conn, "default", str(root.resolve()))).id


def never(_progress: Progress) -> bool:
    return False


async def test_a_sync_is_recorded_only_when_it_writes(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, polyglot: Path
) -> None:
    indexer = Indexer(db, fake_model, settings)
    await indexer.index(polyglot)  # a run nobody records
    assert await jobs(db) == []

    quiet = RecordedRun.sync(db, settings, "default", str(polyglot), preempt=never)
    outcome = await quiet.execute(lambda: indexer.index(polyglot, run=quiet))
    assert outcome.status is JobStatus.COMPLETED and quiet.job is None and not quiet.recorded
    assert await jobs(db) == [], "a sync that changed nothing leaves no row"
    assert quiet.executor is background_executor(), "a sync works on the lower-priority threads"

    (polyglot / "src" / "taxes.py").write_text("def vat_for_country(code):\n    return 0.2\n")
    (polyglot / "native" / "slugify.rb").unlink()
    busy = RecordedRun.sync(db, settings, "default", str(polyglot), preempt=never)
    outcome = await busy.execute(lambda: indexer.index(polyglot, run=busy))
    [row] = await jobs(db)
    assert busy.job is not None and row.id == busy.job.id and busy.recorded
    assert (row.kind, row.status, row.phase) == (RunKind.SYNC, JobStatus.COMPLETED, JobPhase.DONE)
    assert row.files_indexed == 1 and row.chunks_embedded > 0 and row.progress_percent == 100
    assert row.started_at is not None and row.started_at < row.completed_at  # type: ignore[operator]


async def test_a_failing_sync_is_recorded_and_replaces_the_previous_one(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, polyglot: Path
) -> None:
    indexer = Indexer(db, fake_model, settings)
    await indexer.index(polyglot)
    (polyglot / "src" / "taxes.py").write_text("def vat_for_country(code):\n    return 0.2\n")
    first = RecordedRun.sync(db, settings, "default", str(polyglot), preempt=never)
    await first.execute(lambda: indexer.index(polyglot, run=first))

    class Broken(FakeEmbeddingModel):
        def embed_batch(self, texts, mode="document"):  # type: ignore[no-untyped-def]
            raise RuntimeError("model crashed")

    (polyglot / "src" / "taxes.py").write_text("def vat_for_region(code):\n    return 0.1\n")
    broken = Indexer(db, Broken(), settings)
    failing = RecordedRun.sync(db, settings, "default", str(polyglot), preempt=never)
    outcome = await failing.execute(lambda: broken.index(polyglot, run=failing))
    assert outcome.status is JobStatus.FAILED and outcome.error is not None and "RuntimeError" in outcome.error
    [row] = await jobs(db)
    assert failing.job is not None and row.id == failing.job.id, "the last sync of the repository is kept"
    assert row.status is JobStatus.FAILED and row.files_indexed == 1


async def test_a_sync_whose_first_write_rolls_back_has_no_phantom_record(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, polyglot: Path
) -> None:
    """A sync is recorded in the transaction of its first write: when that write rolls back, so does the
    record, and the failure is recorded on its own."""

    class FailsAfterRecording(RecordedRun):
        async def fence(self, conn: Conn, stats: BatchStats) -> None:
            await super().fence(conn, stats)
            if stats.wrote:
                raise RuntimeError("the batch fails after the run was recorded")

    quick = settings.model_copy(update={"job_heartbeat_seconds": 0.01})
    run = FailsAfterRecording(db, quick, RunKind.SYNC, "default", str(polyglot), preempt=never)
    outcome = await run.execute(lambda: Indexer(db, fake_model, quick).index(polyglot, run=run))
    assert outcome.status is JobStatus.FAILED and run.recorded
    [row] = await jobs(db)
    assert run.job is not None and row.id == run.job.id and row.status is JobStatus.FAILED
    assert row.files_indexed == 0 and row.error_message is not None and "RuntimeError" in row.error_message
    async with db.connection() as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM files")
        assert (await cur.fetchone() or {})["n"] == 0


async def test_a_sync_gives_way_to_newer_edits_while_embedding(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, polyglot: Path
) -> None:
    def embedding(progress: Progress) -> bool:
        return progress.phase is JobPhase.EMBEDDING

    run = RecordedRun.sync(db, settings, "default", str(polyglot), preempt=embedding)
    outcome = await run.execute(lambda: Indexer(db, fake_model, settings).index(polyglot, run=run))
    assert run.preempted and outcome.status is JobStatus.CANCELLED
    [row] = await jobs(db)
    assert row.status is JobStatus.CANCELLED and row.status_message == outcome.message
    assert row.files_indexed == 20 and row.chunks_embedded == 0, "stored, not embedded: the next sync embeds"


async def test_a_foreground_run_is_recorded_from_its_start_and_ends_with_its_process(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, polyglot: Path
) -> None:
    indexer = Indexer(db, fake_model, settings)
    await indexer.index(polyglot)
    holder = await repo_id(db, polyglot)
    seen: list[JobPhase] = []
    run = RecordedRun.foreground(db, settings, "default", str(polyglot), on_progress=lambda p: seen.append(p.phase))
    async with repository_lock(db, holder, RunControl()):  # another run has the repository
        task = asyncio.create_task(run.execute(lambda: indexer.index(polyglot, run=run)))
        while run.job is None:
            await asyncio.sleep(0.02)
        [waiting] = await jobs(db)
        assert (waiting.kind, waiting.status, waiting.phase) == (RunKind.FOREGROUND, JobStatus.RUNNING, JobPhase.QUEUED)
        task.cancel()  # as a stop signal does
        with pytest.raises(asyncio.CancelledError):
            await task
    [ended] = await jobs(db)
    assert ended.status is JobStatus.CANCELLED and ended.status_message is not None
    assert ended.status_message.startswith("stopped with its process")
    assert seen == [], "it never got the repository"

    again = RecordedRun.foreground(db, settings, "default", str(polyglot), on_progress=lambda p: seen.append(p.phase))
    outcome = await again.execute(lambda: indexer.index(polyglot, run=again))
    assert outcome.status is JobStatus.COMPLETED and seen[0] is JobPhase.SCANNING and seen[-1] is JobPhase.DONE
    assert again.executor is None, "a person waits on it: asyncio's threads, at normal priority"


async def test_a_run_whose_record_was_ended_stops(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, polyglot: Path
) -> None:
    """A foreground run paused past the heartbeat timeout has its record ended by another process; when
    it resumes it stops at its next check instead of writing under a record that says it failed."""
    quick = settings.model_copy(update={"job_heartbeat_seconds": 0.05})
    indexer = Indexer(db, fake_model, quick)
    run = RecordedRun.foreground(db, quick, "default", str(polyglot))

    async def index_after_the_record_ended() -> Progress:
        assert run.job is not None
        async with db.connection() as conn:
            await conn.execute("UPDATE indexing_jobs SET heartbeat_at = now() - interval '1 hour'")
            # (ended by this process here, whose own sessions are spared: another's would end them)
            await job_store.end_abandoned_runs(conn, 30, new_owner_id())
        await asyncio.sleep(0.3)  # a heartbeat finds the record gone
        return await indexer.index(polyglot, run=run)

    outcome = await run.execute(index_after_the_record_ended)
    assert outcome.status is None and not run.recorded
    [row] = await jobs(db)
    assert row.status is JobStatus.FAILED and row.error_message == job_store.ABANDONED
    async with db.connection() as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM files")
        assert (await cur.fetchone() or {})["n"] == 0, "it stopped before its first batch"


async def test_a_job_hands_itself_back_times_out_or_is_cancelled(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, polyglot: Path
) -> None:
    quick = settings.model_copy(update={"job_heartbeat_seconds": 0.05, "indexing_job_timeout_seconds": 10})
    indexer = Indexer(db, fake_model, quick)

    async def claimed(stopping: asyncio.Event) -> RecordedRun:
        async with db.connection() as conn:
            await job_store.create_job(conn, "default", str(polyglot), False)
            job = await job_store.claim(conn, "thishost:1:abc123", 30, 2)
        assert job is not None
        return RecordedRun.claimed(db, quick, job, "thishost:1:abc123", stopping)

    stopping = asyncio.Event()
    stopping.set()  # the worker is shutting down
    shutdown = await claimed(stopping)
    outcome = await shutdown.execute(lambda: indexer.index(polyglot, run=shutdown))
    assert outcome.status is JobStatus.PENDING and outcome.message == "requeued: worker stopped"
    assert shutdown.executor is background_executor(), "a job works on the lower-priority threads"

    late = await claimed(asyncio.Event())  # the same job, resumed
    assert late.job is not None and late.job.attempt == 2
    late.started -= 11  # it has run for longer than its limit
    outcome = await late.execute(lambda: indexer.index(polyglot, run=late))
    assert outcome.status is JobStatus.FAILED and outcome.error is not None and "longer than 10 s" in outcome.error

    cancelled = await claimed(asyncio.Event())
    assert cancelled.job is not None and cancelled.job.attempt == 1

    async def cancelled_by_id() -> Progress:
        assert cancelled.job is not None
        async with db.connection() as conn:
            await job_store.request_cancel(conn, str(cancelled.job.id))
        while True:  # the heartbeat reads the request; the next check stops the run
            cancelled.check()
            await asyncio.sleep(0.02)

    outcome = await asyncio.wait_for(cancelled.execute(cancelled_by_id), 10)
    assert outcome.status is JobStatus.CANCELLED and cancelled.stopped_by == "cancel"
    async with db.connection() as conn:
        assert (await job_store.get_job(conn, str(cancelled.job.id))).status is JobStatus.CANCELLED


@pytest.mark.skipif(sys.platform != "linux", reason="thread priorities are per thread on Linux only")
def test_the_background_threads_run_at_lower_priority() -> None:
    import os
    import threading

    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    mine = nice()
    assert background_executor().submit(nice).result() == max(mine, BACKGROUND_NICE)
