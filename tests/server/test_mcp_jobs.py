"""Background jobs through the MCP server as a client sees them: a 1,000-file repository, a server
killed with SIGKILL in the middle of a job and restarted, and cancellation of a running job."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from mcp.client.session import ClientSession
from mcp.client.stdio import stdio_client

from tests.conftest import chunk_stats, cli_command, job_row, make_repo
from tests.server.client import call, params, wait_done

N_FILES = 1000


def job_env(cli_env: dict[str, str]) -> dict[str, str]:
    # small batches, so a job spans many commits that tests can observe and interrupt
    return {**cli_env, "CODEBASE_MCP_STORE_BATCH_FILES": "20"}


async def test_large_repository_progress_and_search(cli_env: dict[str, str], tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "big", N_FILES)
    async with stdio_client(params(job_env(cli_env))) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        ok, started = await call(session, "start_indexing_background", repo_path=str(repo))
        assert ok and started["status"] in {"pending", "running"}, started

        seen: list[int] = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            ok, job = await call(session, "get_indexing_status", job_id=started["job_id"])
            assert ok, job
            if job["status"] != "running":
                if job["status"] in {"completed", "failed", "cancelled"}:
                    break
                continue
            seen.append(job["files_indexed"])
            await asyncio.sleep(0.05)
        assert job["status"] == "completed", job
        assert seen == sorted(seen), "counters never go backwards"
        assert len({n for n in seen if 0 < n < N_FILES}) >= 2, f"progress was not visible while running: {seen}"
        assert job["files_indexed"] == N_FILES and job["files_total"] == N_FILES
        assert job["chunks_created"] >= N_FILES and job["progress_percent"] == 100

        ok, res = await call(session, "search_code", query="reconcile ledger entries")
        assert ok and res["results"][0]["path"] == "pkg05/module_0537.py", res
        assert res["results"][0]["symbol"] == "reconcile_ledger_entries"


async def test_server_killed_mid_job_resumes_without_duplicates(cli_env: dict[str, str], tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "big", N_FILES)
    url = cli_env["DATABASE_URL"]
    env = job_env(cli_env)
    client = stdio_client(params(env))
    read, write = await client.__aenter__()
    session = await ClientSession(read, write).__aenter__()
    await session.initialize()
    ok, started = await call(session, "start_indexing_background", repo_path=str(repo))
    assert ok
    job_id = started["job_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        before = job_row(url, job_id)
        if before["status"] == "running" and 100 <= int(before["files_indexed"]) < N_FILES // 2:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"job never reached the middle: {before}")
    os.kill(int(str(before["worker_id"]).split(":")[1]), signal.SIGKILL)
    with contextlib.suppress(BaseException):  # the client notices its server die underneath it
        await session.__aexit__(None, None, None)
        await client.__aexit__(None, None, None)

    after_kill = job_row(url, job_id)
    assert after_kill["status"] == "running" and after_kill["attempt"] == 1
    assert int(after_kill["files_indexed"]) >= int(before["files_indexed"])
    interrupted = chunk_stats(url)
    assert 0 < interrupted["files"] < N_FILES and interrupted["files"] == after_kill["files_indexed"]

    # restart: the dead local worker's job is resumed at once, without waiting for the heartbeat timeout
    # (the heartbeat timeout is an hour here: only the dead PID can make the job claimable)
    patient = {**env, "CODEBASE_MCP_JOB_HEARTBEAT_TIMEOUT_SECONDS": "3600"}
    async with stdio_client(params(patient)) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        job = await wait_done(session, job_id, timeout=300)
    assert job["status"] == "completed", job
    assert job["attempt"] == 2 and job["error_message"] is None
    assert job["files_indexed"] == N_FILES, "the counters describe the whole job across the resume"

    resumed = chunk_stats(url)
    assert resumed["dup_chunks"] == 0 and resumed["dup_files"] == 0 and resumed["unembedded"] == 0
    assert resumed["files"] == N_FILES and job["chunks_created"] == resumed["chunks"]

    # the same repository indexed in one uninterrupted run gives the same chunks
    control = subprocess.run(
        [*cli_command(), "index", str(repo), "--project", "control"], env=env, capture_output=True, text=True
    )
    assert control.returncode == 0, control.stderr
    assert chunk_stats(url, "control")["chunks"] == resumed["chunks"]


async def test_cancel_running_job_and_second_start_returns_it(cli_env: dict[str, str], tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "big", N_FILES)
    url = cli_env["DATABASE_URL"]
    async with stdio_client(params(job_env(cli_env))) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        ok, first = await call(session, "start_indexing_background", repo_path=str(repo))
        ok2, second = await call(session, "start_indexing_background", repo_path=str(repo))
        assert ok and ok2 and second["job_id"] == first["job_id"] and "already active" in second["message"]

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ok, job = await call(session, "get_indexing_status", job_id=first["job_id"])
            if job["status"] == "running" and job["files_indexed"] > 0:
                break
            await asyncio.sleep(0.02)
        ok, again = await call(session, "start_indexing_background", repo_path=str(repo) + "/")
        assert ok and again["job_id"] == first["job_id"] and again["status"] == "running"

        ok, cancelling = await call(session, "cancel_indexing_job", job_id=first["job_id"])
        assert ok and cancelling["cancel_requested"]
        job = await wait_done(session, first["job_id"], timeout=120)
        # it stopped at a batch boundary, long before the end (how soon, in seconds, is a benchmark's)
        assert job["status"] == "cancelled" and job["files_indexed"] < N_FILES, job

        # consistent: exactly the files the job counted are indexed, each with all its chunks
        stats = chunk_stats(url)
        assert stats["files"] == job["files_indexed"] < N_FILES and stats["dup_chunks"] == 0
        assert stats["chunks"] == job["chunks_created"]

        ok, rerun = await call(session, "start_indexing_background", repo_path=str(repo))
        assert ok and rerun["job_id"] != first["job_id"]
        done = await wait_done(session, rerun["job_id"])
        assert done["status"] == "completed" and done["files_indexed"] == N_FILES - job["files_indexed"]
        assert chunk_stats(url)["files"] == N_FILES
