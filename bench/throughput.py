"""Indexing throughput and search latency on a 10,000+ file real corpus.

    python bench/throughput.py [--embed-seconds 300] [--queries 200]

Phases are measured separately: scan + read + chunk + store (after which keyword search works), then
embedding with the default local model for a bounded time (the rate and the projected total are
reported), then an incremental re-index after changing 10 files, then search latency.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from codebase_mcp.domain import JobPhase, Progress
from codebase_mcp.embeddings.base import create_model
from codebase_mcp.errors import Cancelled
from codebase_mcp.indexing.indexer import Indexer, embedding_text
from codebase_mcp.search.engine import SearchEngine
from codebase_mcp.settings import Settings
from codebase_mcp.storage import index_store
from codebase_mcp.storage.database import open_database
from common import THROUGHPUT_PACKAGES, build_corpus, count_files, peak_rss_mib, percentile, table


async def main(args: argparse.Namespace) -> None:
    corpus = build_corpus("throughput", THROUGHPUT_PACKAGES)
    files_on_disk = count_files(corpus)
    home = Path(tempfile.mkdtemp(prefix="cbm-bench-"))
    settings = Settings(home=home, embedding_provider=args.provider)
    model = create_model(settings)
    db = await open_database(settings)
    indexer = Indexer(db, model, settings)

    t0 = time.perf_counter()
    stored = await indexer.index(corpus, embed=False)
    t_store = time.perf_counter() - t0

    async with db.connection() as conn:
        cur = await conn.execute("SELECT id FROM repositories")
        row = await cur.fetchone()
        assert row is not None
        repo_id = int(row["id"])
        model_id = await index_store.ensure_model(conn, model.name, model.dimension)

    deadline = time.perf_counter() + args.embed_seconds
    state = Progress(phase=JobPhase.EMBEDDING)
    t1 = time.perf_counter()
    try:
        await indexer.embed_pending(repo_id, model_id, state, lambda p: None, lambda: time.perf_counter() > deadline)
        fully = True
    except Cancelled:
        fully = False
    t_embed = time.perf_counter() - t1
    rate = state.chunks_embedded / t_embed if t_embed else 0.0
    remaining = stored.chunks_created - state.chunks_embedded
    projected = t_embed + (remaining / rate if rate else float("inf"))

    # incremental: change 10 files. Their chunks are embedded first (as in a fully embedded index),
    # so the re-index pays only for chunks whose text changed; the rest come from the embedding cache.
    files = sorted(p for p in corpus.rglob("*.py") if p.stat().st_size > 2000)
    random.Random(7).shuffle(files)
    changed_paths = [str(p.relative_to(corpus)) for p in files[:10]]
    await embed_files(db, model, repo_id, model_id, changed_paths)
    for path in files[:10]:
        stamp = time.time_ns()  # new text each run, so the cache cannot already hold it
        path.write_text(path.read_text() + f"\n\ndef bench_added_{path.stem}_{stamp}():\n    return {stamp}\n")
    t2 = time.perf_counter()
    again = await indexer.index(corpus, embed=False)
    t_reindex_store = time.perf_counter() - t2
    t3 = time.perf_counter()
    reembedded, reused = await embed_files(db, model, repo_id, model_id, changed_paths)
    t_reembed = time.perf_counter() - t3

    # search latency
    engine = SearchEngine(db, model, settings.search_candidates)
    queries = await sample_queries(db, args.queries)
    await engine.search("warm up the model", limit=10)
    lat: dict[str, list[float]] = {"keyword": [], "hybrid": []}
    for mode in lat:
        for q in queries:
            s = time.perf_counter()
            await engine.search(q, limit=10, mode=mode)  # type: ignore[arg-type]
            lat[mode].append((time.perf_counter() - s) * 1000)
    await db.close()

    rows = [
        ("corpus", f"{', '.join(THROUGHPUT_PACKAGES)} (installed PyPI sources)"),
        ("files on disk", f"{files_on_disk:,}"),
        ("files indexed / skipped", f"{stored.files_indexed:,} / {stored.files_skipped:,}"),
        ("chunks", f"{stored.chunks_created:,}"),
        ("scan", f"{stored.seconds['scan']:.1f} s ({files_on_disk / stored.seconds['scan']:,.0f} files/s)"),
        (
            "read + chunk + store (COPY)",
            f"{stored.seconds['store']:.1f} s "
            f"({stored.files_indexed / stored.seconds['store']:,.0f} files/s, "
            f"{stored.chunks_created / stored.seconds['store']:,.0f} chunks/s)",
        ),
        ("keyword-searchable after", f"{t_store:.1f} s"),
        (
            "embedding rate (local model, 2 threads)",
            f"{rate:,.1f} chunks/s over {t_embed:.0f} s ({state.embeddings_from_cache:,} from cache)",
        ),
        ("fully embedded after", f"{t_store + projected:,.0f} s" + ("" if fully else " (projected from the rate)")),
        (
            "re-index, 10 files changed: scan + diff + store",
            f"{t_reindex_store:.2f} s ({again.files_indexed} files re-chunked, {again.files_unchanged:,} unchanged)",
        ),
        (
            "re-index, 10 files changed: embed changed chunks",
            f"{t_reembed:.2f} s ({reembedded} chunks embedded, {reused} from the cache)",
        ),
        ("search keyword p50 / p95", f"{percentile(lat['keyword'], 50):.1f} / {percentile(lat['keyword'], 95):.1f} ms"),
        (
            "search hybrid p50 / p95",
            f"{percentile(lat['hybrid'], 50):.1f} / {percentile(lat['hybrid'], 95):.1f} ms ({len(queries)} queries)",
        ),
        ("peak RSS (indexing process)", f"{peak_rss_mib():,.0f} MiB"),
    ]
    print(table(rows, "Indexing throughput and search latency"))


async def embed_files(db: Any, model: Any, repo_id: int, model_id: int, paths: list[str]) -> tuple[int, int]:
    """Give the chunks of ``paths`` their vectors, embedding only texts not in the cache."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT c.id, c.embed_hash, f.path, c.symbol, c.content, ec.embed_hash IS NOT NULL AS cached "
            "FROM chunks c JOIN files f ON f.id = c.file_id LEFT JOIN embedding_cache ec "
            " ON ec.model_id = %s AND ec.embed_hash = c.embed_hash WHERE c.repository_id = %s AND f.path = ANY(%s)",
            (model_id, repo_id, paths),
        )
        rows = await cur.fetchall()
        todo = {r["embed_hash"]: embedding_text(r["path"], r["symbol"], r["content"]) for r in rows if not r["cached"]}
        if todo:
            vectors = model.embed_batch(list(todo.values()), "document")
            await index_store.add_to_cache(conn, model_id, list(todo), vectors)
        await index_store.fill_from_cache(conn, repo_id, model_id, [r["id"] for r in rows])
        await conn.commit()
    return len(todo), len(rows) - len(todo)


async def sample_queries(db: object, n: int) -> list[str]:
    """Half identifier queries (symbol names), half natural-language (docstring first sentences)."""
    async with db.connection() as conn:  # type: ignore[attr-defined]
        cur = await conn.execute(
            "SELECT symbol, content FROM chunks WHERE kind IN ('function', 'method') AND symbol IS NOT NULL "
            "ORDER BY md5(id::text) LIMIT %s",
            (n * 4,),
        )
        rows = await cur.fetchall()
    names = [r["symbol"].split(".")[-1] for r in rows][: n // 2]
    sentences = []
    for r in rows:
        m = re.search(r'"""\s*([^\n."]{15,120})', r["content"])
        if m:
            sentences.append(m.group(1))
    return names + sentences[: n - len(names)]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--embed-seconds", type=float, default=300)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--provider", default="local")
    asyncio.run(main(parser.parse_args()))
