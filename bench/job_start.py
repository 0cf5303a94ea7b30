"""The seed's promise in numbers (issue 18): how soon the first job start on a brand-new data directory
answers, and how soon a file changed right after a job completes is searchable.

    python bench/job_start.py [--servers 10] [--runs 20] [--model local|fake]

1. ``--servers`` times: a brand-new data directory (embedded PostgreSQL created by the server), a new
   ``codebase-mcp serve`` over stdio (official MCP client), its first ``start_indexing_background`` on a
   20-file repository: the call's latency (p50 / p95 / max), and the time until the job completed; then
   the daemon the server started is stopped.
2. One data directory, the daemon running: ``--runs`` times for each of add, edit and delete, a new
   20-file repository is indexed as a job (started over MCP, polled every 50 ms) and, the moment the job
   reads completed, one file is added, edited or deleted; the time until a keyword search through the
   daemon reflects it (p50 / p95 / max).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from codebase_mcp.daemon import client as daemon_client
from codebase_mcp.daemon.paths import database_key
from common import call, env_for, percentile, table

EXE = str(Path(sys.executable).with_name("codebase-mcp"))


def make_repo(root: Path, files: int = 20) -> Path:
    """``files`` modules whose function names are unique to this repository (its folder's name)."""
    tag = root.name.replace("-", "_")
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (root / f"mod_{i:02d}.py").write_text(
            f"def load_{tag}_records_{i}(items):\n    return [x * {i} for x in items]\n\n\n"
            f"def store_{tag}_records_{i}(items):\n    return sum(items) + {i}\n"
        )
    return root


async def until_completed(session: ClientSession, job_id: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while (job := await call(session, "get_indexing_status", job_id=job_id))["status"] != "completed":
        if job["status"] in {"failed", "cancelled"} or time.monotonic() > deadline:
            raise RuntimeError(f"job did not complete: {job}")
        await asyncio.sleep(0.05)


def ms(values: list[float]) -> str:
    return f"{percentile(values, 50) * 1000:.0f} / {percentile(values, 95) * 1000:.0f} / {max(values) * 1000:.0f} ms"


async def first_starts(work: Path, servers: int, model: str) -> list[tuple[str, str]]:
    answered, completed = [], []
    for n in range(servers):
        home, repo = work / f"fresh-{n}", make_repo(work / f"first-repo-{n}")
        env = env_for(home, model)
        params = StdioServerParameters(command=EXE, args=["serve"], env=env)
        try:
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                t0 = time.perf_counter()
                started = await call(session, "start_indexing_background", repo_path=str(repo))
                answered.append(time.perf_counter() - t0)
                await until_completed(session, started["job_id"])
                completed.append(time.perf_counter() - t0)
        finally:
            subprocess.run([EXE, "daemon", "stop"], env=env, capture_output=True, timeout=120)
            shutil.rmtree(home, ignore_errors=True)
    return [
        (f"first start_indexing_background, {servers} new data directories (p50 / p95 / max)", ms(answered)),
        ("  -> that job completed (20 files)", ms(completed)),
    ]


async def after_completion(work: Path, runs: int, model: str) -> list[tuple[str, str]]:
    home = work / "shared-home"
    env = env_for(home, model)
    key = database_key(None)

    async def symbols(query: str) -> list[str]:
        record = await daemon_client.request(home, "search", database_key=key, query=query, limit=5, mode="keyword")
        return [hit["symbol"] for hit in record["results"]]

    async def until(check: Callable[[], Awaitable[bool]]) -> float:
        t0 = time.perf_counter()
        while not await check():
            if time.perf_counter() - t0 > 120:
                raise RuntimeError("not searchable after 120 s")
            await asyncio.sleep(0.02)
        return time.perf_counter() - t0

    rows = []
    params = StdioServerParameters(command=EXE, args=["serve"], env=env)
    try:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            for op in ("added", "edited", "deleted"):
                latencies = []
                for n in range(runs):
                    repo = make_repo(work / f"{op}-{n}")
                    started = await call(session, "start_indexing_background", repo_path=str(repo))
                    await until_completed(session, started["job_id"])
                    marker = f"{op}_marker_{n}_function"
                    if op == "added":
                        (repo / "new_module.py").write_text(f"def {marker}(value):\n    return value\n")
                    elif op == "edited":
                        with (repo / "mod_03.py").open("a") as fh:
                            fh.write(f"\n\ndef {marker}(value):\n    return value\n")
                    else:
                        (repo / "mod_05.py").unlink()
                    name = f"load_{repo.name.replace('-', '_')}_records_5" if op == "deleted" else marker

                    async def reflected(name: str = name, present: bool = op != "deleted") -> bool:
                        return (name in await symbols(name)) == present

                    latencies.append(await until(reflected))
                rows.append((f"a file {op} right after its job completed -> searchable, {runs} runs", ms(latencies)))
    finally:
        subprocess.run([EXE, "daemon", "stop"], env=env, capture_output=True, timeout=120)
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=10)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--model", choices=["local", "fake"], default="local")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="job-start-"))
    try:
        rows = [("model", args.model)]
        rows += await first_starts(work, args.servers, args.model)
        rows += await after_completion(work, args.runs, args.model)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows.append(("load average (1 min) at the end", f"{os.getloadavg()[0]:.1f}"))
    print(table(rows, "Job start and watching at completion"))


if __name__ == "__main__":
    asyncio.run(main())
