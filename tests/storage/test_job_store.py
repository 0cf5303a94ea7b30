"""The job table's rules, on the real PostgreSQL: transitions enforced by the database, one active job
per repository, claims with SKIP LOCKED under a concurrency limit, fenced writes, pruning."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from codebase_mcp.core.identity import application_name
from codebase_mcp.domain import BatchStats, Job, JobPhase, JobStatus, JobUpdate, RunKind
from codebase_mcp.errors import InvalidInput, LostOwnership, NotFound
from codebase_mcp.storage import index_store
from codebase_mcp.storage import job_store as store
from codebase_mcp.storage.database import Database


def counts(files: int, chunks: int) -> BatchStats:
    return BatchStats(files_written=files, chunks_written=chunks)


async def new_job(db: Database, repo: str = "/r", project: str = "default") -> Job:
    async with db.connection() as conn:
        await index_store.ensure_project(conn, project)
        job, created = await store.create_job(conn, project, repo, False)
    assert created
    return job


async def test_database_refuses_illegal_transitions(db: Database) -> None:
    job = await new_job(db)
    async with db.connection() as conn:
        with pytest.raises(psycopg.errors.CheckViolation, match="illegal job transition pending -> completed"):
            await conn.execute(
                "UPDATE indexing_jobs SET status = 'completed', completed_at = now() WHERE id = %s", (job.id,)
            )
        await conn.rollback()
        claimed = await store.claim(conn, "w1", 30, 2)
        assert claimed is not None and claimed.status is JobStatus.RUNNING and claimed.attempt == 1
        assert await store.finish(conn, claimed.id, 1, JobStatus.COMPLETED, "done", None)
        await conn.commit()  # the caller owns the transaction
        for status in ("running", "pending", "failed"):
            with pytest.raises(psycopg.errors.CheckViolation):
                await conn.execute(
                    "UPDATE indexing_jobs SET status = %s::job_status, completed_at = NULL WHERE id = %s",
                    (status, job.id),
                )
            await conn.rollback()


async def test_one_active_job_per_repository(db: Database) -> None:
    first = await new_job(db, "/repo")
    async with db.connection() as conn:
        again, created = await store.create_job(conn, "default", "/repo", True)
        assert not created and again.id == first.id
        with pytest.raises(psycopg.errors.UniqueViolation):
            await conn.execute("INSERT INTO indexing_jobs (project_id, repo_path) VALUES ('default', '/repo')")
        await conn.rollback()
        other, created = await store.create_job(conn, "default", "/other", False)
        assert created and other.id != first.id


async def test_concurrent_starts_make_one_job(db: Database) -> None:
    async with db.connection() as conn:
        await index_store.ensure_project(conn, "default")

    async def start() -> uuid.UUID:
        async with db.connection() as conn:
            job, _ = await store.create_job(conn, "default", "/same", False)
            return job.id

    ids = await asyncio.gather(*(start() for _ in range(8)))
    assert len(set(ids)) == 1


async def test_claims_respect_limit_and_skip_locked(db: Database) -> None:
    for i in range(3):
        await new_job(db, f"/r{i}")
    async with db.connection() as a, db.connection() as b:
        j1 = await store.claim(a, "w1", 30, 2)
        await a.commit()  # a claim holds the claim lock until its transaction ends
        j2 = await store.claim(b, "w2", 30, 2)
        await b.commit()
        assert j1 is not None and j2 is not None and j1.id != j2.id
        assert await store.claim(a, "w3", 30, 2) is None, "MAX_CONCURRENT_INDEXING_JOBS is enforced"
        assert await store.claim(a, "w3", 30, 3) is not None


async def test_takeover_after_missed_heartbeat_fences_the_old_attempt(db: Database) -> None:
    job = await new_job(db)
    async with db.connection() as conn:
        first = await store.claim(conn, "w1", 30, 2)
        assert first is not None
        assert await store.claim(conn, "w2", 30, 2) is None, "a live job is not taken over"
        await conn.execute(
            "UPDATE indexing_jobs SET heartbeat_at = now() - interval '1 minute' WHERE id = %s", (job.id,)
        )
        await conn.commit()
        second = await store.claim(conn, "w2", 30, 2)
        await conn.commit()
        assert second is not None and second.id == job.id and second.attempt == 2
        assert second.status_message == "resumed"
        with pytest.raises(LostOwnership):
            await store.add_counts(conn, job.id, 1, counts(10, 10))
        await conn.rollback()
        with pytest.raises(LostOwnership):
            await store.publish_progress(conn, job.id, 1, JobUpdate(JobPhase.EMBEDDING, 1, 0, 50.0, None))
        await conn.rollback()
        assert not await store.finish(conn, job.id, 1, JobStatus.FAILED, "late", "late")
        assert await store.add_counts(conn, job.id, 2, counts(5, 7)) is False
        await conn.commit()
        row = await store.get_job(conn, str(job.id))
    assert row.files_indexed == 5 and row.chunks_created == 7 and row.worker_id == "w2"


async def test_cancel_pending_and_running(db: Database) -> None:
    pending = await new_job(db, "/p")
    async with db.connection() as conn:
        row = await store.request_cancel(conn, str(pending.id))
        assert row.status is JobStatus.CANCELLED and row.completed_at is not None
        running = await new_job(db, "/q")
        await store.claim(conn, "w", 30, 2)
        await conn.commit()
        row = await store.request_cancel(conn, str(running.id))
        assert row.status is JobStatus.RUNNING and row.cancel_requested
        assert await store.add_counts(conn, running.id, 1, BatchStats()) is True


async def test_ids_and_filters_are_checked(db: Database) -> None:
    async with db.connection() as conn:
        with pytest.raises(InvalidInput, match="not a job id"):
            await store.get_job(conn, "'; DROP TABLE indexing_jobs; --")
        with pytest.raises(NotFound):
            await store.get_job(conn, "00000000-0000-0000-0000-000000000000")
        with pytest.raises(InvalidInput, match="status must be one of"):
            await store.list_jobs(conn, None, "done", 10)


async def test_prune_removes_only_old_finished_jobs(db: Database) -> None:
    old = await new_job(db, "/old")
    live = await new_job(db, "/live")
    async with db.connection() as conn:
        await store.request_cancel(conn, str(old.id))
        await conn.commit()
        assert await store.prune(conn, 7) == 0, "finished a moment ago: kept"
        await conn.commit()  # now() is the transaction's start
        await asyncio.sleep(0.2)
        assert await store.prune(conn, 1e-6) == 1  # retention of 0.09 s
        assert (await store.get_job(conn, str(live.id))).status is JobStatus.PENDING


async def test_takeover_ends_the_silent_workers_sessions(db: Database) -> None:
    """A worker paused inside a transaction can hold locks no server timeout releases (a COPY waiting
    for its first row); taking its job over ends that process's sessions, and only those."""
    job = await new_job(db)
    silent = "otherhost:4242"
    async with (
        await psycopg.AsyncConnection.connect(db.url, application_name=application_name(silent)) as paused,
        await psycopg.AsyncConnection.connect(db.url, application_name=application_name("otherhost:4243")) as other,
    ):
        await paused.execute("SELECT id FROM projects FOR KEY SHARE")  # holds a lock, stays in a transaction
        async with db.connection() as conn:
            await conn.execute(
                "UPDATE indexing_jobs SET status = 'running', attempt = 1, worker_id = %s, "
                "heartbeat_at = now() - interval '1 minute' WHERE id = %s",
                (f"{silent}:abc123", job.id),
            )
        async with db.connection() as conn:
            taken = await store.claim(conn, "thishost:1:def456", 30, 2)
        assert taken is not None and taken.id == job.id and taken.attempt == 2
        with pytest.raises(psycopg.OperationalError):
            await paused.execute("SELECT 1")
        assert await (await other.execute("SELECT 1")).fetchone() == (1,), "other processes keep their sessions"


