"""The store phase alone (issue 23): one ``Indexer.index(..., embed=False)`` of a folder into a fresh
data directory, as ``codebase-mcp index --no-embed`` runs it, with its phase times and CPU.

    python bench/store_phase.py bench/.corpus/throughput-sdists
    CODEBASE_MCP_PREPARE_PROCESS_MIN_FILES=0 python bench/store_phase.py DIR   # reading in the run's thread

CPU "indexer" is this process's (worker processes not counted), "PostgreSQL" the embedded server's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from codebase_mcp.embeddings.base import create_model
from codebase_mcp.indexing.indexer import Indexer
from codebase_mcp.indexing.run import RunControl
from codebase_mcp.settings import Settings
from codebase_mcp.storage.database import open_database
from common import table
from throughput import cpu_seconds


def du_mb(path: Path) -> str:
    return f"{sum(f.stat().st_size for f in path.rglob('*') if f.is_file()) / 2**20:,.0f} MB"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="store-phase-"))
    settings = Settings(home=home)
    db = await open_database(settings)
    try:
        indexer = Indexer(db, create_model(settings), settings)
        cpu0 = cpu_seconds(home)
        started = time.perf_counter()
        progress = await indexer.index(args.folder, run=RunControl(), embed=False)
        wall = time.perf_counter() - started
        cpu1 = cpu_seconds(home)
        async with db.connection() as conn:
            await conn.execute("CHECKPOINT")
            cur = await conn.execute(
                "SELECT c.relname AS name, pg_total_relation_size(c.oid) AS bytes FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = 'public' "
                "AND pg_total_relation_size(c.oid) >= 1048576 ORDER BY 2 DESC"
            )
            tables = [(str(r["name"]), int(r["bytes"])) for r in await cur.fetchall()]
            cur = await conn.execute("SELECT pg_database_size(current_database()) AS b")
            database = int((await cur.fetchone() or {})["b"])
    finally:
        await db.close()
    seconds = progress.seconds
    rows = [
        ("files read", str(progress.files_indexed)),
        ("chunks", str(progress.chunks_created)),
        ("wall", f"{wall:.1f} s"),
        (
            "scan / store (postings included) / postings pass",
            " / ".join(f"{seconds.get(k, 0):.1f} s" for k in ("scan", "store", "postings")),
        ),
        ("CPU: indexer process / PostgreSQL", f"{cpu1[0] - cpu0[0]:.1f} / {cpu1[1] - cpu0[1]:.1f} s"),
        ("load average", f"{os.getloadavg()[0]:.1f}"),
    ]
    print(table(rows, f"store phase of {args.folder}"))
    chunks = max(progress.chunks_created, 1)
    sizes = [(name, f"{b / 2**20:,.0f} MB, {b / chunks:,.0f} bytes a chunk") for name, b in tables]
    sizes.append(("database", f"{database / 2**20:,.0f} MB, {database / chunks:,.0f} bytes a chunk"))
    sizes.append(
        ("pg_wal / the data directory (after a checkpoint)", f"{du_mb(home / 'pgdata' / 'pg_wal')} / {du_mb(home)}")
    )
    print(table(sizes, "sizes, tables with their indexes and TOAST"))
    print(f"\ndata directory: {home}")


if __name__ == "__main__":  # the worker processes import this module again
    asyncio.run(main())
