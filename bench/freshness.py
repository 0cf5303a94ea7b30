"""Freshness (issue 12): how soon a saved edit is searchable through the daemon, a branch switch, and
what an idle daemon costs.

    python bench/freshness.py [--files 1000] [--edits 50] [--switch 500] [--model local|fake]

A generated repository of ``--files`` Python files (three functions each) is indexed with the CLI into a
fresh data directory (embedded PostgreSQL); then the daemon is started and, with no index call:
1. ``--edits`` edits, one at a time: a file gets a new function with a unique name; the time from the
   write to the first daemon search (keyword) that returns it; p50 / p95 / max.
2. A branch switch: ``--switch`` files rewritten at once (one of their three functions changes); the time
   until every change is searchable, until every changed chunk has its vector again, and how many
   vectors were computed (only the changed chunks should be).
3. The idle daemon: CPU share over 30 s and RSS, once everything has settled.
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
from pathlib import Path

import psutil
import psycopg

from codebase_mcp.daemon import client as daemon_client
from codebase_mcp.daemon.paths import database_key
from common import db_url, percentile, table

EXE = str(Path(sys.executable).with_name("codebase-mcp"))


def write_module(root: Path, i: int, variant: str = "") -> None:
    folder = root / f"pkg{i // 100:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    body = "".join(
        f"def {verb}_{i}_records{variant if k == 0 else ''}(items):\n"
        f'    """{verb.title()} the records of batch {i}{variant if k == 0 else ""}."""\n'
        f"    total = 0\n    for item in items:\n        total += len(str(item)) * {i + k}\n    return total\n\n\n"
        for k, verb in enumerate(("compute", "normalize", "summarize"))
    )
    (folder / f"module_{i:04d}.py").write_text(body)


async def hits(home: Path, query: str) -> list[str]:
    record = await daemon_client.request(
        home, "search", database_key=database_key(None), query=query, limit=3, mode="keyword"
    )
    return [hit["symbol"] for hit in record["results"]]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--edits", type=int, default=50)
    parser.add_argument("--switch", type=int, default=500)
    parser.add_argument("--model", choices=["local", "fake"], default="local")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="freshness-"))
    home, repo = work / "home", work / "repo"
    for i in range(args.files):
        write_module(repo, i)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEBASE_MCP_") and k != "DATABASE_URL"}
    env |= {"CODEBASE_MCP_HOME": str(home), "CODEBASE_MCP_EMBEDDING_PROVIDER": args.model}
    os.environ.update(env)
    rows: list[tuple[str, str]] = [("repository", f"{args.files} files, model {args.model}")]
    t0 = time.perf_counter()
    subprocess.run([EXE, "index", str(repo)], env=env, check=True, capture_output=True)
    rows.append(("initial index (CLI, foreground)", f"{time.perf_counter() - t0:.1f} s"))
    subprocess.run([EXE, "daemon", "start"], env=env, check=True, capture_output=True)
    try:
        info = await daemon_client.status(home)
        assert info is not None
        pid = info["pid"]
        while [r["mode"] for r in (await daemon_client.status(home) or {}).get("repositories", [])] != ["watching"]:
            await asyncio.sleep(0.1)

        # 1. single edits
        latencies = []
        for n in range(args.edits):
            i = (n * 37) % args.files
            target = repo / f"pkg{i // 100:02d}" / f"module_{i:04d}.py"
            marker = f"fresh_marker_{n}_function"
            with target.open("a") as fh:
                fh.write(f"\n\ndef {marker}(value):\n    return value\n")
            start = time.perf_counter()
            while marker not in await hits(home, marker):
                await asyncio.sleep(0.02)
            latencies.append(time.perf_counter() - start)
            await asyncio.sleep(0.2)
        rows.append(
            (
                f"edit -> searchable, {args.edits} edits (p50 / p95 / max)",
                f"{percentile(latencies, 50) * 1000:.0f} / {percentile(latencies, 95) * 1000:.0f} / "
                f"{max(latencies) * 1000:.0f} ms",
            )
        )

        # 2. a branch switch
        url = db_url(home)
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM embedding_cache").fetchone()
            cached_before = row[0] if row else 0
        start = time.perf_counter()
        for i in range(args.switch):
            write_module(repo, i, variant="_v2")
        written = time.perf_counter() - start
        last = f"compute_{args.switch - 1}_records_v2"
        searchable = None
        while True:
            with psycopg.connect(url) as conn:
                row = conn.execute(
                    "SELECT count(*) FILTER (WHERE symbol LIKE 'compute\\_%%\\_records\\_v2'), "
                    " count(*) FILTER (WHERE embedding IS NULL) FROM chunks"
                ).fetchone()
            assert row is not None
            if searchable is None and row[0] == args.switch and last in await hits(home, last):
                searchable = time.perf_counter() - start
            if searchable is not None and row[1] == 0:
                embedded = time.perf_counter() - start
                break
            await asyncio.sleep(0.05)
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM embedding_cache").fetchone()
            computed = (row[0] if row else 0) - cached_before
        rows.append((f"branch switch: {args.switch} files rewritten (writing took)", f"{written:.2f} s"))
        rows.append(("  -> every change searchable", f"{searchable:.1f} s"))
        rows.append(("  -> every changed chunk embedded again", f"{embedded:.1f} s"))
        rows.append(("  vectors computed (changed chunks: one per file)", f"{computed} (expected {args.switch})"))

        # 3. idle
        while (await daemon_client.status(home) or {}).get("repositories", [{}])[0].get("syncing"):
            await asyncio.sleep(0.2)
        await asyncio.sleep(3)
        proc = psutil.Process(pid)
        cpu0, t_0 = proc.cpu_times(), time.perf_counter()
        await asyncio.sleep(30)
        cpu1, t_1 = proc.cpu_times(), time.perf_counter()
        share = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (t_1 - t_0) * 100
        rows.append(("idle daemon: CPU over 30 s (one core = 100 %)", f"{share:.2f} %"))
        rows.append(("idle daemon: RSS", f"{proc.memory_info().rss / 2**20:.0f} MiB"))
    finally:
        subprocess.run([EXE, "daemon", "stop"], env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    rows.append(("load average (1 min) at the end", f"{os.getloadavg()[0]:.1f}"))
    print(table(rows, "Freshness through the daemon"))


if __name__ == "__main__":
    asyncio.run(main())
