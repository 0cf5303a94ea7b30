"""Keyword (BM25) and hybrid search latency on a large keyword-only index (issue 11, item 1).

    # once: a large corpus, indexed without vectors (about 220k chunks; docs/benchmarks/search-latency.md)
    CODEBASE_MCP_HOME=/tmp/big codebase-mcp index bench/.corpus/big/src --no-embed
    python bench/keyword_latency.py --home /tmp/big [--queries 200] [--depth 1000]

The query set is drawn from the index itself, with a fixed seed: half identifier queries (the last
segment of a chunk's symbol), half natural-language queries (the first sentence of a docstring or doc
comment in a chunk, 4 to 30 words). Every query runs once to warm the caches, then once timed, through
``SearchEngine.search`` in process (no MCP round trip): keyword mode, and hybrid mode with the ranking
stage (the fake model: with no vectors stored the dense arm returns nothing, so hybrid measures
everything else a search does). The keyword arm alone is also timed on the postings path
(``retrieval.keyword_search``) and on the former path that scores every GIN candidate from its
tsvector (``keyword_candidates_gin``, exact), and the two tops are compared: how often the postings path
proves its top exact, and how much of the exact top 10 it returns. Those arm calls run between a query's
searches and read many pages; ``--searches-only`` times the two searches alone (each query still warmed
once first), as a client that only searches sees them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import sys
import time
from pathlib import Path

from codebase_mcp.core.analysis import query_lexemes
from codebase_mcp.core.codenames import tail
from codebase_mcp.core.tokens import query_terms
from codebase_mcp.domain import SearchFilters
from codebase_mcp.embeddings.base import create_model
from codebase_mcp.runtime import open_runtime
from codebase_mcp.settings import Settings
from codebase_mcp.storage import retrieval, search_store
from common import grid, percentile

_SENTENCE = re.compile(r'(?:"""|\'\'\'|/\*\*|///|//!|#)\s*([A-Z][^.\n]*(?:\n[^.\n"]*)?\.)')


def natural_query(content: str) -> str | None:
    m = _SENTENCE.search(content)
    if not m:
        return None
    words = m.group(1).split()
    return " ".join(words) if 4 <= len(words) <= 30 else None


async def draw_queries(rt: object, n: int, seed: int) -> list[tuple[str, str]]:
    async with rt.db.connection() as conn:  # type: ignore[attr-defined]
        cur = await conn.execute("SELECT max(id) AS hi FROM chunks")
        hi = int((await cur.fetchone())["hi"])
        rng = random.Random(seed)
        ids = sorted(rng.sample(range(1, hi + 1), min(hi, 20 * n)))
        cur = await conn.execute("SELECT id, symbol, content FROM chunks WHERE id = ANY(%s) ORDER BY id", (ids,))
        rows = await cur.fetchall()
    idents: dict[str, None] = {}
    naturals: dict[str, None] = {}
    for r in rows:
        name = tail(r["symbol"]) if r["symbol"] else ""
        if len(name) >= 4 and not name.startswith("__"):
            idents.setdefault(r["symbol"].rsplit(".", 1)[-1], None)
        sentence = natural_query(r["content"])
        if sentence:
            naturals.setdefault(sentence, None)
    half = n // 2
    pick_i = rng.sample(list(idents), min(half, len(idents)))
    pick_n = rng.sample(list(naturals), min(n - half, len(naturals)))
    return [("identifier", q) for q in pick_i] + [("natural", q) for q in pick_n]