# --- runs of every kind: foreground runs and syncs are recorded beside the queued jobs ----------------


async def start_run(db: Database, kind: RunKind, repo: str = "/r", owner: str = "thishost:1:aaa111") -> Job:
    async with db.connection() as conn:
        await index_store.ensure_project(conn, "default")
        return await store.start_run(conn, kind, "default", repo, owner, datetime.now(UTC))


async def test_a_foreground_run_or_a_sync_is_never_queued_claimed_or_counted_as_a_job(db: Database) -> None:
    sync = await start_run(db, RunKind.SYNC)
    foreground = await start_run(db, RunKind.FOREGROUND)
    assert (sync.status, sync.attempt, sync.phase) == (JobStatus.RUNNING, 1, JobPhase.QUEUED)
    assert sync.started_at is not None and sync.started_at == sync.created_at
    async with db.connection() as conn:
        # a job of the same repository is queued beside them: they wait on the repository lock, not the queue
        job, created = await store.create_job(conn, "default", "/r", False)
        assert created and job.kind is RunKind.INDEX
        await conn.execute("UPDATE indexing_jobs SET heartbeat_at = now() - interval '1 hour' WHERE kind <> 'index'")
        claimed = await store.claim(conn, "w1", 30, 1)
        assert claimed is not None and claimed.id == job.id, "running runs are not counted against the limit"
        await conn.commit()
        assert await store.claim(conn, "w2", 30, 5) is None, "a silent foreground run or sync is not taken over"
        assert await store.claimable_count(conn, 30) == 0
        await conn.commit()
        # the database keeps them out of the queue and keeps their kind
        with pytest.raises(psycopg.errors.CheckViolation, match="only_jobs_queue"):
            await store.requeue(conn, sync.id, 1, "requeued")
        await conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation, match="kind cannot change"):
            await conn.execute("UPDATE indexing_jobs SET kind = 'index' WHERE id = %s", (foreground.id,))
        await conn.rollback()
        with pytest.raises(ValueError, match="create_job"):
            await store.start_run(conn, RunKind.INDEX, "default", "/r", "w", datetime.now(UTC))
        listed = await store.list_jobs(conn, None, None, 10)
    assert {j.kind for j in listed} == {RunKind.INDEX, RunKind.FOREGROUND, RunKind.SYNC}


