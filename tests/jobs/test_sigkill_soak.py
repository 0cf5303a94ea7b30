"""SIGKILL at random points of a job, twenty times: each time a fresh worker resumes the job and the
final index equals that of an uninterrupted run, row for row (files, chunks, vectors, full-text)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import psycopg

from tests.conftest import cli_command, make_repo
from tests.jobs.test_worker_processes import enqueue, worker_env

N_FILES = 150
TRIALS = 20

INDEX_ROWS = """
SELECT f.path, f.language, f.content_hash, f.line_count, c.ordinal, c.start_line, c.end_line, c.kind,
       c.symbol, md5(c.content), c.embed_hash, md5(c.embedding::text), md5(c.tsv::text)
FROM files f JOIN repositories r ON r.id = f.repository_id
LEFT JOIN chunks c ON c.file_id = f.id
WHERE r.project_id = %s ORDER BY f.path, c.ordinal
"""


def index_rows(url: str, project: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(INDEX_ROWS, (project,)).fetchall()


def status(url: str, job_id: str) -> tuple[str, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT status, attempt FROM indexing_jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([*cli_command(), "worker"], env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_status(url: str, job_id: str, wanted: set[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current, _ = status(url, job_id)
        if current in wanted:
            return current
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} still {status(url, job_id)} after {timeout} s")


def test_sigkill_at_random_points_twenty_times(cli_env: dict[str, str], tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", N_FILES)
    url = cli_env["DATABASE_URL"]
    env = {**worker_env(cli_env), "CODEBASE_MCP_STORE_BATCH_FILES": "10"}
    log = tmp_path / "workers.log"

    # the uninterrupted run; then a second one, timed from claim to completion, whose embeddings come
    # from the cache as they will in every trial
    durations = []
    for project in ("reference", "warm"):
        job = enqueue(url, repo, project)
        proc = start_worker(env, log)
        wait_status(url, job, {"running"}, 60)
        t0 = time.monotonic()
        assert wait_status(url, job, {"completed", "failed"}, 120) == "completed"
        durations.append(time.monotonic() - t0)
        proc.terminate()
        proc.wait(30)
    duration = durations[-1]
    reference = index_rows(url, "reference")
    assert len({r[0] for r in reference}) == N_FILES
    assert index_rows(url, "warm") == reference

    seed = int(os.environ.get("SOAK_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    killed_while_running = 0
    for trial in range(TRIALS):
        project = f"trial{trial:02d}"
        job = enqueue(url, repo, project)
        victim = start_worker(env, log)
        wait_status(url, job, {"running", "completed"}, 60)
        time.sleep(rng.uniform(0, duration * 1.1))  # anywhere in the job, finalising included
        if status(url, job)[0] == "running":
            killed_while_running += 1
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        resumer = start_worker(env, log)  # finds the dead local worker and resumes at once
        try:
            final = wait_status(url, job, {"completed", "failed"}, 120)
        finally:
            resumer.terminate()
            resumer.wait(30)
        assert final == "completed", f"trial {trial} (seed {seed})"
        assert index_rows(url, project) == reference, f"trial {trial} (seed {seed}): index differs"
    print(f"{TRIALS} kills, {killed_while_running} while running; runs took {durations} s; seed {seed}")
    assert killed_while_running >= TRIALS // 3, f"kills should mostly land mid-job (seed {seed}, {durations})"