async def main(args: argparse.Namespace) -> None:
    settings = Settings(home=Path(args.home), embedding_provider="fake")
    retrieval.POSTINGS_DEPTH = args.depth
    async with open_runtime(settings) as rt:
        async with rt.db.connection() as conn:
            cur = await conn.execute("SELECT count(*) AS n FROM chunks")
            chunks = int((await cur.fetchone())["n"])
            cur = await conn.execute("SELECT count(*) AS n FROM files")
            files = int((await cur.fetchone())["n"])
            cur = await conn.execute("SELECT array_agg(id) AS ids FROM repositories")
            repos = list((await cur.fetchone())["ids"])
            cur = await conn.execute(
                "SELECT pg_size_pretty(pg_total_relation_size('bm25_blocks')) AS blocks, "
                " pg_size_pretty(pg_total_relation_size('bm25_postings')) AS postings, "
                " pg_size_pretty(pg_total_relation_size('chunks')) AS chunks, "
                " (SELECT count(*) FROM bm25_blocks) AS nb, "
                " (SELECT coalesce(sum(cardinality(chunk_ids)), 0) FROM bm25_blocks) AS inb, "
                " (SELECT count(*) FROM bm25_postings) AS n"
            )
            sizes = dict(await cur.fetchone())
        queries = await draw_queries(rt, args.queries, args.seed)
        if args.query_model == "local":
            # the real model embeds each query; its vectors are compared with the stored (fake) ones under
            # their name, so the ranking means nothing but the timing is the product's
            stored = rt.search.model.name if rt.search.model is not None else ""
            real = create_model(Settings(home=Path(args.home), embedding_provider="local"))
            real.name = stored
            rt.search.model = real
        print(f"# query vectors: {args.query_model} model")
        print(f"# corpus: {files:,} files, {chunks:,} chunks; {len(queries)} queries; depth {args.depth}")
        print(
            f"# postings: {sizes['inb']:,} in {sizes['nb']:,} blocks, {sizes['blocks']}; delta {sizes['n']:,} rows,"
            f" {sizes['postings']} (chunks table {sizes['chunks']})"
        )
        timings: dict[tuple[str, str], list[float]] = {}
        exact_n = 0
        overlap: list[float] = []
        first_same = 0
        for _, q in queries:
            query_lexemes(query_terms(q))
        async with rt.db.connection() as conn:  # stems as the server makes them (core/analysis.py)
            await search_store.check_stems(conn)
        lexes_of = {q: query_lexemes(query_terms(q)) for _, q in queries}
        for rep in ("warm", "timed"):
            for kind, q in queries:
                lexes = lexes_of[q]
                for label in () if args.searches_only else ("postings arm", "gin arm (before)"):
                    t0 = time.perf_counter()
                    async with rt.db.connection() as conn:
                        if label == "postings arm":
                            found, exact = await retrieval.keyword_search(conn, repos, SearchFilters(), lexes, 50)
                        else:
                            ref = await search_store.keyword_candidates_gin(conn, repos, SearchFilters(), lexes, 50)
                    ms = (time.perf_counter() - t0) * 1000
                    if rep == "timed":
                        timings.setdefault((kind, label), []).append(ms)
                if rep == "timed" and lexes and not args.searches_only:
                    exact_n += exact
                    top, want = [c.chunk_id for c in found[:10]], [c.chunk_id for c in ref[:10]]
                    overlap.append(len(set(top) & set(want)) / len(want) if want else 1.0)
                    first_same += bool(top[:1] == want[:1])
                for label, mode, rank in (("keyword", "keyword", False), ("hybrid+rank", "hybrid", True)):
                    t0 = time.perf_counter()
                    await rt.search.search(q, limit=10, mode=mode, rank=rank)
                    ms = (time.perf_counter() - t0) * 1000
                    if rep == "timed":
                        timings.setdefault((kind, label), []).append(ms)
        rows = []
        labels = [*(() if args.searches_only else ("postings arm", "gin arm (before)")), "keyword", "hybrid+rank"]
        for kind in ("identifier", "natural", "all"):
            cells = []
            for label in labels:
                values = [v for (k, lab), vs in timings.items() if lab == label and kind in (k, "all") for v in vs]
                cells.append(f"{percentile(values, 50):.1f} / {percentile(values, 95):.1f}")
            n = sum(1 for k, _ in queries if kind in (k, "all"))
            rows.append([kind, str(n), *cells])
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(grid(["queries", "n", *labels], rows, f"Latency p50 / p95 (ms, warm, in-process; load average {load})"))
        if args.searches_only:
            return
        scored = len(overlap) or 1
        print(
            f"\npostings arm vs exact BM25 (GIN arm), top 50 asked: proven exact {exact_n}/{len(overlap)}; "
            f"top-10 overlap {sum(overlap) / scored:.3f}; same first hit {first_same}/{len(overlap)}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", required=True, help="CODEBASE_MCP_HOME of the indexed corpus")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--query-model",
        choices=["fake", "local"],
        default="fake",
        help="what embeds each query (local: the real model, timed against the stored fake vectors)",
    )
    parser.add_argument(
        "--searches-only", action="store_true", help="time the keyword and hybrid searches without the arm calls"
    )
    parser.add_argument("--depth", type=int, default=retrieval.POSTINGS_DEPTH, help="postings read per lexeme")
    parsed = parser.parse_args()
    if not Path(parsed.home).is_dir():
        sys.exit(f"{parsed.home} does not exist: index a corpus there first (see the docstring)")
    asyncio.run(main(parsed))
