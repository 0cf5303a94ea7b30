"""Faults injected for real: the worker's database connections are terminated in the middle of a job
(as a PostgreSQL restart or failover does), repeatedly; and hundreds of queued jobs over small
repositories are each claimed exactly once by two workers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psycopg

from tests.conftest import chunk_stats, job_row, make_repo
from tests.jobs.test_worker_processes import enqueue, wait_for, worker, worker_env

N_FILES = 1000


def terminate_other_backends(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


async def test_terminated_connections_mid_job_are_survived(cli_env: dict[str, str], tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "big", N_FILES)
    url = cli_env["DATABASE_URL"]
    job_id = enqueue(url, repo)
    with worker(worker_env(cli_env), tmp_path / "w.log") as proc:
        killed = 0
        for threshold in (60, 300, 600):
            await wait_for(url, job_id, lambda j, t=threshold: j["files_indexed"] >= t, 60, f"{threshold} files")  # type: ignore[misc]
            killed += terminate_other_backends(url)
        assert killed >= 3
        done = await wait_for(url, job_id, lambda j: j["status"] in {"completed", "failed"}, 120, "completion")
        assert proc.poll() is None, "the worker process stays up"
    assert done["status"] == "completed", done
    assert done["attempt"] >= 2, "the job was handed back and resumed"
    stats = chunk_stats(url)
    assert stats["files"] == N_FILES == done["files_indexed"]
    assert stats["dup_chunks"] == 0 and stats["unembedded"] == 0 and stats["chunks"] == done["chunks_created"]
    assert "database error, requeueing" in (tmp_path / "w.log").read_text() or done["attempt"] >= 2


async def test_hundreds_of_jobs_are_each_claimed_once(cli_env: dict[str, str], tmp_path: Path) -> None:
    url = cli_env["DATABASE_URL"]
    ids = []
    for i in range(200):
        repo = tmp_path / f"r{i:03d}"
        repo.mkdir()
        (repo / "m.py").write_text(f"def job_{i}():\n    return {i}\n")
        ids.append(enqueue(url, repo))
    env = {**worker_env(cli_env), "MAX_CONCURRENT_INDEXING_JOBS": "4"}
    t0 = time.monotonic()
    with worker(env, tmp_path / "a.log"), worker(env, tmp_path / "b.log"):
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            with psycopg.connect(url) as conn:
                row = conn.execute("SELECT count(*) FROM indexing_jobs WHERE status = 'completed'").fetchone()
            if row and row[0] == len(ids):
                break
            await asyncio.sleep(0.3)
    elapsed = time.monotonic() - t0
    rows = [job_row(url, i) for i in ids]
    assert all(r["status"] == "completed" for r in rows), f"not all done after {elapsed:.0f} s"
    assert all(r["attempt"] == 1 for r in rows), "each job claimed exactly once"
    workers_used = {str(r["worker_id"]).rsplit(":", 1)[0] for r in rows}
    assert len(workers_used) == 2, "both workers took jobs"
    assert chunk_stats(url)["files"] == 200