async def test_runs_whose_process_stopped_answering_end_as_failed(db: Database) -> None:
    silent = await start_run(db, RunKind.FOREGROUND, "/a", owner="otherhost:4242:aaa111")
    alive = await start_run(db, RunKind.SYNC, "/b", owner="otherhost:4243:bbb222")
    job = await new_job(db, "/c")
    async with db.connection() as conn:
        claimed = await store.claim(conn, "otherhost:4244:ccc333", 30, 2)
        assert claimed is not None
        await conn.execute(
            "UPDATE indexing_jobs SET heartbeat_at = now() - interval '1 minute' WHERE id = ANY(%s)",
            ([silent.id, job.id],),
        )
    async with db.connection() as conn:
        assert await store.end_abandoned_runs(conn, 30, "thishost:1:ddd444") == 1
        ended = await store.get_job(conn, str(silent.id))
        assert ended.status is JobStatus.FAILED and ended.error_message == store.ABANDONED
        assert (await store.get_job(conn, str(alive.id))).status is JobStatus.RUNNING, "its heartbeat is fresh"
        assert (await store.get_job(conn, str(job.id))).status is JobStatus.RUNNING, "a job is taken over instead"
        with pytest.raises(LostOwnership):
            await store.heartbeat(conn, silent.id, 1, "otherhost:4242:aaa111")


async def test_dead_local_runs_fail_and_dead_local_jobs_are_released(db: Database) -> None:
    dead_run = await start_run(db, RunKind.SYNC, "/a", owner="thishost:999999:aaa111")
    live_run = await start_run(db, RunKind.FOREGROUND, "/b", owner="thishost:1:bbb222")
    await new_job(db, "/c")
    async with db.connection() as conn:
        dead_job = await store.claim(conn, "thishost:999998:ccc333", 30, 2)
        assert dead_job is not None
        assert await store.release_dead_local_jobs(conn, "thishost:", {1}) == 1
        await conn.commit()
        assert (await store.get_job(conn, str(dead_run.id))).status is JobStatus.FAILED
        assert (await store.get_job(conn, str(live_run.id))).status is JobStatus.RUNNING
        assert await store.claimable_count(conn, 30) == 1, "the dead worker's job is claimable at once"


async def test_the_job_list_keeps_the_last_sync_of_each_repository(db: Database) -> None:
    syncs = [await start_run(db, RunKind.SYNC, repo) for repo in ("/a", "/a", "/b")]
    running = await start_run(db, RunKind.SYNC, "/a")
    async with db.connection() as conn:
        for sync in syncs:
            assert await store.finish(conn, sync.id, 1, JobStatus.COMPLETED, "completed", None)
        assert await store.keep_last_sync(conn, syncs[1]) == 1
        kept = {j.id for j in await store.list_jobs(conn, None, None, 10)}
    assert kept == {syncs[1].id, syncs[2].id, running.id}, "the older finished sync of /a is gone"
