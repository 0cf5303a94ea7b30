"""Where a warm hybrid search spends its time: each phase's start and end within the search, p50 over the
queries (docs/benchmarks/search-latency.md).

    CODEBASE_MCP_EMBEDDING_DIMENSION=384 python bench/search_phases.py --home /tmp/big384 [--queries 100]

The queries are ``keyword_latency.py``'s (drawn from the index with a fixed seed); every query runs once
to warm the caches, then once timed, through ``SearchEngine.search`` in process, hybrid with ranking, the
real model embedding each query (its vectors are compared with the stored ones under their name: the
timing is the product's, the ranking means nothing when the stored vectors are fake). The phases are timed
by wrapping the functions the engine calls: the query's embedding, each ``retrieval.retrieve`` statement
(the first carries the context, keyword arm and definitions; the second the dense arm), fusion, ranking
and hydration.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codebase_mcp.embeddings.base import create_model
from codebase_mcp.runtime import open_runtime
from codebase_mcp.search import engine
from codebase_mcp.settings import Settings
from common import grid, percentile
from keyword_latency import draw_queries

PHASES = ("first statement", "embed", "dense statement", "fuse", "rerank", "hydrate")


class Clock:
    """The spans of the current search's phases, in ms from its start."""

    def __init__(self) -> None:
        self.start = 0.0
        self.spans: dict[str, list[tuple[float, float]]] = {}

    def restart(self) -> None:
        self.start = time.perf_counter()
        self.spans = {}

    def record(self, label: str, t0: float) -> None:
        span = ((t0 - self.start) * 1000, (time.perf_counter() - self.start) * 1000)
        self.spans.setdefault(label, []).append(span)

    def timed(self, owner: Any, name: str, label: str | Callable[..., str]) -> None:
        """Record each call of ``owner.name`` under ``label`` (or what it returns for the call's arguments)."""
        f: Callable[..., Any] = getattr(owner, name)
        named = label if callable(label) else lambda *args, **kwargs: label
        if asyncio.iscoroutinefunction(f):

            async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return await f(*args, **kwargs)
                finally:
                    self.record(named(*args, **kwargs), t0)

            setattr(owner, name, wrapped_async)
        else:

            def wrapped(*args: Any, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return f(*args, **kwargs)
                finally:
                    self.record(named(*args, **kwargs), t0)

            setattr(owner, name, wrapped)


async def main(args: argparse.Namespace) -> None:
    home = Path(args.home)
    async with open_runtime(Settings(home=home, embedding_provider="fake")) as rt:
        search = rt.search
        real = create_model(Settings(home=home, embedding_provider="local"))
        real.name = search.model.name if search.model is not None else ""
        search.model = real
        queries = await draw_queries(rt, args.queries, args.seed)
        clock = Clock()
        clock.timed(real, "embed_query", "embed")
        clock.timed(
            engine.retrieval,
            "retrieve",
            lambda *a, **k: "dense statement" if k.get("dense") is not None else "first statement",
        )
        clock.timed(engine, "fuse", "fuse")
        clock.timed(engine, "rerank", "rerank")
        clock.timed(search, "_hydrate", "hydrate")
        totals: list[float] = []
        spans: list[dict[str, list[tuple[float, float]]]] = []
        for rep in ("warm", "timed"):
            for _, q in queries:
                clock.restart()
                await search.search(q, limit=10)
                if rep == "timed":
                    totals.append((time.perf_counter() - clock.start) * 1000)
                    spans.append(clock.spans)
        rows = []
        for label in PHASES:
            got = [s[label][0] for s in spans if s.get(label)]
            if got:
                starts, ends = [a for a, _ in got], [b for _, b in got]
                cells = [f"{percentile(v, 50):.2f}" for v in (starts, ends, [b - a for a, b in got])]
                rows.append([label, str(len(got)), *cells])
        whole = f"{percentile(totals, 50):.2f} (p95 {percentile(totals, 95):.2f})"
        rows.append(["whole search", str(len(totals)), "0", whole, ""])
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        title = f"ms p50 from the search's start (load average {load})"
        print(grid(["phase", "n", "starts", "ends", "lasts"], rows, title))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", required=True, help="CODEBASE_MCP_HOME of the indexed corpus (with vectors)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--seed", type=int, default=11)
    parsed = parser.parse_args()
    if not Path(parsed.home).is_dir():
        sys.exit(f"{parsed.home} does not exist: index a corpus there first (see keyword_latency.py)")
    asyncio.run(main(parsed))
