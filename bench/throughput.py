"""Issue 10's corpus benchmark: time to keyword search, embedding rate and coverage, memory; then an
incremental re-index and search latency.

    python bench/throughput.py [--embed-seconds 600] [--queries 200] [--provider local]

The corpus is the sdists of django 5.2.19, sympy 1.14.0 and sqlalchemy 2.1.9 (pinned by sha256,
downloaded once with ``pip download`` into bench/.corpus/downloads), unpacked side by side under
bench/.corpus/throughput-sdists/. One ``Indexer.index`` run, as ``codebase-mcp index`` does it: the store
phase (scan, read, chunk, store: keyword search works on every file after it), then embedding with the
default local model (int8), stopped after ``--embed-seconds`` if it has not finished. Definitions of
non-test code are embedded first (``embed_priority`` 0); when the window ends before they or the rest
are embedded, the times are projected from the rate measured in the window and printed as
projections. Peak RSS is this process's (the embedded PostgreSQL runs in its own processes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from codebase_mcp.domain import JobPhase, Progress
from codebase_mcp.embeddings.base import create_model
from codebase_mcp.errors import Cancelled
from codebase_mcp.indexing.indexer import Indexer, embedding_text
from codebase_mcp.indexing.run import RunControl
from codebase_mcp.search.engine import SearchEngine
from codebase_mcp.settings import Settings
from codebase_mcp.storage import index_store
from codebase_mcp.storage.database import TO_EMBED, Database, open_database
from common import THROUGHPUT_SDISTS, count_files, peak_rss_mib, percentile, table, throughput_corpus


async def counts(db: Database) -> dict[str, int]:
    """Chunks, definition chunks of non-test code (``embed_priority`` 0), the chunks the default rule
    embeds (all but keyword-only ones), and how many have a vector."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS chunks, count(*) FILTER (WHERE embedding IS NOT NULL) AS embedded, "
            "count(*) FILTER (WHERE embed_priority = 0) AS definitions, "
            "count(*) FILTER (WHERE embed_priority = 0 AND embedding IS NOT NULL) AS definitions_embedded, "
            f"count(*) FILTER (WHERE {TO_EMBED}) AS to_embed, "
            "count(DISTINCT embed_hash) AS distinct_texts FROM chunks"
        )
        row = await cur.fetchone()
    assert row is not None
    return {k: int(v) for k, v in row.items()}


