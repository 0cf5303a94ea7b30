"""Standalone ``codebase-mcp worker`` processes sharing one database: a worker paused with SIGSTOP past
the heartbeat timeout is taken over and its late writes are rejected; SIGTERM hands a job back."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from tests.conftest import chunk_stats, cli_command, job_row, make_repo

N_FILES = 1000


def worker_env(cli_env: dict[str, str]) -> dict[str, str]:
    return {
        **cli_env,
        "CODEBASE_MCP_STORE_BATCH_FILES": "20",
        "CODEBASE_MCP_JOB_HEARTBEAT_SECONDS": "0.3",
        "CODEBASE_MCP_JOB_HEARTBEAT_TIMEOUT_SECONDS": "3",
        "CODEBASE_MCP_JOB_POLL_SECONDS": "0.2",
    }


@contextmanager
def worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen([*cli_command(), "worker"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def enqueue(url: str, repo: Path, project: str = "default") -> str:
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO projects (id) VALUES (%s) ON CONFLICT DO NOTHING", (project,))
        row = conn.execute(
            "INSERT INTO indexing_jobs (project_id, repo_path) VALUES (%s, %s) RETURNING id", (project, str(repo))
        ).fetchone()
    assert row is not None
    return str(row[0])


async def wait_for(url: str, job_id: str, check: object, timeout: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = job_row(url, job_id)
        if check(job):  # type: ignore[operator]
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}: {job_row(url, job_id)}")


async def test_paused_worker_is_taken_over_and_fenced(cli_env: dict[str, str], tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "big", N_FILES)
    url = cli_env["DATABASE_URL"]
    env = worker_env(cli_env)
    job_id = enqueue(url, repo)
    with worker(env, tmp_path / "a.log") as a:
        job = await wait_for(
            url, job_id, lambda j: j["status"] == "running" and j["files_indexed"] >= 60, 60, "worker A to start"
        )
        a_id = job["worker_id"]
        assert f":{a.pid}:" in str(a_id)
        os.kill(a.pid, signal.SIGSTOP)
        paused_at = time.monotonic()
        with worker(env, tmp_path / "b.log") as b:
            job = await wait_for(url, job_id, lambda j: j["attempt"] == 2, 30, "worker B to take over")
            # the timeout runs from A's last heartbeat, which may precede the pause by one beat (0.3 s)
            assert time.monotonic() - paused_at >= 3 - 0.3, "not taken over before the heartbeat timeout"
            assert f":{b.pid}:" in str(job["worker_id"])
            done = await wait_for(url, job_id, lambda j: j["status"] != "running", 120, "worker B to finish")
            assert done["status"] == "completed" and done["files_indexed"] == N_FILES, done
            final = chunk_stats(url)
            assert final["files"] == N_FILES and final["chunks"] == done["chunks_created"]

            os.kill(a.pid, signal.SIGCONT)  # A wakes up believing it still owns the job
            deadline = time.monotonic() + 30
            a_log = tmp_path / "a.log"
            while "taken over" not in a_log.read_text() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert "taken over" in a_log.read_text(), a_log.read_text()
            assert a.poll() is None, "the paused worker survives and keeps serving"

            after = job_row(url, job_id)
            for field in ("status", "attempt", "worker_id", "files_indexed", "chunks_created", "completed_at"):
                assert after[field] == done[field], field
            assert chunk_stats(url) == final, "A's late writes were rolled back"
            assert final["dup_chunks"] == 0 and final["dup_files"] == 0 and final["unembedded"] == 0
        assert b.returncode == 0


async def test_sigterm_hands_the_job_back_and_another_worker_resumes(cli_env: dict[str, str], tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "big", N_FILES)
    url = cli_env["DATABASE_URL"]
    env = worker_env(cli_env)
    job_id = enqueue(url, repo)
    with worker(env, tmp_path / "a.log") as a:
        await wait_for(url, job_id, lambda j: j["status"] == "running" and j["files_indexed"] >= 60, 60, "start")
        a.terminate()
        assert a.wait(10) == 0
    job = job_row(url, job_id)
    assert job["status"] == "pending" and job["worker_id"] is None and "requeued" in str(job["status_message"])
    assert chunk_stats(url)["files"] == job["files_indexed"], "the batch in flight was committed or rolled back"
    with worker(env, tmp_path / "b.log"):
        done = await wait_for(url, job_id, lambda j: j["status"] == "completed", 120, "resume")
    assert done["attempt"] == 2 and done["files_indexed"] == N_FILES
    assert chunk_stats(url)["dup_chunks"] == 0


async def test_cpu_bound_job_is_never_taken_over_while_its_worker_is_healthy(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Embedding that burns CPU in pure Python (holding the GIL) for many times the heartbeat timeout,
    with a second worker polling: the heartbeat never goes stale and the job is never taken over."""
    repo = make_repo(tmp_path / "repo", 150)
    url = cli_env["DATABASE_URL"]
    env = {
        **worker_env(cli_env),
        "CODEBASE_MCP_JOB_HEARTBEAT_TIMEOUT_SECONDS": "3",
        "CODEBASE_MCP_FAKE_EMBEDDING_CPU_MS": "25",
    }
    job_id = enqueue(url, repo)
    with worker(env, tmp_path / "a.log"):
        first = await wait_for(url, job_id, lambda j: j["status"] == "running", 60, "worker A to claim")
        owner = first["worker_id"]
        with worker(env, tmp_path / "b.log"):
            worst = 0.0
            samples = 0
            t0 = time.monotonic()
            while True:
                with psycopg.connect(url) as conn:
                    row = conn.execute(
                        "SELECT status, attempt, worker_id, extract(epoch FROM now() - heartbeat_at) "
                        "FROM indexing_jobs WHERE id = %s",
                        (job_id,),
                    ).fetchone()
                assert row is not None
                if row[0] != "running":
                    break
                assert row[1] == 1 and row[2] == owner, f"taken over after {time.monotonic() - t0:.1f} s: {row}"
                worst = max(worst, float(row[3]))
                samples += 1
                assert time.monotonic() - t0 < 180, "job took too long"
                await asyncio.sleep(0.05)
            elapsed = time.monotonic() - t0
    done = job_row(url, job_id)
    print(f"cpu-bound job: {elapsed:.1f} s, worst heartbeat age {worst:.2f} s over {samples} samples")
    assert done["status"] == "completed" and done["attempt"] == 1 and done["worker_id"] == owner, done
    assert elapsed > 2 * 3, f"the job must outlast the heartbeat timeout several times ({elapsed:.1f} s)"
    assert worst < 3, f"heartbeat went {worst:.2f} s stale"
    assert samples > 20


