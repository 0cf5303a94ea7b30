"""Where PostgreSQL's time goes when chunks are stored (issue 10, the store phase).

    # a scratch index with many chunks (never one in use: the script takes exclusive locks)
    CODEBASE_MCP_HOME=/tmp/big codebase-mcp index bench/.corpus/big/src --no-embed
    python bench/store_costs.py --home /tmp/big [--chunks 20000]

Copies ``--chunks`` chunk rows of the index into a temporary table, then times, statement by
statement, what storing them again as a new repository costs: computing the tsvector, inserting with
and without the GIN index and the other indexes, and the BM25 postings kept per statement (1,000 chunks
at a time, as the triggers do) versus built in one sorted pass (a bulk load, migration 0009). Every
write is rolled back: the index is left as it was.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from codebase_mcp.settings import Settings
from codebase_mcp.storage.database import open_database
from codebase_mcp.storage.embedded import database_uri, start_embedded
from common import table

COLUMNS = (
    "file_id, repository_id, ordinal, start_line, end_line, kind, symbol, language, content, embed_hash, "
    "search_text, embed_priority"
)
INSERT = (
    f"INSERT INTO chunks ({COLUMNS}, tsv, doc_len) SELECT s.*, v, tsvector_token_count(v) "
    "FROM {source} s, to_tsvector('english', s.search_text) v"
)
POSTINGS = (
    "INSERT INTO bm25_postings SELECT c.repository_id, u.lexeme, c.id, cardinality(u.positions), c.doc_len, "
    "bm25_impact(cardinality(u.positions), c.doc_len) FROM chunks c, unnest(c.tsv) u "
    "WHERE c.repository_id = %s ORDER BY 1, 2, 6 DESC, 3"
)


def main(args: argparse.Namespace) -> None:
    async def migrate() -> None:  # the scratch index gets this version's schema
        db = await open_database(Settings(home=args.home))
        await db.close()

    asyncio.run(migrate())
    uri = database_uri(start_embedded(args.home), "codebase_mcp")
    n = args.chunks
    rows: list[tuple[str, str]] = []
    with psycopg.connect(uri) as conn:
        conn.execute("SET statement_timeout = 0")

        def timed(label: str, statement: str, params: Any = None, repeat: int = 1) -> None:
            started = time.perf_counter()
            for _ in range(repeat):
                conn.execute(statement, params)
            per_chunk = (time.perf_counter() - started) / repeat / n * 1e6
            rows.append((label, f"{per_chunk:,.0f} µs"))

        def variant(label: str, prepare: Callable[[], None], statement: str, params: Any = None) -> None:
            conn.execute("SAVEPOINT v")
            prepare()
            timed(label, statement, params)
            conn.execute("ROLLBACK TO SAVEPOINT v")

        total = conn.execute("SELECT count(*) FROM chunks").fetchone()
        repo = conn.execute(
            "INSERT INTO repositories (project_id, root_path, name) VALUES ('default', '/bench/store-costs', "
            "'store-costs') RETURNING id"
        ).fetchone()
        assert repo is not None and total is not None
        conn.execute(f"CREATE TEMP TABLE stage AS SELECT {COLUMNS} FROM chunks ORDER BY id LIMIT %s", (n,))
        conn.execute("UPDATE stage SET repository_id = %s, ordinal = ordinal + 1000000", (repo[0],))
        average = conn.execute("SELECT avg(length(search_text))::int FROM stage").fetchone()
        timed(
            "to_tsvector('english', search_text) alone",
            "SELECT sum(length(v)) FROM (SELECT to_tsvector('english', search_text) v FROM stage OFFSET 0) x",
            repeat=2,
        )
        timed(
            "to_tsvector('simple', search_text) alone",
            "SELECT sum(length(v)) FROM (SELECT to_tsvector('simple', search_text) v FROM stage OFFSET 0) x",
            repeat=2,
        )

        def no_triggers() -> None:
            conn.execute("ALTER TABLE chunks DISABLE TRIGGER ALL")

        def no_gin() -> None:
            no_triggers()
            conn.execute("DROP INDEX chunks_tsv")

        def keys_only() -> None:
            no_gin()
            for index in ("chunks_embed_queue", "chunks_symbol_tail", "chunks_repository"):
                conn.execute(f"DROP INDEX {index}")

        source = INSERT.format(source="stage")
        variant("insert, tsv and doc_len computed, no triggers, all indexes", no_triggers, source)
        variant("the same without the GIN index", no_gin, source)
        variant("the same with only the primary and unique keys", keys_only, source)
        variant(
            "insert with an empty tsv, no triggers, all indexes",
            no_triggers,
            f"INSERT INTO chunks ({COLUMNS}, tsv, doc_len) SELECT s.*, '', 0 FROM stage s",
        )

        # postings: per statement (the triggers, 1,000 chunks at a time) vs one pass after a bulk load
        conn.execute("SAVEPOINT v")
        conn.execute("INSERT INTO bm25_bulk (repository_id) VALUES (%s)", (repo[0],))
        started = time.perf_counter()
        conn.execute(source)
        bulk_insert = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute(POSTINGS, (repo[0],))
        one_pass = time.perf_counter() - started
        conn.execute("ROLLBACK TO SAVEPOINT v")
        conn.execute("SAVEPOINT v")
        started = time.perf_counter()
        for offset in range(0, n, 1000):
            conn.execute(INSERT.format(source=f"(SELECT * FROM stage OFFSET {offset} LIMIT 1000)"))
        per_statement = time.perf_counter() - started
        conn.execute("ROLLBACK TO SAVEPOINT v")
        rows.append(("insert with every trigger, postings per statement", f"{per_statement / n * 1e6:,.0f} µs"))
        rows.append(("insert with every trigger, bulk load (no postings)", f"{bulk_insert / n * 1e6:,.0f} µs"))
        rows.append(("the bulk load's postings, one sorted pass", f"{one_pass / n * 1e6:,.0f} µs"))
        conn.rollback()
    print(
        table(
            [
                ("index", f"{args.home} ({total[0]:,} chunks)"),
                ("chunks timed", f"{n:,} ({average[0] if average else 0} characters of search text each on average)"),
                *rows,
            ],
            "PostgreSQL cost per chunk stored",
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, required=True, help="a scratch index home with many chunks")
    parser.add_argument("--chunks", type=int, default=20000)
    main(parser.parse_args())