def cpu_seconds(home: Path) -> tuple[float, float]:
    """CPU seconds used so far by this process (all threads) and by the embedded PostgreSQL (the
    postmaster, its live children and the children it has reaped): load from other people's work on
    the machine stretches wall time, not these."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    pg = 0.0
    with contextlib.suppress(OSError, ValueError, psutil.Error):
        postmaster = psutil.Process(int((home / "pgdata" / "postmaster.pid").read_text().split()[0]))
        times = postmaster.cpu_times()
        pg = times.user + times.system + times.children_user + times.children_system
        for child in postmaster.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                t = child.cpu_times()
                pg += t.user + t.system
    return usage.ru_utime + usage.ru_stime, pg


def clock(seconds: float) -> str:
    return f"{seconds:,.0f} s ({seconds / 60:.1f} min)"


async def main(args: argparse.Namespace) -> None:
    corpus = throughput_corpus()
    files_on_disk = count_files(corpus)
    home = Path(tempfile.mkdtemp(prefix="cbm-bench-"))
    settings = Settings(home=home, embedding_provider=args.provider)
    model = create_model(settings)
    db = await open_database(settings)
    indexer = Indexer(db, model, settings)

    t0 = time.perf_counter()
    marks: dict[str, float] = {}
    last: list[Progress] = []

    def progress(p: Progress) -> None:
        if not last:
            last.append(p)
        if p.phase == JobPhase.EMBEDDING and "searchable" not in marks:
            marks["searchable"] = time.perf_counter() - t0
            marks["rss_store"] = peak_rss_mib()
            marks["cpu_self_store"], marks["cpu_pg_store"] = cpu_seconds(home)

    class EmbedWindow(RunControl):
        """Stops the run once it has embedded for ``--embed-seconds``."""

        def check(self) -> None:
            if "searchable" in marks and time.perf_counter() - t0 - marks["searchable"] > args.embed_seconds:
                raise Cancelled("the embedding window is over")

    timeline: list[tuple[float, dict[str, int]]] = []

    async def sample() -> None:
        while True:
            await asyncio.sleep(args.sample_seconds)
            if "searchable" in marks:
                c = await counts(db)
                timeline.append((time.perf_counter() - t0, c))
                if "definitions" not in marks and c["definitions_embedded"] == c["definitions"]:
                    marks["definitions"] = time.perf_counter() - t0
                print(
                    f"  {time.perf_counter() - t0:6.0f} s: {c['embedded']:,} of {c['chunks']:,} chunks embedded, "
                    f"definitions {c['definitions_embedded']:,} of {c['definitions']:,}, "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )

    sampler = asyncio.create_task(sample())
    try:
        await indexer.index(corpus, run=EmbedWindow(on_progress=progress))
        fully = True
    except Cancelled:
        fully = False
    t_end = time.perf_counter() - t0
    sampler.cancel()
    state = last[0]
    final = await counts(db)
    t_store = marks["searchable"]
    window = t_end - t_store
    embedded = final["embedded"]
    rate = embedded / window if window else 0.0
    if final["definitions_embedded"] == final["definitions"] and "definitions" not in marks:
        marks["definitions"] = t_end
    if "definitions" in marks:
        defs = clock(marks["definitions"]) + " (measured" + (", within one sampling interval)" if fully else ")")
    else:
        left = final["definitions"] - final["definitions_embedded"]
        defs = clock(t_end + left / rate) + " (projection from the window's rate)"
    full = (
        clock(t_end) + " (measured)"
        if fully
        else clock(t_end + (final["to_embed"] - embedded) / rate) + (" (projection from the window's rate)")
    )
    rss_index = peak_rss_mib()
    cpu_self, cpu_pg = cpu_seconds(home)
    loads = os.getloadavg()

    # incremental: change 10 files. Their chunks are embedded first (as in a fully embedded index),
    # so the re-index pays only for chunks whose text changed; the rest come from the embedding cache.
    async with db.connection() as conn:
        cur = await conn.execute("SELECT id FROM repositories")
        row = await cur.fetchone()
        assert row is not None
        repo_id = int(row["id"])
        model_id = await index_store.ensure_model(conn, model.name, model.dimension)
    files = sorted(p for p in corpus.rglob("*.py") if p.stat().st_size > 2000)
    random.Random(7).shuffle(files)
    changed_paths = [str(p.relative_to(corpus)) for p in files[:10]]
    await embed_files(db, model, repo_id, model_id, changed_paths)
    originals = {path: path.read_bytes() for path in files[:10]}
    try:
        for path in files[:10]:
            stamp = time.time_ns()  # new text each run, so the cache cannot already hold it
            path.write_text(path.read_text() + f"\n\ndef bench_added_{path.stem}_{stamp}():\n    return {stamp}\n")
        t2 = time.perf_counter()
        again = await indexer.index(corpus, embed=False)
        t_reindex_store = time.perf_counter() - t2
        t3 = time.perf_counter()
        reembedded, reused = await embed_files(db, model, repo_id, model_id, changed_paths)
        t_reembed = time.perf_counter() - t3
    finally:
        for path, data in originals.items():  # the corpus stays the pinned sdists
            path.write_bytes(data)

    # search latency (dense over whatever the window embedded)
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

    sdists = ", ".join(f"{s.name} {s.version}" for s in THROUGHPUT_SDISTS)
    rows = [
        ("corpus", f"sdists of {sdists}, unpacked side by side"),
        ("files on disk", f"{files_on_disk:,}"),
        ("files indexed / skipped", f"{state.files_indexed:,} / {state.files_skipped:,}"),
        ("chunks (distinct texts)", f"{final['chunks']:,} ({final['distinct_texts']:,})"),
        ("definition chunks in non-test code", f"{final['definitions']:,}"),
        ("scan", f"{state.seconds['scan']:.1f} s"),
        (
            "read + chunk + store",
            f"{state.seconds['store']:.1f} s ({state.files_indexed / state.seconds['store']:,.0f} files/s, "
            f"{state.chunks_created / state.seconds['store']:,.0f} chunks/s)",
        ),
        (
            "every file keyword-searchable (exact BM25 over GIN candidates) after",
            f"{t_store - state.seconds.get('postings', 0.0):.1f} s",
        ),
        (
            "BM25 postings built in bulk (the fast keyword path), in one pass",
            f"{state.seconds.get('postings', 0.0):.1f} s" if "postings" in state.seconds else "no (per statement)",
        ),
        ("keyword-searchable after (store phase done, postings included)", f"{t_store:.1f} s"),
        (
            "CPU time until keyword-searchable: this process / PostgreSQL",
            f"{marks['cpu_self_store']:.1f} s / {marks['cpu_pg_store']:.1f} s",
        ),
        (
            "embedding rate (local model, window)",
            f"{rate:,.1f} chunks/s: {embedded:,} chunks in {window:,.0f} s "
            f"({state.embeddings_from_cache:,} filled from the cache)",
        ),
        (
            "coverage at the end of the window",
            f"{100 * embedded / final['chunks']:.1f} % of chunks, "
            f"{100 * final['definitions_embedded'] / max(final['definitions'], 1):.1f} % of definitions",
        ),
        ("definitions of non-test code embedded after", defs),
        (f"fully embedded ({final['to_embed']:,} chunks; the rest keyword-only) after", full),
        (
            "CPU time in the embedding window: this process / PostgreSQL",
            f"{cpu_self - marks['cpu_self_store']:.1f} s / {cpu_pg - marks['cpu_pg_store']:.1f} s in {window:,.0f} s",
        ),
        (
            "fp32 graph derived in the window (once per data directory; int8 ships derived)",
            "yes" if getattr(model, "derivations", 0) else "no (cached)",
        ),
        ("peak RSS after the store phase / after embedding", f"{marks['rss_store']:,.0f} / {rss_index:,.0f} MiB"),
        ("load average at the end of the window (1/5/15 min)", " / ".join(f"{x:.1f}" for x in loads)),
        (
            "re-index, 10 files changed: scan + diff + store",
            f"{t_reindex_store:.2f} s ({again.files_indexed} files re-chunked, {again.files_unchanged:,} unchanged)",
        ),
        (
            "re-index, 10 files changed: embed changed chunks",
            f"{t_reembed:.2f} s ({reembedded} chunks embedded, {reused} from the cache)",
        ),
    ]
    if queries:
        rows += [
            (
                "search keyword p50 / p95",
                f"{percentile(lat['keyword'], 50):.1f} / {percentile(lat['keyword'], 95):.1f} ms",
            ),
            (
                "search hybrid p50 / p95",
                f"{percentile(lat['hybrid'], 50):.1f} / {percentile(lat['hybrid'], 95):.1f} ms "
                f"({len(queries)} queries)",
            ),
        ]
    rows.append(("peak RSS (this process; PostgreSQL not included)", f"{peak_rss_mib():,.0f} MiB"))
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
    parser.add_argument("--embed-seconds", type=float, default=600, help="embedding window (s)")
    parser.add_argument("--sample-seconds", type=float, default=30, help="coverage sampling interval (s)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--provider", default="local")
    asyncio.run(main(parser.parse_args()))
