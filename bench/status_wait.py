"""Issue 22: how soon ``get_indexing_status(wait_seconds=20)`` answers after its job changes, and how
large the tool list is that every agent reads.

    python bench/status_wait.py [--runs 50]

A fresh data directory (embedded PostgreSQL), an in-process server that runs no job (``run_worker``
off), one job whose row this script moves: ``--runs`` times, a waiting call is sent, and 0.2-0.7 s later
the job's phase is changed (one autocommitted UPDATE); the time from that commit to the call's answer
(p50 / p95 / max), next to a plain call's round trip. Then the characters of tools/list: descriptions
plus input schemas, and output schemas (JSON, as ``json.dumps`` writes them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from mcp import Client

from codebase_mcp.server.app import build_server
from codebase_mcp.settings import Settings
from common import db_url, percentile, table


async def status(client: Client, job_id: str, wait: float) -> dict[str, Any]:
    result = await client.call_tool("get_indexing_status", {"job_id": job_id, "wait_seconds": wait})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def ms(values: list[float]) -> str:
    return f"{percentile(values, 50) * 1000:.0f} / {percentile(values, 95) * 1000:.0f} / {max(values) * 1000:.0f} ms"


async def main(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="cbm-wait-") as tmp:
        home, repo = Path(tmp) / "home", Path(tmp) / "repo"
        repo.mkdir()
        (repo / "a.py").write_text("def a():\n    return 1\n")
        settings = Settings(home=home, embedding_provider="fake", run_worker=False)
        async with Client(build_server(settings)) as client:
            tools = (await client.list_tools()).tools
            started = await client.call_tool("start_indexing_background", {"repo_path": str(repo)})
            assert started.structured_content is not None
            job_id = started.structured_content["job_id"]
            async with await psycopg.AsyncConnection.connect(db_url(home), autocommit=True) as conn:
                await conn.execute(
                    "UPDATE indexing_jobs SET status = 'running', attempt = 1, worker_id = 'bench:1', "
                    "heartbeat_at = now(), started_at = now() WHERE id = %s",
                    (job_id,),
                )
                plain, after_change = [], []
                for n in range(runs):
                    t0 = time.monotonic()
                    await status(client, job_id, 0)
                    plain.append(time.monotonic() - t0)
                    waiting = asyncio.create_task(status(client, job_id, 20))
                    await asyncio.sleep(random.uniform(0.2, 0.7))
                    phase = ("chunking", "embedding")[n % 2]
                    await conn.execute("UPDATE indexing_jobs SET phase = %s WHERE id = %s", (phase, job_id))
                    changed = time.monotonic()
                    job = await waiting
                    after_change.append(time.monotonic() - changed)
                    assert job["phase"] == phase, job
        described = sum(len(t.description or "") + len(json.dumps(t.input_schema)) for t in tools)
        outputs = sum(len(json.dumps(t.output_schema)) for t in tools if t.output_schema)
        print(
            table(
                [
                    ("plain get_indexing_status round trip (p50 / p95 / max)", ms(plain)),
                    ("wait_seconds=20: answer after the change (p50 / p95 / max)", ms(after_change)),
                    ("tools/list: descriptions + input schemas (chars)", str(described)),
                    ("tools/list: output schemas (chars)", str(outputs)),
                ],
                f"get_indexing_status(wait_seconds) over {runs} changes",
            )
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.runs))
