"""SQL for background indexing jobs. The database enforces the state machine (see migration 0002);
workers claim with ``FOR UPDATE SKIP LOCKED`` and fence every write with the job's attempt number."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from codebase_mcp.errors import CodebaseError, InvalidInput, NotFound
from codebase_mcp.storage.database import Conn

ACTIVE = ("pending", "running")
STATUSES = ("pending", "running", "completed", "failed", "cancelled")


class LostOwnership(CodebaseError):
    """This worker's attempt is no longer the job's current one: another worker took it over."""

    code = "lost_ownership"


def printable(text: str, limit: int) -> str:
    """Text PostgreSQL can store whatever a client sent: no NUL, no lone surrogates, bounded."""
    return text[:limit].replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def parse_job_id(job_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(job_id))
    except (ValueError, TypeError, AttributeError):
        raise InvalidInput(f"{str(job_id)[:80]!r} is not a job id: job ids are UUIDs.") from None


async def create_job(conn: Conn, project_id: str, repo_path: str, force: bool) -> tuple[dict[str, Any], bool]:
    """A new pending job, or the active one for the same repository: ``(job, created)``."""
    for _ in range(3):
        cur = await conn.execute(
            "SELECT * FROM indexing_jobs WHERE project_id = %s AND repo_path = %s AND status IN ('pending', 'running')",
            (project_id, repo_path),
        )
        existing = await cur.fetchone()
        if existing is not None:
            await conn.commit()
            return dict(existing), False
        try:
            cur = await conn.execute(
                "INSERT INTO indexing_jobs (project_id, repo_path, force_reindex, status_message) "
                "VALUES (%s, %s, %s, 'queued') RETURNING *",
                (project_id, repo_path, force),
            )
            row = await cur.fetchone()
            await conn.commit()
            assert row is not None
            return dict(row), True
        except psycopg.errors.UniqueViolation:
            await conn.rollback()  # raced with another start: return that one
    raise CodebaseError("Could not create the job; try again.")


async def create_failed_job(conn: Conn, project_id: str, repo_path: str, message: str) -> dict[str, Any]:
    """Record a request that cannot run (bad path) as a failed job, so its status can be read."""
    cur = await conn.execute(
        "INSERT INTO indexing_jobs (project_id, repo_path, status, error_message, status_message, completed_at) "
        "VALUES (%s, %s, 'failed', %s, 'rejected', now()) RETURNING *",
        (project_id, printable(repo_path, 4096), printable(message, 2000)),
    )
    row = await cur.fetchone()
    await conn.commit()
    assert row is not None
    return dict(row)


async def get_job(conn: Conn, job_id: str, project_id: str | None = None) -> dict[str, Any]:
    jid = parse_job_id(job_id)
    cur = await conn.execute("SELECT * FROM indexing_jobs WHERE id = %s", (jid,))
    row = await cur.fetchone()
    await conn.commit()
    if row is None or (project_id is not None and row["project_id"] != project_id):
        raise NotFound(f"No indexing job {jid}" + (f" in project {project_id!r}." if project_id else "."))
    return dict(row)


async def list_jobs(conn: Conn, project_id: str | None, status: str | None, limit: int) -> list[dict[str, Any]]:
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}; got {status[:40]!r}.")
    cur = await conn.execute(
        "SELECT * FROM indexing_jobs WHERE (%(p)s::text IS NULL OR project_id = %(p)s) "
        "AND (%(s)s::job_status IS NULL OR status = %(s)s::job_status) ORDER BY created_at DESC LIMIT %(n)s",
        {"p": project_id, "s": status, "n": limit},
    )
    rows = [dict(r) for r in await cur.fetchall()]
    await conn.commit()
    return rows


async def request_cancel(conn: Conn, job_id: str) -> dict[str, Any]:
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
    await conn.commit()
    return await get_job(conn, str(jid))


async def claim(conn: Conn, worker_id: str, heartbeat_timeout: float, max_running: int) -> dict[str, Any] | None:
    """Claim the oldest pending job, or a running one whose worker stopped beating, if fewer than
    ``max_running`` jobs are running with a live heartbeat."""
    async with conn.transaction():
        # serialise claims so the concurrency limit holds across workers
        await conn.execute("SELECT pg_advisory_xact_lock(7355608)")
        cur = await conn.execute(
            "SELECT count(*) AS n FROM indexing_jobs WHERE status = 'running' "
            "AND heartbeat_at >= now() - make_interval(secs => %s)",
            (heartbeat_timeout,),
        )
        row = await cur.fetchone()
        if row is not None and row["n"] >= max_running:
            return None
        cur = await conn.execute(
            "UPDATE indexing_jobs SET status = 'running', attempt = attempt + 1, worker_id = %(w)s, "
            " heartbeat_at = now(), started_at = coalesce(started_at, now()), "
            " status_message = CASE WHEN attempt > 0 THEN 'resumed' ELSE 'started' END "
            "WHERE id = (SELECT id FROM indexing_jobs WHERE status = 'pending' OR (status = 'running' "
            "  AND heartbeat_at < now() - make_interval(secs => %(t)s)) "
            "  ORDER BY created_at FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING *",
            {"w": worker_id, "t": heartbeat_timeout},
        )
        job = await cur.fetchone()
    return dict(job) if job else None


async def release_dead_local_jobs(conn: Conn, host_prefix: str, alive: set[int]) -> int:
    """Jobs owned by workers of this host whose process is gone become claimable at once."""
    cur = await conn.execute(
        "SELECT id, worker_id FROM indexing_jobs WHERE status = 'running' AND worker_id LIKE %s",
        (host_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",),
    )
    dead = []
    for row in await cur.fetchall():
        try:
            pid = int(str(row["worker_id"]).split(":")[1])
        except (IndexError, ValueError):
            continue
        if pid not in alive:
            dead.append(row["id"])
    if dead:
        await conn.execute("UPDATE indexing_jobs SET heartbeat_at = 'epoch' WHERE id = ANY(%s)", (dead,))
    await conn.commit()
    return len(dead)


async def fenced_update(conn: Conn, job_id: uuid.UUID, attempt: int, fields: dict[str, Any]) -> bool:
    """Update a running job only if ``attempt`` is still its current one; return cancel_requested."""
    sets = ", ".join(f"{name} = %({name})s" for name in fields)
    cur = await conn.execute(
        f"UPDATE indexing_jobs SET {sets}, heartbeat_at = now() "
        "WHERE id = %(_id)s AND attempt = %(_attempt)s AND status = 'running' RETURNING cancel_requested",
        {**fields, "_id": job_id, "_attempt": attempt},
    )
    row = await cur.fetchone()
    if row is None:
        raise LostOwnership(f"job {job_id} attempt {attempt} was taken over")
    return bool(row["cancel_requested"])


async def add_counts(conn: Conn, job_id: uuid.UUID, attempt: int, files: int, chunks: int, embedded: int) -> bool:
    """Inside a batch's transaction: add what it commits to the job's counters (fenced)."""
    cur = await conn.execute(
        "UPDATE indexing_jobs SET files_indexed = files_indexed + %s, chunks_created = chunks_created + %s, "
        " chunks_embedded = chunks_embedded + %s, heartbeat_at = now() "
        "WHERE id = %s AND attempt = %s AND status = 'running' RETURNING cancel_requested",
        (files, chunks, embedded, job_id, attempt),
    )
    row = await cur.fetchone()
    if row is None:
        raise LostOwnership(f"job {job_id} attempt {attempt} was taken over")
    return bool(row["cancel_requested"])


async def finish(conn: Conn, job_id: uuid.UUID, attempt: int, status: str, message: str, error: str | None) -> bool:
    cur = await conn.execute(
        "UPDATE indexing_jobs SET status = %s::job_status, completed_at = now(), status_message = %s, "
        " error_message = %s, phase = CASE WHEN %s = 'completed' THEN 'done' ELSE phase END, "
        " progress_percent = CASE WHEN %s = 'completed' THEN 100 ELSE progress_percent END, eta_seconds = NULL "
        "WHERE id = %s AND attempt = %s AND status = 'running' RETURNING id",
        (status, message, error, status, status, job_id, attempt),
    )
    row = await cur.fetchone()
    await conn.commit()
    return row is not None


async def prune(conn: Conn, retention_days: float) -> int:
    cur = await conn.execute(
        "DELETE FROM indexing_jobs WHERE completed_at < now() - make_interval(secs => %s)",
        (retention_days * 86400,),
    )
    await conn.commit()
    return cur.rowcount