_MESSAGE = re.compile(r"^(\w+): (\d+) of (\d+) files indexed, (\d+) chunks, (\d+) embedded$")


def incoherence(job: dict[str, Any]) -> str | None:
    """What in a job row disagrees with the rest of it, if anything."""
    if job["files_indexed"] > 0 and job["files_total"] < job["files_indexed"]:
        return "more files indexed than counted"
    found = _MESSAGE.match(str(job["status_message"]))
    if job["status"] == "running" and found:
        phase, indexed, total, chunks, embedded = found.groups()
        said = (phase, int(indexed), int(total), int(chunks), int(embedded))
        fields = (job["phase"], job["files_indexed"], job["files_total"], job["chunks_created"], job["chunks_embedded"])
        if said != fields:
            return f"message {said} disagrees with fields {fields}"
    return None


async def test_status_is_coherent_at_every_poll_across_a_takeover(cli_env: dict[str, str], tmp_path: Path) -> None:
    """Every read of a 1,000-file job, before and after another worker takes it over, shows phase,
    totals, counters and message that agree, and progress that never goes back."""
    repo = make_repo(tmp_path / "big", N_FILES)
    url = cli_env["DATABASE_URL"]
    env = worker_env(cli_env)
    job_id = enqueue(url, repo)
    polls: list[dict[str, Any]] = []

    async def watch(until: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = job_row(url, job_id)
            polls.append(job)
            assert incoherence(job) is None, (incoherence(job), job)
            if until(job):
                return job
            await asyncio.sleep(0.01)
        raise AssertionError(f"timed out: {polls[-1]}")

    with worker(env, tmp_path / "a.log") as a:
        await watch(lambda j: j["files_indexed"] >= 200, 60)
        os.kill(a.pid, signal.SIGKILL)
        a.wait()
    with worker(env, tmp_path / "b.log"):
        done = await watch(lambda j: j["status"] != "running" and j["attempt"] == 2, 180)
    assert done["status"] == "completed" and done["files_indexed"] == done["files_total"] == N_FILES, done
    percents = [j["progress_percent"] for j in polls]
    assert percents == sorted(percents), "progress never goes back"
    resumed = [j for j in polls if j["attempt"] == 2 and j["status"] == "running"]
    assert resumed and all(j["files_total"] == N_FILES for j in resumed), "a resumed job keeps its file count"
    assert len({(j["phase"], j["files_indexed"]) for j in polls}) >= 5, "the polls saw the job move"
    coverage = [j["coverage_percent"] for j in polls if j["coverage_percent"] is not None]
    assert coverage == sorted(coverage) and done["coverage_percent"] == 100, coverage[-20:]
