"""SQL for the job table: every index run's record. The database enforces the state machine (migrations
0002 and 0013); workers claim queued jobs (kind ``index``) with ``FOR UPDATE SKIP LOCKED``, a foreground
run or a sync is inserted running by its own process, and every write of a run is fenced with its attempt
number."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import psycopg

from codebase_mcp.core.identity import application_name, process_of_worker
from codebase_mcp.core.validation import parse_job_id, printable
from codebase_mcp.domain import BatchStats, Job, JobPhase, JobStatus, JobUpdate, RunKind
from codebase_mcp.errors import Conflict, InvalidInput, LostOwnership, NotFound
from codebase_mcp.storage import locks
from codebase_mcp.storage.database import Conn

_FIELDS = (
    "id",
    "kind",
    "project_id",
    "repo_path",
    "status",
    "phase",
    "status_message",
    "error_message",
    "force_reindex",
    "files_total",
    "files_indexed",
    "files_skipped",
    "chunks_created",
    "chunks_embedded",
    "progress_percent",
    "eta_seconds",
    "coverage_percent",
    "attempt",
    "worker_id",
    "heartbeat_at",
    "cancel_requested",
    "created_at",
    "started_at",
    "completed_at",
    "updated_at",
)


def _columns(alias: str = "") -> str:
    """The select list of a Job (``alias.`` before each column when given)."""
    return ", ".join(f"{alias}{f}::text AS {f}" if f == "status" else f"{alias}{f} AS {f}" for f in _FIELDS)


_COLUMNS = _columns()


def _job(row: dict[str, Any]) -> Job:
    return Job(
        **{**row, "kind": RunKind(row["kind"]), "status": JobStatus(row["status"]), "phase": JobPhase(row["phase"])}
    )


async def create_job(conn: Conn, project_id: str, repo_path: str, force: bool) -> tuple[Job, bool]:
    """A new pending job, or the active one for the same repository: ``(job, created)``. Foreground runs
    and syncs of the repository do not count: a job queued beside them waits for the repository lock."""
    for _ in range(3):
        cur = await conn.execute(
            f"SELECT {_COLUMNS} FROM indexing_jobs WHERE project_id = %s AND repo_path = %s "
            "AND status IN ('pending', 'running') AND kind = 'index'",
            (project_id, repo_path),
        )
        existing = await cur.fetchone()
        if existing is not None:
            return _job(existing), False
        try:
            async with conn.transaction():  # a savepoint: a lost race leaves the caller's transaction usable
                cur = await conn.execute(
                    "INSERT INTO indexing_jobs (project_id, repo_path, force_reindex, status_message) "
                    f"VALUES (%s, %s, %s, 'queued') RETURNING {_COLUMNS}",
                    (project_id, repo_path, force),
                )
                row = await cur.fetchone()
            assert row is not None
            return _job(row), True
        except psycopg.errors.UniqueViolation:
            continue  # raced with another start: return that one
    raise Conflict("Could not create the job while other starts raced for the same repository; try again.")


async def create_failed_job(conn: Conn, project_id: str, repo_path: str, message: str) -> Job:
    """Record a request that cannot run (bad path) as a failed job, so its status can be read."""
    cur = await conn.execute(
        "INSERT INTO indexing_jobs (project_id, repo_path, status, error_message, status_message, completed_at) "
        f"VALUES (%s, %s, 'failed', %s, 'rejected', now()) RETURNING {_COLUMNS}",
        (project_id, printable(repo_path, 4096), printable(message, 2000)),
    )
    row = await cur.fetchone()
    assert row is not None
    return _job(row)


async def start_run(
    conn: Conn, kind: RunKind, project_id: str, repo_path: str, owner: str, started_at: datetime
) -> Job:
    """Record a foreground run or a sync, running from ``started_at`` and owned by ``owner`` (a process's
    run id, ``host:pid:suffix``): attempt 1, beating its heartbeat from now on."""
    if kind is RunKind.INDEX:
        raise ValueError("a queued job is created by create_job and claimed by a worker")
    cur = await conn.execute(
        "INSERT INTO indexing_jobs (kind, project_id, repo_path, status, attempt, worker_id, heartbeat_at, "
        " status_message, created_at, started_at) "
        f"VALUES (%s, %s, %s, 'running', 1, %s, now(), 'started', %s, %s) RETURNING {_COLUMNS}",
        (str(kind), project_id, repo_path, owner, started_at, started_at),
    )
    row = await cur.fetchone()
    assert row is not None
    return _job(row)


async def get_job(conn: Conn, job_id: str, project_id: str | None = None) -> Job:
    jid = parse_job_id(job_id)
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM indexing_jobs WHERE id = %s", (jid,))
    row = await cur.fetchone()
    if row is None or (project_id is not None and row["project_id"] != project_id):
        raise NotFound(f"No indexing job {jid}" + (f" in project {project_id!r}." if project_id else "."))
    return _job(row)


async def list_jobs(conn: Conn, project_id: str | None, status: str | None, limit: int) -> list[Job]:
    if status is not None and status not in set(JobStatus):
        raise InvalidInput(f"status must be one of {', '.join(JobStatus)}; got {status[:40]!r}.")
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM indexing_jobs WHERE (%(p)s::text IS NULL OR project_id = %(p)s) "
        "AND (%(s)s::job_status IS NULL OR status = %(s)s::job_status) ORDER BY created_at DESC LIMIT %(n)s",
        {"p": project_id, "s": status, "n": limit},
    )
    return [_job(r) for r in await cur.fetchall()]


async def request_cancel(conn: Conn, job_id: str) -> Job:
    """Pending jobs are cancelled at once; running ones at their next batch boundary."""
    jid = parse_job_id(job_id)
    await conn.execute(
        "UPDATE indexing_jobs SET status = 'cancelled', completed_at = now(), status_message = 'cancelled' "
        "WHERE id = %s AND status = 'pending'",
        (jid,),
    )
    await conn.execute(
        "UPDATE indexing_jobs SET cancel_requested = true, status_message = 'cancelling' "
        "WHERE id = %s AND status = 'running'",
        (jid,),
    )
    return await get_job(conn, str(jid))


async def note_unclaimed(conn: Conn, job_id: uuid.UUID, message: str) -> bool:
    """Say why a job no worker has claimed yet is still waiting (its status message); False once a
    worker has claimed it (or it was cancelled)."""
    cur = await conn.execute(
        "UPDATE indexing_jobs SET status_message = %s WHERE id = %s AND status = 'pending' AND attempt = 0",
        (printable(message, 2000), job_id),
    )
    return cur.rowcount == 1


async def fail_unclaimed(conn: Conn, job_id: uuid.UUID, error: str) -> bool:
    """Fail a job that no worker ever claimed (no worker could be started for it); False when one did."""
    cur = await conn.execute(
        "UPDATE indexing_jobs SET status = 'failed', completed_at = now(), status_message = 'failed', "
        " error_message = %s WHERE id = %s AND status = 'pending' AND attempt = 0",
        (printable(error, 2000), job_id),
    )
    return cur.rowcount == 1


async def claim(conn: Conn, worker_id: str, heartbeat_timeout: float, max_running: int) -> Job | None:
    """Claim the oldest pending job, or a running one whose worker stopped beating, if fewer than
    ``max_running`` jobs are running with a live heartbeat.

    Taking a job over also ends the database sessions of the silent worker's process: a process
    paused in the middle of a write (SIGSTOP, a frozen VM) can hold row locks that no server-side
    timeout releases (a COPY waiting for its first row ignores ``statement_timeout``), and the new
    owner would wait on them for as long as the pause lasts."""
    # serialise claims (until the caller's transaction ends) so the concurrency limit holds across workers
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (locks.JOB_CLAIM,))
    cur = await conn.execute(
        "SELECT count(*) AS n FROM indexing_jobs WHERE status = 'running' AND kind = 'index' "
        "AND heartbeat_at >= now() - make_interval(secs => %s)",
        (heartbeat_timeout,),
    )
    row = await cur.fetchone()
    if row is not None and row["n"] >= max_running:
        return None
    cur = await conn.execute(
        "WITH old AS (SELECT id, worker_id FROM indexing_jobs WHERE kind = 'index' AND (status = 'pending' "
        "  OR (status = 'running' AND heartbeat_at < now() - make_interval(secs => %(t)s))) "
        "  ORDER BY created_at FOR UPDATE SKIP LOCKED LIMIT 1) "
        "UPDATE indexing_jobs j SET status = 'running', attempt = attempt + 1, worker_id = %(w)s, "
        " heartbeat_at = now(), started_at = coalesce(started_at, now()), "
        " status_message = CASE WHEN attempt > 0 THEN 'resumed' ELSE 'started' END "
        f"FROM old WHERE j.id = old.id RETURNING old.worker_id AS previous_worker, {_columns('j.')}",
        {"w": worker_id, "t": heartbeat_timeout},
    )
    job = await cur.fetchone()
    if job is None:
        return None
    await _end_sessions(conn, job.pop("previous_worker"), worker_id)
    return _job(job)


async def _end_sessions(conn: Conn, silent_owner: str | None, new_owner: str) -> None:
    """End the database sessions of the process that owned a run and fell silent (not this process's)."""
    previous = process_of_worker(silent_owner or "")
    if previous is not None and previous != process_of_worker(new_owner):
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name(previous),),
        )


