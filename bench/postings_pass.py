"""What the BM25 postings pass of a bulk load costs, and what does not change it (issue 23).

    # a scratch index (never one in use: the script deletes and rebuilds its postings)
    python bench/store_phase.py bench/.corpus/throughput-sdists      # prints its data directory
    python bench/postings_pass.py --home /tmp/store-phase-XXXX plain unlogged reindex split-lexemes split-ids

Times, on the largest repository of the index, the sort of its postings alone, then each way asked of
building them again (``index_store.finish_bulk_postings`` is ``plain``): ``unlogged`` (the table set
UNLOGGED first: no write-ahead log), ``reindex`` (inserted without the index, then CREATE INDEX),
``split-lexemes`` / ``split-ids`` (two statements on two connections at once, split by lexeme range
or by chunk id range, each balanced on half of the rows). Prints the WAL each statement wrote. Every
way leaves the same postings and the table as it found it.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from codebase_mcp.settings import Settings
from codebase_mcp.storage.database import Database, open_database
from common import table

SELECT = (
    "SELECT c.repository_id, u.lexeme, c.id, cardinality(u.positions), c.doc_len, "
    "bm25_impact(cardinality(u.positions), c.doc_len) FROM chunks c, unnest(c.tsv) u "
    "WHERE c.repository_id = %(repo)s {cond} ORDER BY 1, 2, 6 DESC, 3"
)
INSERT = "INSERT INTO bm25_postings (repository_id, lexeme, chunk_id, tf, doc_len, impact) " + SELECT
INDEX = (
    "CREATE INDEX bm25_postings_read ON bm25_postings (repository_id, lexeme, impact DESC, chunk_id) "
    "INCLUDE (tf, doc_len)"
)
SPLITS = {  # the first row past half of the postings, and the condition of each half
    "split-lexemes": (
        'SELECT lexeme AS b FROM (SELECT lexeme, sum(df) OVER (ORDER BY lexeme COLLATE "C") AS cum,'
        " sum(df) OVER () AS total FROM bm25_terms WHERE repository_id = %(repo)s) x"
        ' WHERE cum * 2 >= total ORDER BY lexeme COLLATE "C" LIMIT 1',
        ('AND u.lexeme COLLATE "C" <= %(b)s', 'AND u.lexeme COLLATE "C" > %(b)s'),
    ),
    "split-ids": (
        "SELECT id AS b FROM (SELECT id, sum(doc_len) OVER (ORDER BY id) AS cum, sum(doc_len) OVER () AS total"
        " FROM chunks WHERE repository_id = %(repo)s) x WHERE cum * 2 >= total ORDER BY id LIMIT 1",
        ("AND c.id <= %(b)s", "AND c.id > %(b)s"),
    ),
}


async def timed(db: Database, sql: str, params: dict[str, Any]) -> tuple[float, float]:
    """(seconds, MB of WAL) of one statement in autocommit."""
    async with db.connection() as conn:
        await conn.set_autocommit(True)
        await conn.execute("SET statement_timeout = 0; SET work_mem = '64MB'; SET maintenance_work_mem = '256MB'")
        lsn = (await (await conn.execute("SELECT pg_current_wal_lsn() AS l")).fetchone() or {})["l"]
        started = time.perf_counter()
        await conn.execute(sql.encode(), params)
        seconds = time.perf_counter() - started
        cur = await conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s) AS w", (lsn,))
        return seconds, float((await cur.fetchone() or {})["w"]) / 2**20


async def build(db: Database, way: str, repo: int) -> list[tuple[str, str]]:
    params: dict[str, Any] = {"repo": repo}
    rows: list[tuple[str, str]] = []

    async def step(label: str, sql: str, extra: dict[str, Any] | None = None) -> None:
        seconds, wal = await timed(db, sql, {**params, **(extra or {})})
        rows.append((f"{way}: {label}", f"{seconds:.1f} s, WAL {wal:,.0f} MB"))

    await step("delete + vacuum", "DELETE FROM bm25_postings WHERE repository_id = %(repo)s")
    await timed(db, "VACUUM bm25_postings", {})
    if way == "plain":
        await step("insert", INSERT.format(cond=""))
    elif way == "unlogged":
        await timed(db, "ALTER TABLE bm25_postings SET UNLOGGED", {})
        await step("insert", INSERT.format(cond=""))
        await step("set logged again", "ALTER TABLE bm25_postings SET LOGGED")
    elif way == "reindex":
        await timed(db, "DROP INDEX bm25_postings_read", {})
        await step("insert without the index", INSERT.format(cond=""))
        await step("create index", INDEX)
    else:
        bound_sql, conds = SPLITS[way]
        async with db.connection() as conn:
            bound = (await (await conn.execute(bound_sql.encode(), params)).fetchone() or {})["b"]
        started = time.perf_counter()
        parts = await asyncio.gather(*(timed(db, INSERT.format(cond=c), {**params, "b": bound}) for c in conds))
        took = time.perf_counter() - started
        rows.append((f"{way}: two inserts at once", f"{took:.1f} s (parts {parts[0][0]:.1f}, {parts[1][0]:.1f} s)"))
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("ways", nargs="+", choices=["plain", "unlogged", "reindex", *SPLITS])
    args = parser.parse_args()
    db = await open_database(Settings(home=args.home))
    try:
        async with db.connection() as conn:
            cur = await conn.execute(
                "SELECT repository_id AS r, count(*) AS n FROM bm25_postings GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
            )
            top = await cur.fetchone()
            assert top, "no postings in this index: index a folder first (see the docstring)"
            cur = await conn.execute(
                "SELECT pg_size_pretty(pg_relation_size('bm25_postings')) AS heap,"
                " pg_size_pretty(pg_indexes_size('bm25_postings')) AS idx, current_setting('shared_buffers') AS sb"
            )
            sizes = await cur.fetchone() or {}
        repo, count = int(top["r"]), int(top["n"])
        rows = [
            ("postings of the repository", f"{count:,}"),
            ("table: heap / indexes; shared buffers", f"{sizes['heap']} / {sizes['idx']}; {sizes['sb']}"),
        ]
        seconds, _ = await timed(db, f"SELECT count(*) FROM ({SELECT.format(cond='')}) x", {"repo": repo})
        rows.append(("the rows sorted, nothing written", f"{seconds:.1f} s"))
        for way in args.ways:
            rows += await build(db, way, repo)
        async with db.connection() as conn:
            cur = await conn.execute("SELECT count(*) AS n FROM bm25_postings WHERE repository_id = %s", (repo,))
            assert (await cur.fetchone() or {})["n"] == count, "the postings were not all built again"
    finally:
        await db.close()
    print(table(rows, "BM25 postings pass"))


if __name__ == "__main__":
    asyncio.run(main())
