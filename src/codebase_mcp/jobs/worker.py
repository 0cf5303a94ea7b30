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
import time
import uuid
from typing import Any

import psutil
import psycopg

from codebase_mcp.errors import CodebaseError
from codebase_mcp.indexing.indexer import Cancelled, Progress
from codebase_mcp.jobs import store
from codebase_mcp.runtime import Runtime
from codebase_mcp.storage.database import Conn
from codebase_mcp.storage.repo_store import BatchStats

log = logging.getLogger(__name__)


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class JobTimeout(CodebaseError):
    code = "timeout"


class Worker:
    def __init__(self, runtime: Runtime, worker_id: str | None = None) -> None:
        self.rt = runtime
        self.settings = runtime.settings
        self.worker_id = worker_id or new_worker_id()
        self.stopping = asyncio.Event()
        self.jobs_run = 0
        self.db_errors = 0
        # an outcome that could not be written because the database was down; written on reconnect
        self._unrecorded: tuple[uuid.UUID, int, tuple[str, str, str | None]] | None = None

    async def run(self) -> None:
        """Claim and run jobs until ``stop()``; at most one at a time per worker."""
        async with self.rt.db.connection() as conn:
            host = socket.gethostname() + ":"
            released = await store.release_dead_local_jobs(conn, host, set(psutil.pids()))
            if released:
                log.info("resuming %d job(s) whose local worker is gone", released)
            await store.prune(conn, self.settings.job_retention_days)
        failures = 0
        while not self.stopping.is_set():
            try:
                ran = await self.run_once()
                failures = 0
            except Exception as exc:  # the loop survives the database going away, and retries
                failures += 1
                if isinstance(exc, psycopg.OperationalError):
                    log.warning("database unavailable (%s); retrying", str(exc).strip()[:200])
                else:
                    log.exception("worker loop error")
                ran = False
            if not ran:
                # exponential backoff while the database is unavailable, capped at 30 s
                delay = self.settings.job_poll_seconds * (2 ** min(failures, 6)) if failures else 0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self.stopping.wait(), min(delay, 30.0) if failures else self.settings.job_poll_seconds
                    )

    def stop(self) -> None:
        self.stopping.set()

    async def run_once(self) -> bool:
        if self._unrecorded is not None:
            await self._record(*self._unrecorded)
            self._unrecorded = None
        async with self.rt.db.connection() as conn:
            job = await store.claim(
                conn,
                self.worker_id,
                self.settings.job_heartbeat_timeout_seconds,
                self.settings.max_concurrent_indexing_jobs,
            )
        if job is None:
            return False
        await self._execute(job)
        self.jobs_run += 1
        return True

    async def _execute(self, job: dict[str, Any]) -> None:
        job_id: uuid.UUID = job["id"]
        attempt: int = job["attempt"]
        log.info("job %s attempt %d: indexing %s", job_id, attempt, job["repo_path"])
        started = time.monotonic()
        cancel = {"requested": bool(job["cancel_requested"])}
        last_push = [0.0]
        beat = asyncio.create_task(self._heartbeat(job_id, attempt, cancel))

        async def fence(conn: Conn, stats: BatchStats, embedded: int) -> None:
            cancel["requested"] = await store.add_counts(
                conn, job_id, attempt, stats.files_written, stats.chunks_written, embedded
            )

        def should_stop() -> bool:
            if time.monotonic() - started > self.settings.indexing_job_timeout_seconds:
                raise JobTimeout(
                    f"The job ran longer than {self.settings.indexing_job_timeout_seconds} s "
                    "(INDEXING_JOB_TIMEOUT_SECONDS); what it stored stays indexed. Start it again to continue."
                )
            return cancel["requested"] or self.stopping.is_set()

        pending_push: set[asyncio.Task[None]] = set()
        outcome: tuple[str, str, str | None] | None

        def progress(p: Progress) -> None:
            now = time.monotonic()
            if now - last_push[0] < 1.0 and p.phase not in {"finalizing", "done"}:
                return
            last_push[0] = now
            task = asyncio.get_running_loop().create_task(self._push(job_id, attempt, p, started, cancel))
            pending_push.add(task)
            task.add_done_callback(pending_push.discard)

        try:
            await self.rt.indexer.index(
                job["repo_path"],
                project_id=job["project_id"],
                force=bool(job["force_reindex"]) and attempt == 1,
                progress=progress,
                should_stop=should_stop,
                fence=fence,
            )
            outcome = ("completed", "completed", None)
        except store.LostOwnership:
            log.warning("job %s attempt %d was taken over by another worker; stopping", job_id, attempt)
            outcome = None
        except Cancelled:
            if cancel["requested"]:
                outcome = ("cancelled", "cancelled at a batch boundary; the index is consistent", None)
            else:  # this worker is shutting down: hand the job back for another to resume
                outcome = ("pending", "requeued: worker stopped", None)
        except psycopg.OperationalError as exc:
            # the database went away (restart, failover, terminated connection): hand the job back
            # so it resumes from its last committed batch once the database answers again
            log.warning("job %s attempt %d: database error, requeueing: %s", job_id, attempt, exc)
            self.db_errors += 1
            outcome = ("pending", f"requeued after a database error: {str(exc).strip()[:200]}", None)
        except CodebaseError as exc:
            outcome = ("failed", "failed", exc.message)
        except Exception as exc:
            log.exception("job %s failed", job_id)
            outcome = ("failed", "failed", f"Internal error ({type(exc).__name__}); see the server log.")
        finally:
            beat.cancel()
            for task in list(pending_push):
                task.cancel()
        if outcome is None:
            return
        try:
            await self._record(job_id, attempt, outcome)
        except psycopg.OperationalError:
            self._unrecorded = (job_id, attempt, outcome)
            raise

    async def _record(self, job_id: uuid.UUID, attempt: int, outcome: tuple[str, str, str | None]) -> None:
        async with self.rt.db.connection() as conn:
            if outcome[0] == "pending":
                cur = await conn.execute(
                    "UPDATE indexing_jobs SET status = 'pending', worker_id = NULL, status_message = %s "
                    "WHERE id = %s AND attempt = %s AND status = 'running'",
                    (outcome[1], job_id, attempt),
                )
                recorded = cur.rowcount == 1
                await conn.commit()
            else:
                recorded = await store.finish(conn, job_id, attempt, outcome[0], outcome[1], outcome[2])
        if recorded:
            log.info("job %s: %s", job_id, outcome[0])
        else:  # fenced out: the outcome of a stale attempt is not written
            log.warning("job %s attempt %d was taken over by another worker; its outcome is discarded", job_id, attempt)

    async def _push(
        self, job_id: uuid.UUID, attempt: int, p: Progress, started: float, cancel: dict[str, bool]
    ) -> None:
        if p.phase == "embedding" and p.chunks_total_to_embed:
            fraction = 0.5 + 0.5 * p.chunks_embedded / max(p.chunks_total_to_embed, 1)
        else:
            fraction = 0.5 * p.files_done / max(p.files_total, 1)
        fraction = min(max(fraction, 0.0), 1.0)
        elapsed = time.monotonic() - started
        eta = elapsed * (1 - fraction) / fraction if fraction > 0.02 else None
        phase = p.phase if p.phase != "done" else "finalizing"
        try:
            async with self.rt.db.connection() as conn:
                cancel["requested"] = await store.fenced_update(
                    conn,
                    job_id,
                    attempt,
                    {
                        "phase": phase,
                        "files_total": p.files_total,
                        "files_skipped": p.files_skipped,
                        "progress_percent": round(fraction * 100, 1),
                        "eta_seconds": round(eta, 1) if eta is not None else None,
                        "status_message": f"{phase}: {p.files_done}/{p.files_total} files, "
                        f"{p.chunks_embedded}/{p.chunks_total_to_embed} chunks embedded",
                    },
                )
                await conn.commit()
        except store.LostOwnership:
            pass  # the indexing batch fence will stop the job
        except Exception:
            log.exception("progress update failed")

    async def _heartbeat(self, job_id: uuid.UUID, attempt: int, cancel: dict[str, bool]) -> None:
        while True:
            await asyncio.sleep(self.settings.job_heartbeat_seconds)
            try:
                async with self.rt.db.connection() as conn:
                    cancel["requested"] = await store.fenced_update(
                        conn, job_id, attempt, {"worker_id": self.worker_id}
                    )
                    await conn.commit()
            except store.LostOwnership:
                return
            except psycopg.OperationalError as exc:
                log.warning("heartbeat failed: database unavailable (%s)", str(exc).strip()[:200])
            except Exception:
                log.exception("heartbeat failed")
