"""The local embedding model's raw rate, and the indexer's embedding rate next to it.

    python bench/embed_rate.py [--texts 384] [--repeats 3] [--pipeline-seconds 60] [--threads 2]

Texts are real chunks: the installed sources of a few PyPI packages, chunked and stored by the
indexer into the embedded PostgreSQL (keyword phase only), read back as the model sees them.

1. Raw model rate (no database; the same sampled texts for every row, the same threads): fp32 and
   int8 at inference batch sizes 8/16/32, and int8/fp32 at input budgets of 64/96/128/192/256 word-pieces.
   Configurations are interleaved and repeated, so load from other processes hits them alike; the
   table gives the median and the range over the repeats.
2. Load time (int8 graph from the cache, and deriving it) and query latency p50/p95.
3. Pipeline vs raw: ``Indexer.embed_pending`` runs for ``--pipeline-seconds``; then the very chunks it
   embedded are embedded again by the bare model in calls of the indexer's size. Repeated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from codebase_mcp.domain import JobPhase, Progress
from codebase_mcp.embeddings.local import INFERENCE_BATCH, LocalEmbeddingModel
from codebase_mcp.errors import Cancelled
from codebase_mcp.indexing.indexer import Indexer, embedding_text
from codebase_mcp.indexing.run import RunControl
from codebase_mcp.settings import Settings
from codebase_mcp.storage import index_store
from codebase_mcp.storage.database import Database, open_database
from common import build_corpus, peak_rss_mib, percentile, table

PACKAGES = ["rich", "click", "httpx", "starlette"]
QUERIES = [
    "send a mail message",
    "parse the configuration file",
    "retry a request with exponential backoff",
    "render a table in the terminal",
    "validate the bearer token",
    "read the response body as json",
    "compute the total of the invoice lines",
    "strip ansi escape codes from a string",
]


class Deadline(RunControl):
    """A run that stops at ``deadline`` (``time.perf_counter()``)."""

    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.deadline = deadline

    def check(self) -> None:
        if time.perf_counter() > self.deadline:
            raise Cancelled("the measurement window is over")


def rate(model: LocalEmbeddingModel, texts: list[str], call_size: int = 128) -> float:
    """Chunks per second embedding ``texts`` in calls of ``call_size`` (as the indexer calls it)."""
    started = time.perf_counter()
    for i in range(0, len(texts), call_size):
        model.embed_batch(texts[i : i + call_size])
    return len(texts) / (time.perf_counter() - started)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


async def chunk_texts(db: Database) -> list[str]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT f.path, c.symbol, c.content FROM chunks c JOIN files f ON f.id = c.file_id ORDER BY c.id"
        )
        return [embedding_text(r["path"], r["symbol"], r["content"]) for r in await cur.fetchall()]


async def pipeline_vs_raw(
    db: Database, model: LocalEmbeddingModel, settings: Settings, seconds: float
) -> tuple[float, float, int]:
    """Embed with the indexer for ``seconds``; then the same chunks with the bare model."""
    async with db.connection() as conn:
        await conn.execute("UPDATE chunks SET embedding = NULL, embedding_model_id = NULL")
        await conn.execute("DELETE FROM embedding_cache")
        await conn.commit()
        cur = await conn.execute("SELECT id FROM repositories")
        row = await cur.fetchone()
        assert row is not None
        repo_id = int(row["id"])
        model_id = await index_store.ensure_model(conn, model.name, model.dimension)
    state = Progress(phase=JobPhase.EMBEDDING)
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    with contextlib.suppress(Cancelled):
        await Indexer(db, model, settings).embed_pending(repo_id, model_id, state, Deadline(deadline))
    pipeline = state.chunks_embedded / (time.perf_counter() - started)
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT f.path, c.symbol, c.content FROM chunks c JOIN files f ON f.id = c.file_id "
            "WHERE c.embedding IS NOT NULL ORDER BY c.id"
        )
        done = [embedding_text(r["path"], r["symbol"], r["content"]) for r in await cur.fetchall()]
    unique = list(dict.fromkeys(done))  # the indexer embeds each distinct text once
    call = max(settings.embedding_batch_size * 4, 64)
    raw_seconds = len(unique) / rate(model, unique, call)
    return pipeline, len(done) / raw_seconds, len(done)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


async def main(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="cbm-embed-rate-"))
    cache = home / "models"
    settings = Settings(home=home, embedding_provider="local", embedding_threads=args.threads)

    # load: the first use pays for importing onnxruntime + tokenizers; the int8 graph ships, fp32 is derived once
    first = LocalEmbeddingModel(threads=args.threads, int8=True, cache_dir=cache)
    t_first = timed(lambda: first.embed_query("warm up"))
    loads_int8 = [
        timed(lambda: LocalEmbeddingModel(threads=args.threads, int8=True, cache_dir=cache).embed_query("x"))
        for _ in range(3)
    ]
    t_derive_fp32 = timed(
        lambda: LocalEmbeddingModel(threads=args.threads, int8=False, cache_dir=cache).embed_query("x")
    )
    loads_fp32 = [
        timed(lambda: LocalEmbeddingModel(threads=args.threads, int8=False, cache_dir=cache).embed_query("x"))
        for _ in range(3)
    ]

    corpus = build_corpus("embed-rate", PACKAGES)
    db = await open_database(settings)
    await Indexer(db, first, settings).index(corpus, embed=False)
    texts_all = await chunk_texts(db)
    sample = random.Random(5).sample(texts_all, min(args.texts, len(texts_all)))

    models: dict[str, LocalEmbeddingModel] = {}
    grid: list[tuple[str, bool, int, int]] = []
    for int8 in (False, True):
        for batch in (8, 16, 32):
            grid.append((f"{'int8' if int8 else 'fp32'}, batch {batch}, 256 word-pieces", int8, batch, 256))
    for int8 in (True, False):
        for budget in (64, 96, 128, 192):
            label = f"{'int8' if int8 else 'fp32'}, batch {INFERENCE_BATCH}, {budget} word-pieces"
            grid.append((label, int8, INFERENCE_BATCH, budget))
    for label, int8, batch, budget in grid:
        models[label] = LocalEmbeddingModel(
            threads=args.threads, int8=int8, batch_size=batch, max_tokens=budget, cache_dir=cache
        )
        models[label].embed_batch(sample[:16])  # load + warm up
    rates: dict[str, list[float]] = {label: [] for label, *_ in grid}
    for _ in range(args.repeats):
        for label, *_ in grid:
            rates[label].append(rate(models[label], sample))

    latencies: dict[str, list[float]] = {"int8": [], "fp32": []}
    for key, model in (("int8", models[grid[4][0]]), ("fp32", models[grid[1][0]])):
        for _ in range(max(1, args.queries // len(QUERIES))):
            for q in QUERIES:
                s = time.perf_counter()
                model.embed_query(q)
                latencies[key].append((time.perf_counter() - s) * 1000)

    comparisons: list[tuple[float, float, int]] = []
    if args.pipeline_seconds > 0:
        pipe_model = LocalEmbeddingModel(threads=args.threads, int8=True, cache_dir=cache)
        for _ in range(args.repeats):
            comparisons.append(await pipeline_vs_raw(db, pipe_model, settings, args.pipeline_seconds))
    await db.close()

    rows: list[tuple[str, str]] = [
        ("texts", f"{len(sample)} chunks sampled from {len(texts_all):,} ({', '.join(PACKAGES)})"),
        ("threads", f"{args.threads} intra-op, 1 inter-op; {args.repeats} repeats, interleaved"),
        ("first use in a process (imports, load the shipped int8 graph)", f"{t_first:.2f} s"),
        ("load int8 again (+ first query)", " / ".join(f"{t:.2f}" for t in loads_int8) + " s"),
        ("first fp32 use (derive fp32, load)", f"{t_derive_fp32:.2f} s"),
        ("load fp32 from the cache (+ first query)", " / ".join(f"{t:.2f}" for t in loads_fp32) + " s"),
    ]
    rows += [(f"raw chunks/s: {label}", spread(rates[label])) for label, *_ in grid]
    for key, values in latencies.items():
        rows.append(
            (f"query embedding {key} p50 / p95", f"{percentile(values, 50):.1f} / {percentile(values, 95):.1f} ms")
        )
    for i, (pipeline, raw, n) in enumerate(comparisons, 1):
        rows.append(
            (
                f"int8 pipeline vs raw, run {i}",
                f"indexer {pipeline:.1f} chunks/s, bare model on the same {n:,} chunks {raw:.1f} chunks/s "
                f"({100 * pipeline / raw:.0f} %)",
            )
        )
    rows.append(("peak RSS", f"{peak_rss_mib():,.0f} MiB"))
    print(table(rows, "Local embedding model: raw rate, load, query latency, pipeline"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=384, help="chunks sampled for the raw-rate grid")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pipeline-seconds", type=float, default=60.0)
    asyncio.run(main(parser.parse_args()))
