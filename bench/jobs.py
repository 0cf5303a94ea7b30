"""Background jobs: MCP tool latency while a job runs, kill -9 and resume, one worker vs two.

    python bench/jobs.py [--seconds 90] [--files 10000] [--latency-only]

1. ``codebase-mcp serve`` over stdio (official MCP client), local model: job creation latency over 50
   small repositories, then, while a large job runs in the same server (the first 3,000 files of issue
   10's corpus, bench/common.py), status polls every 200 ms and a search every 500 ms for ``--seconds``:
   p50/p95 of each.
2. A generated ``--files`` repository, fake model (the job machinery, not the model, is measured): an
   uninterrupted run, then a run whose server is killed with SIGKILL half-way and restarted: same files
   and chunks? how many files were stored twice?
3. Two repositories of ``--files / 2`` files: one standalone worker, then two, wall time to finish both.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from psycopg.rows import dict_row

from codebase_mcp.storage.embedded import DATABASE_NAME, database_uri, start_embedded
from common import call, corpus_subset, env_for, percentile, table, throughput_corpus

EXE = str(Path(sys.executable).with_name("codebase-mcp"))


def gen_repo(root: Path, n: int) -> Path:
    for i in range(n):
        d = root / f"pkg{i // 200:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"mod_{i:05d}.py").write_text(
            "".join(
                f"def {verb}_{i}(items):\n    total = 0\n    for x in items:\n"
                f"        total += x * {k}\n    return total\n\n"
                for k, verb in enumerate(("load", "parse", "render", "store"))
            )
        )
    return root


def job(url: str, job_id: str) -> dict[str, Any]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        row = conn.execute("SELECT * FROM indexing_jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return row


def counts(url: str, root: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM files f JOIN repositories r ON r.id = f.repository_id "
            " WHERE r.root_path = %s),"
            " (SELECT count(*) FROM chunks c JOIN repositories r ON r.id = c.repository_id WHERE r.root_path = %s)",
            (root, root),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def latency_under_load(seconds: float, tmp: Path) -> list[tuple[str, str]]:
    home = tmp / "home-latency"
    env = env_for(home, "local")
    small = [gen_repo(tmp / f"small{i}", 3) for i in range(50)]
    subset = corpus_subset(throughput_corpus(), tmp / "subset", 3000)  # issue 10's corpus, first 3,000 files
    create: list[float] = []
    status: list[float] = []
    search: list[float] = []
    by_phase: dict[str, list[float]] = {}
    params = StdioServerParameters(command=EXE, args=["serve"], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        started = await call(session, "start_indexing_background", repo_path=str(subset))
        for repo in small:
            t = time.perf_counter()
            await call(session, "start_indexing_background", repo_path=str(repo))
            create.append((time.perf_counter() - t) * 1000)
        while (await call(session, "get_indexing_status", job_id=started["job_id"]))["files_indexed"] < 500:
            await asyncio.sleep(0.5)
        phases: dict[str, int] = {}
        end = time.monotonic() + seconds
        next_search = 0.0
        queries = ["simplify trigonometric expression", "shortest path", "Console", "type checker join", "render table"]
        i = 0
        while time.monotonic() < end:
            t = time.perf_counter()
            st = await call(session, "get_indexing_status", job_id=started["job_id"])
            status.append((time.perf_counter() - t) * 1000)
            phases[st["phase"]] = phases.get(st["phase"], 0) + 1
            if time.monotonic() >= next_search:
                t = time.perf_counter()
                await call(session, "search_code", query=queries[i % len(queries)], limit=10)
                search.append((time.perf_counter() - t) * 1000)
                by_phase.setdefault(st["phase"], []).append(search[-1])
                i += 1
                next_search = time.monotonic() + 0.5
            await asyncio.sleep(0.2)
        final = await call(session, "get_indexing_status", job_id=started["job_id"])
        await call(session, "cancel_indexing_job", job_id=started["job_id"])
    # the data directory's daemon ran the jobs; it would go on with the small ones (and load the
    # machine for whatever is measured next) until its idle exit
    subprocess.run([EXE, "daemon", "stop"], env=env, check=False, stdout=subprocess.DEVNULL)
    during = ", ".join(f"{k} {v}" for k, v in phases.items())
    return [
        (
            "job creation p50 / p95 (50 jobs, MCP round trip)",
            f"{percentile(create, 50):.1f} / {percentile(create, 95):.1f} ms",
        ),
        (
            f"status p50 / p95 while a job runs ({len(status)} polls)",
            f"{percentile(status, 50):.1f} / {percentile(status, 95):.1f} ms",
        ),
        (
            f"search p50 / p95 while a job runs ({len(search)} searches)",
            f"{percentile(search, 50):.1f} / {percentile(search, 95):.1f} ms",
        ),
        *(
            (
                f"search p50 / p95 while the job is {phase} ({len(times)} searches)",
                f"{percentile(times, 50):.1f} / {percentile(times, 95):.1f} ms",
            )
            for phase, times in by_phase.items()
        ),
        (
            "the job meanwhile",
            f"polls per phase: {during}; {final['files_indexed']:,} files, "
            f"{final['chunks_embedded']:,} chunks embedded",
        ),
    ]


async def run_job(env: dict[str, str], url: str, repo: Path, kill_at: float | None) -> tuple[str, float, int]:
    """Index ``repo`` through the server; with ``kill_at``, SIGKILL it when that share of files is stored,
    then restart it. Returns (job id, seconds, files stored before the kill)."""
    params = StdioServerParameters(command=EXE, args=["serve"], env=env)
    t0 = time.perf_counter()
    client = stdio_client(params)
    read, write = await client.__aenter__()
    session = await ClientSession(read, write).__aenter__()
    await session.initialize()
    job_id = (await call(session, "start_indexing_background", repo_path=str(repo)))["job_id"]
    before = 0
    if kill_at is not None:
        total = sum(1 for _ in repo.rglob("*.py"))
        while (row := job(url, job_id))["files_indexed"] < kill_at * total:
            await asyncio.sleep(0.01)
        before = row["files_indexed"]
        os.kill(int(row["worker_id"].split(":")[1]), signal.SIGKILL)
        try:
            await session.__aexit__(None, None, None)
            await client.__aexit__(None, None, None)
        except BaseException:
            pass
        client = stdio_client(params)
        read, write = await client.__aenter__()
        session = await ClientSession(read, write).__aenter__()
        await session.initialize()
    while (await call(session, "get_indexing_status", job_id=job_id))["status"] in {"pending", "running"}:
        await asyncio.sleep(0.2)
    seconds = time.perf_counter() - t0
    await session.__aexit__(None, None, None)
    await client.__aexit__(None, None, None)
    return job_id, seconds, before


async def kill_and_resume(n_files: int, tmp: Path) -> list[tuple[str, str]]:
    rows = []
    results = {}
    for label, kill_at in (("uninterrupted", None), ("SIGKILL at 50 %, restart", 0.5)):
        home = tmp / f"home-kill-{kill_at}"
        env = env_for(home, "fake")
        repo = gen_repo(tmp / f"kill-{kill_at}", n_files)
        url = database_uri(start_embedded(home), DATABASE_NAME)
        job_id, seconds, before = await run_job(env, url, repo, kill_at)
        row = job(url, job_id)
        files, chunks = counts(url, str(repo.resolve()))
        results[label] = (files, chunks)
        stored_twice = row["files_indexed"] - files
        rows.append(
            (
                f"{n_files:,} files, {label}",
                f"{row['status']} in {seconds:.1f} s, attempt {row['attempt']}, {files:,} files / {chunks:,} chunks"
                + (f"; {before:,} files stored before the kill, {stored_twice} stored twice" if kill_at else ""),
            )
        )
    same = len(set(results.values())) == 1
    rows.append(("resumed index equals the uninterrupted one", "yes" if same else f"NO: {results}"))
    return rows


async def workers(n_files: int, tmp: Path) -> list[tuple[str, str]]:
    rows = []
    for n_workers in (1, 2):
        home = tmp / f"home-w{n_workers}"
        env = env_for(home, "fake")
        url = database_uri(start_embedded(home), DATABASE_NAME)
        repos = [gen_repo(tmp / f"w{n_workers}-{i}", n_files // 2) for i in range(2)]
        subprocess.run([EXE, "status"], env=env, capture_output=True, check=True)  # migrate
        with psycopg.connect(url) as conn:
            conn.execute("INSERT INTO projects (id) VALUES ('default') ON CONFLICT DO NOTHING")
            ids: list[str] = []
            for r in repos:
                row = conn.execute(
                    "INSERT INTO indexing_jobs (project_id, repo_path) VALUES ('default', %s) RETURNING id",
                    (str(r.resolve()),),
                ).fetchone()
                assert row is not None
                ids.append(str(row[0]))
        t0 = time.perf_counter()
        procs = [subprocess.Popen([EXE, "worker"], env=env) for _ in range(n_workers)]
        while any(job(url, i)["status"] != "completed" for i in ids):
            await asyncio.sleep(0.2)
        seconds = time.perf_counter() - t0
        for p in procs:
            p.terminate()
            p.wait()
        rows.append(
            (
                f"{n_workers} worker(s), 2 repositories × {n_files // 2:,} files",
                f"{seconds:.1f} s ({n_files / seconds:,.0f} files/s)",
            )
        )
    return rows


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cbm-jobs-"))
    rows: list[tuple[str, str]] = []
    rows += await latency_under_load(args.seconds, tmp)
    rows.append(("load average after the latency window (1/5/15 min)", " / ".join(f"{x:.1f}" for x in os.getloadavg())))
    if not args.latency_only:
        rows += await kill_and_resume(args.files, tmp)
        rows += await workers(args.files, tmp)
    print(table(rows, "Background jobs"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--latency-only", action="store_true", help="part 1 only: latency while a job runs")
    asyncio.run(main(parser.parse_args()))