async def claimable_count(conn: Conn, silent_for: float) -> int:
    """Jobs a worker could claim now or soon: pending ones, and running ones whose worker has not beaten
    its heartbeat for ``silent_for`` seconds."""
    cur = await conn.execute(
        "SELECT count(*) AS n FROM indexing_jobs WHERE kind = 'index' AND (status = 'pending' OR (status = 'running' "
        "AND heartbeat_at < now() - make_interval(secs => %s)))",
        (silent_for,),
    )
    row = await cur.fetchone()
    return int(row["n"]) if row is not None else 0


#: What a foreground run or a sync whose process stopped without ending it says in its record.
ABANDONED = "its process stopped before the run ended; what it stored stays indexed"


async def release_dead_local_jobs(conn: Conn, host_prefix: str, alive: set[int]) -> int:
    """Runs owned by processes of this host that are gone: a job becomes claimable at once, a foreground
    run or a sync (which no other process resumes) fails. Returns how many jobs were released."""
    cur = await conn.execute(
        "SELECT id, kind, worker_id FROM indexing_jobs WHERE status = 'running' AND worker_id LIKE %s",
        (host_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",),
    )
    dead_jobs: list[uuid.UUID] = []
    dead_runs: list[uuid.UUID] = []
    for row in await cur.fetchall():
        try:
            pid = int(str(row["worker_id"]).split(":")[1])
        except (IndexError, ValueError):
            continue
        if pid not in alive:
            (dead_jobs if row["kind"] == RunKind.INDEX else dead_runs).append(row["id"])
    if dead_jobs:
        await conn.execute("UPDATE indexing_jobs SET heartbeat_at = 'epoch' WHERE id = ANY(%s)", (dead_jobs,))
    if dead_runs:
        await conn.execute(
            "UPDATE indexing_jobs SET status = 'failed', completed_at = now(), status_message = 'failed', "
            " error_message = %s, eta_seconds = NULL WHERE id = ANY(%s) AND status = 'running'",
            (ABANDONED, dead_runs),
        )
    return len(dead_jobs)


async def end_abandoned_runs(conn: Conn, heartbeat_timeout: float, by: str) -> int:
    """Fail the foreground runs and syncs whose process has not beaten their heartbeat for
    ``heartbeat_timeout`` seconds (killed, or paused), and end that process's database sessions, as a
    job's takeover does: a paused process would hold its repository's lock for as long as the pause
    lasts. ``by`` is the caller's run or worker id (its own process's sessions are kept)."""
    cur = await conn.execute(
        "UPDATE indexing_jobs SET status = 'failed', completed_at = now(), status_message = 'failed', "
        " error_message = %s, eta_seconds = NULL "
        "WHERE kind <> 'index' AND status = 'running' AND heartbeat_at < now() - make_interval(secs => %s) "
        "RETURNING worker_id",
        (ABANDONED, heartbeat_timeout),
    )
    ended = await cur.fetchall()
    for silent in {row["worker_id"] for row in ended}:
        await _end_sessions(conn, silent, by)
    return len(ended)


async def _fenced(conn: Conn, job_id: uuid.UUID, attempt: int, sets: str, params: dict[str, Any]) -> bool:
    """Update a running job only if ``attempt`` is still its current one; return cancel_requested."""
    cur = await conn.execute(
        f"UPDATE indexing_jobs SET {sets}, heartbeat_at = now() "
        "WHERE id = %(_id)s AND attempt = %(_attempt)s AND status = 'running' RETURNING cancel_requested",
        {**params, "_id": job_id, "_attempt": attempt},
    )
    row = await cur.fetchone()
    if row is None:
        raise LostOwnership(f"job {job_id} attempt {attempt} was taken over")
    return bool(row["cancel_requested"])


async def heartbeat(conn: Conn, job_id: uuid.UUID, attempt: int, worker_id: str) -> bool:
    """Beat the job's heartbeat (fenced); return cancel_requested."""
    return await _fenced(conn, job_id, attempt, "worker_id = %(w)s", {"w": worker_id})


async def publish_progress(conn: Conn, job_id: uuid.UUID, attempt: int, update: JobUpdate) -> bool:
    """Write a running job's progress (fenced); return cancel_requested."""
    return await add_counts(conn, job_id, attempt, BatchStats(), update)


async def add_counts(
    conn: Conn, job_id: uuid.UUID, attempt: int, stats: BatchStats, update: JobUpdate | None = None
) -> bool:
    """Inside a batch's transaction: add what it commits to the job's counters, and with ``update``
    the progress as of that batch, in one statement (fenced), so that every read of the row sees
    phase, totals, counters and message that agree. A total not yet known keeps the stored one
    (a resumed job scanning again), and progress never goes backwards."""
    sets = (
        "files_indexed = files_indexed + %(f)s, chunks_created = chunks_created + %(c)s, "
        "chunks_embedded = chunks_embedded + %(e)s"
    )
    params: dict[str, Any] = {"f": stats.files_written, "c": stats.chunks_written, "e": stats.chunks_embedded}
    if update is not None:
        sets += (
            ", phase = %(phase)s, files_total = coalesce(%(total)s, files_total), files_skipped = %(skipped)s, "
            "progress_percent = greatest(progress_percent, %(pct)s), eta_seconds = %(eta)s, "
            "coverage_percent = coalesce(%(cov)s, coverage_percent), "
            "status_message = format('%%s: %%s of %%s files indexed, %%s chunks, %%s embedded', %(phase)s::text, "
            "files_indexed + %(f)s, coalesce(%(total)s, files_total), chunks_created + %(c)s, "
            "chunks_embedded + %(e)s)"
        )
        params.update(
            phase=str(update.phase),
            total=update.files_total,
            skipped=update.files_skipped,
            pct=update.progress_percent,
            eta=update.eta_seconds,
            cov=update.coverage_percent,
        )
    return await _fenced(conn, job_id, attempt, sets, params)


async def requeue(conn: Conn, job_id: uuid.UUID, attempt: int, message: str) -> bool:
    """Hand a running job back (pending, no worker) for any worker to resume; False if fenced out."""
    cur = await conn.execute(
        "UPDATE indexing_jobs SET status = 'pending', worker_id = NULL, status_message = %s "
        "WHERE id = %s AND attempt = %s AND status = 'running'",
        (message, job_id, attempt),
    )
    return cur.rowcount == 1


async def finish(
    conn: Conn, job_id: uuid.UUID, attempt: int, status: JobStatus, message: str, error: str | None
) -> bool:
    """Record a final status (completed, failed, cancelled); False if fenced out."""
    cur = await conn.execute(
        "UPDATE indexing_jobs SET status = %s::job_status, completed_at = now(), status_message = %s, "
        " error_message = %s, phase = CASE WHEN %s = 'completed' THEN 'done' ELSE phase END, "
        " progress_percent = CASE WHEN %s = 'completed' THEN 100 ELSE progress_percent END, eta_seconds = NULL "
        "WHERE id = %s AND attempt = %s AND status = 'running' RETURNING id",
        (str(status), message, error, str(status), str(status), job_id, attempt),
    )
    return await cur.fetchone() is not None


async def keep_last_sync(conn: Conn, job: Job) -> int:
    """The finished syncs of ``job``'s repository other than ``job`` leave the table: the list shows
    the last sync of each repository, not one row per saved file."""
    cur = await conn.execute(
        "DELETE FROM indexing_jobs WHERE kind = 'sync' AND project_id = %s AND repo_path = %s "
        "AND completed_at IS NOT NULL AND id <> %s",
        (job.project_id, job.repo_path, job.id),
    )
    return cur.rowcount


async def prune(conn: Conn, retention_days: float) -> int:
    cur = await conn.execute(
        "DELETE FROM indexing_jobs WHERE completed_at < now() - make_interval(secs => %s)",
        (retention_days * 86400,),
    )
    return cur.rowcount
