"""What the BM25 postings pass of a bulk load costs (issue 23): the blocks (migration 0014) built by one
or more statements at once, against the former one row per posting.

    # a scratch index (never one in use: the script deletes and rebuilds its postings)
    python bench/store_phase.py bench/.corpus/throughput-sdists      # prints its data directory
    python bench/postings_pass.py --home /tmp/store-phase-XXXX blocks-1 blocks-2 rows

On the largest repository of the index: the sort of its postings alone, then each way asked of
building them again: ``blocks-N`` (``indexer.build_postings`` with N statements on N connections at once;
the indexer uses ``POSTINGS_BUILDERS``), ``rows`` (the
former design: every posting a row of ``bm25_postings`` with its B-tree entry, inserted in index
order in one statement; deleted again after). Each starts from empty, vacuumed tables after a
checkpoint; prints its time, the WAL written and the table's size. The blocks are as the indexer left
them at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from codebase_mcp.indexing.indexer import build_postings
from codebase_mcp.indexing.run import RunControl
from codebase_mcp.settings import Settings
from codebase_mcp.storage import index_store
from codebase_mcp.storage.database import Database, open_database
from common import table

SELECT = (
    "SELECT c.repository_id, u.lexeme, c.id, cardinality(u.positions), c.doc_len, "
    "bm25_impact(cardinality(u.positions), c.doc_len) FROM chunks c, unnest(c.tsv) u "
    "WHERE c.repository_id = %(repo)s ORDER BY 1, 2, 6 DESC, 3"
)
ROWS = "INSERT INTO bm25_postings (repository_id, lexeme, chunk_id, tf, doc_len, impact) " + SELECT
SIZES = (
    "SELECT pg_size_pretty(pg_total_relation_size('bm25_blocks')) AS blocks,"
    " pg_size_pretty(pg_total_relation_size('bm25_postings')) AS rows,"
    " (SELECT coalesce(sum(cardinality(chunk_ids)), 0) FROM bm25_blocks WHERE repository_id = %(repo)s) AS in_blocks,"
    " (SELECT count(*) FROM bm25_postings WHERE repository_id = %(repo)s) AS in_rows"
)


async def wal_lsn(db: Database) -> str:
    async with db.connection() as conn:
        return str((await (await conn.execute("SELECT pg_current_wal_lsn() AS l")).fetchone() or {})["l"])


async def wal_since(db: Database, lsn: str) -> float:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s) AS w", (lsn,))
        return float((await cur.fetchone() or {})["w"]) / 2**20


async def sizes(db: Database, repo: int) -> dict[str, Any]:
    async with db.connection() as conn:
        return dict(await (await conn.execute(SIZES, {"repo": repo})).fetchone() or {})


async def build_blocks(db: Database, repo: int, builders: int) -> None:
    async with db.connection() as conn:
        await index_store.begin_bulk_postings(conn, repo)  # listed: its postings dropped
    await build_postings(db, repo, RunControl(), builders)


async def build(db: Database, way: str, repo: int, count: int) -> tuple[str, str]:
    async with db.connection() as conn:  # each way starts from empty tables, their space reusable
        await index_store.begin_bulk_postings(conn, repo)
    async with db.connection() as conn:
        await conn.set_autocommit(True)
        await conn.execute("VACUUM bm25_blocks, bm25_postings")
        await conn.execute("CHECKPOINT")
    lsn = await wal_lsn(db)
    started = time.perf_counter()
    if way == "rows":
        async with db.connection() as conn:
            await conn.execute("SELECT set_config('statement_timeout', '0', true)")
            await conn.execute(ROWS.encode(), {"repo": repo})
            await index_store.end_bulk_postings(conn, repo)
    else:
        await build_blocks(db, repo, int(way.split("-")[1]))
    seconds = time.perf_counter() - started
    wal = await wal_since(db, lsn)
    now = await sizes(db, repo)
    assert now["in_blocks"] + now["in_rows"] == count, "the postings were not all built again"
    where = f"rows {now['rows']}" if way == "rows" else f"blocks {now['blocks']}"
    return way, f"{seconds:.1f} s, WAL {wal:,.0f} MB, {where}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("ways", nargs="+", help="blocks-N (N statements at once) or rows")
    args = parser.parse_args()
    db = await open_database(Settings(home=args.home))
    try:
        async with db.connection() as conn:
            cur = await conn.execute(
                "SELECT repository_id AS r, sum(df) AS n FROM bm25_terms GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
            )
            top = await cur.fetchone()
            assert top, "nothing indexed here: index a folder first (see the docstring)"
        repo, count = int(top["r"]), int(top["n"])
        rows = [("postings of the repository", f"{count:,}")]
        async with db.connection() as conn:
            await conn.execute("SELECT set_config('statement_timeout', '0', true)")
            started = time.perf_counter()
            await conn.execute(f"SELECT count(*) FROM ({SELECT}) x".encode(), {"repo": repo})
            rows.append(("the postings sorted, nothing written", f"{time.perf_counter() - started:.1f} s"))
        for way in args.ways:
            rows.append(await build(db, way, repo, count))
        await build_blocks(db, repo, 2)  # as the indexer leaves them
    finally:
        await db.close()
    print(table(rows, "BM25 postings pass"))


if __name__ == "__main__":
    asyncio.run(main())
