"""Retrieval quality over many languages and three kinds of query, through the product's own API.

    python bench/eval_corpus.py                       # once: builds bench/.corpus/eval-multi
    python bench/evaluate_multi.py [--model fake|local] [--split all|tune|report]
        [--languages go,rust] [--max-queries 100] [--repos 2] [--json out.json]
        [--kinds identifier] [--modes hybrid+rank] [--misses misses.txt]

Each language of the corpus is indexed into its own project (one repository per package) in a
throwaway embedded PostgreSQL, then every query runs through ``SearchEngine.search`` in the modes
keyword, dense, hybrid and hybrid + ranking, and through a reference BM25 (``bm25s``, Lucene variant,
the product's k1 and b) over exactly the tokens the product scores for each chunk (the lexemes of
``chunks.tsv``, each repeated as often as it occurs: code-aware tokens of ``core/tokens.py``, then
stopwords and stemming of PostgreSQL's ``english`` configuration; read back from the database) with
the product's own query lexemes (``query_terms`` then ``analysis.query_lexemes``).
Reported per language and kind of query, per mode: MRR@10, Recall@10 and
nDCG@10 at chunk level (a hit is a chunk of the right file whose lines hold the target definition's
line; for module queries any chunk of the file) and at file level (the first chunk of the right file;
files counted once, in order of first appearance), and search latency p50/p95.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codebase_mcp.core.analysis import query_lexemes
from codebase_mcp.core.tokens import query_terms
from codebase_mcp.runtime import open_runtime
from codebase_mcp.search.fusion import FusionWeights
from codebase_mcp.settings import Settings
from codebase_mcp.storage import search_store
from common import grid, percentile, table
from eval_corpus import KINDS, LANGUAGES, QUERIES, ROOT, SOURCES, Query, load_queries

MODES = [  # label, product mode, ranking stage
    ("keyword", "keyword", False),
    ("dense", "dense", False),
    ("hybrid", "hybrid", False),
    ("hybrid+rank", "hybrid", True),
]
REFERENCE = "bm25 (ref)"
K = 10


@dataclass
class ChunkRow:
    repo: str
    path: str
    start: int
    end: int


@dataclass
class Outcome:
    chunk_rank: int | None
    file_rank: int | None


@dataclass
class Results:
    outcomes: dict[tuple[str, str, str], list[Outcome]] = field(default_factory=lambda: defaultdict(list))
    latency: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))


def ranks(q: Query, hits: list[ChunkRow]) -> Outcome:
    chunk_rank = file_rank = None
    files: list[tuple[str, str]] = []
    for i, h in enumerate(hits[:K], 1):
        same_file = h.repo == q.repo and h.path == q.path
        if chunk_rank is None and same_file and (q.line is None or h.start <= q.line <= h.end):
            chunk_rank = i
        if (h.repo, h.path) not in files:
            files.append((h.repo, h.path))
            if file_rank is None and same_file:
                file_rank = len(files)
    return Outcome(chunk_rank, file_rank)


def metrics(found: list[int | None]) -> tuple[float, float, float]:
    n = len(found) or 1
    mrr = sum(1 / r for r in found if r) / n
    recall = sum(1 for r in found if r) / n
    ndcg = sum(1 / math.log2(r + 1) for r in found if r) / n
    return mrr, recall, ndcg


class ReferenceBM25:
    """bm25s over the product's stored lexemes of each chunk of one project."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        import bm25s

        self.chunks = [ChunkRow(r["repo"], r["path"], r["start_line"], r["end_line"]) for r in rows]
        self.model = bm25s.BM25(k1=search_store.K1, b=search_store.B, method="lucene")
        self.model.index([r["tokens"] for r in rows], show_progress=False)
        self.vocab: dict[str, int] = self.model.vocab_dict

    def search(self, lexes: list[str]) -> list[ChunkRow]:
        terms = [t for t in lexes if t in self.vocab]
        if not terms:
            return []
        scores = self.model.get_scores(terms)
        top = np.argsort(-scores, kind="stable")[:K]  # ties: the chunk stored first wins
        return [self.chunks[i] for i in top if scores[i] > 0]


async def run_language(
    rt: Any,
    language: str,
    queries: list[Query],
    repos: int | None,
    res: Results,
    modes: list[str],
    misses: list[str] | None = None,
) -> dict:
    project = f"eval-{language}"
    sources = [s for s in SOURCES if s.language == language][: repos or None]
    started = time.perf_counter()
    embedded = 0
    for src in sources:
        state = await rt.indexer.index(ROOT / language / src.repo, project_id=project)
        embedded += state.chunks_embedded
    index_s = time.perf_counter() - started
    async with rt.db.connection() as conn:
        cur = await conn.execute(
            "SELECT r.name AS repo, f.path, c.start_line, c.end_line, "
            " array(SELECT u.lexeme FROM unnest(c.tsv) u, generate_series(1, cardinality(u.positions))) AS tokens "
            "FROM chunks c "
            "JOIN files f ON f.id = c.file_id JOIN repositories r ON r.id = c.repository_id "
            "WHERE r.project_id = %s ORDER BY c.id",
            (project,),
        )
        rows = await cur.fetchall()
        cur = await conn.execute(
            "SELECT r.name AS repo, s.path, s.reason FROM skipped_files s "
            "JOIN repositories r ON r.id = s.repository_id WHERE r.project_id = %s ORDER BY 1, 2",
            (project,),
        )
        skipped = [dict(r) for r in await cur.fetchall()]
        cur = await conn.execute(
            "SELECT count(*) AS n FROM files f JOIN repositories r ON r.id = f.repository_id WHERE r.project_id = %s",
            (project,),
        )
        files = int((await cur.fetchone())["n"])
        for q in queries:
            query_lexemes(query_terms(q.query))
        await search_store.check_stems(conn)  # stems as the server makes them (core/analysis.py)
        lexemes_of = {q.query: query_lexemes(query_terms(q.query)) for q in queries}
        await conn.commit()
    indexed = {(r["repo"], r["path"]) for r in rows}
    kept = {s.repo for s in sources}
    queries = [q for q in queries if q.repo in kept]
    missing = [q for q in queries if (q.repo, q.path) not in indexed]
    reference = ReferenceBM25(rows)
    for q in queries:
        t0 = time.perf_counter()
        hits = reference.search(lexemes_of[q.query])
        res.latency[(language, REFERENCE)].append((time.perf_counter() - t0) * 1000)
        res.outcomes[(language, q.kind, REFERENCE)].append(ranks(q, hits))
    for label, mode, rank in MODES:
        if modes and label not in modes:
            continue
        for q in queries:
            t0 = time.perf_counter()
            resp = await rt.search.search(q.query, project_id=project, limit=K, mode=mode, rank=rank)
            res.latency[(language, label)].append((time.perf_counter() - t0) * 1000)
            found = [ChunkRow(h.repository, h.path, h.start_line, h.end_line) for h in resp.hits]
            outcome = ranks(q, found)
            res.outcomes[(language, q.kind, label)].append(outcome)
            if misses is not None and outcome.chunk_rank != 1:
                misses.append(
                    f"[{label}] {language} {q.kind} {q.split} rank={outcome.chunk_rank} q={q.query!r} "
                    f"want {q.repo}/{q.path}:{q.line}\n"
                    + "".join(
                        f"    {i}. {h.repository}/{h.path}:{h.start_line}-{h.end_line} {h.kind} {h.symbol} "
                        f"{h.score:.3f}\n"
                        for i, h in enumerate(resp.hits[:5], 1)
                    )
                )
    return {
        "language": language,
        "repositories": [s.repo for s in sources],
        "files": files,
        "chunks": len(rows),  # counted in the database: a reused --home creates none
        "chunks_embedded": embedded,
        "index_seconds": round(index_s, 1),
        "queries": len(queries),
        "queries_target_not_indexed": len(missing),
        "skipped": skipped,
    }


def select(queries: list[Query], args: argparse.Namespace) -> dict[str, list[Query]]:
    out: dict[str, list[Query]] = {}
    for language in args.languages:
        repos = {s.repo for s in [s for s in SOURCES if s.language == language][: args.repos or None]}
        chosen: list[Query] = []
        for kind in KINDS:
            if args.kinds and kind not in args.kinds:
                continue
            pool = [q for q in queries if q.language == language and q.kind == kind and q.repo in repos]
            if args.split != "all":
                pool = [q for q in pool if q.split == args.split]
            chosen += pool[: args.max_queries or None]  # the file's order is the seeded sample order
        out[language] = chosen
    return out


def report(res: Results, languages: list[str], info: list[dict]) -> tuple[str, dict]:
    labels = [REFERENCE, *(m[0] for m in MODES)]
    out: list[str] = []
    data: dict[str, Any] = {"cells": []}
    for level in ("chunk", "file"):
        for metric_no, metric in enumerate(("MRR@10", "Recall@10", "nDCG@10")):
            rows: list[list[str]] = []
            for language in [*languages, "all"]:
                for kind in [*KINDS, "all"]:
                    cells: list[str] = []
                    n = 0
                    for label in labels:
                        found = [
                            (o.chunk_rank if level == "chunk" else o.file_rank)
                            for (lang, k, lab), outs in res.outcomes.items()
                            if lab == label and (language == "all" or lang == language) and (kind == "all" or k == kind)
                            for o in outs
                        ]
                        n = len(found)
                        cells.append(f"{metrics(found)[metric_no]:.3f}" if found else "–")
                    if n:
                        rows.append([language, kind, str(n), *cells])
            out.append(grid(["language", "kind", "n", *labels], rows, f"{metric} ({level} level)"))
    for (lang, kind, label), outs in sorted(res.outcomes.items()):
        for level in ("chunk", "file"):
            found = [o.chunk_rank if level == "chunk" else o.file_rank for o in outs]
            mrr, recall, ndcg = metrics(found)
            data["cells"].append(
                {"language": lang, "kind": kind, "mode": label, "level": level, "n": len(found),
                 "mrr10": round(mrr, 4), "recall10": round(recall, 4), "ndcg10": round(ndcg, 4)}
            )  # fmt: skip
    lat_rows = []
    data["latency_ms"] = {}
    for language in languages:
        cells = []
        for label in labels:
            values = res.latency.get((language, label), [])
            p50, p95 = percentile(values, 50), percentile(values, 95)
            cells.append(f"{p50:.1f} / {p95:.1f}")
            data["latency_ms"][f"{language}/{label}"] = {"p50": round(p50, 2), "p95": round(p95, 2)}
        lat_rows.append([language, *cells])
    out.append(grid(["language", *labels], lat_rows, "Search latency p50 / p95 (ms, in-process, warm)"))
    corpus_rows = [
        [
            i["language"],
            ", ".join(i["repositories"]),
            f"{i['files']:,}",
            f"{i['chunks']:,}",
            f"{i['index_seconds']:.0f} s",
            str(i["queries"]),
            str(i["queries_target_not_indexed"]),
            str(len(i["skipped"])),
        ]
        for i in info
    ]
    corpus_header = ["language", "repositories", "files indexed", "chunks", "index time", "queries"]
    corpus_header += ["target skipped", "files skipped"]
    out.insert(0, grid(corpus_header, corpus_rows, "Corpus"))
    skipped = [(f"{i['language']}/{s['repo']}/{s['path']}", s["reason"]) for i in info for s in i["skipped"]]
    if skipped:
        out.append(table(skipped, "Files the scanner skipped"))
    data["corpus"] = info
    return "\n\n".join(out), data


async def main(args: argparse.Namespace) -> None:
    if not QUERIES.exists():
        sys.exit(f"{QUERIES} is missing: run python bench/eval_corpus.py first")
    by_language = select(load_queries(), args)
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="cbm-eval-multi-"))
    if args.adapter:
        import adapter_model

        adapter_model.configure(args.adapter, args.adapter_side)
    settings = Settings(home=home, embedding_provider="local-adapter" if args.adapter else args.model)
    res = Results()
    info: list[dict] = []
    modes = [m for m in (args.modes or "").split(",") if m]
    misses: list[str] | None = [] if args.misses else None
    async with open_runtime(settings) as rt:
        if args.weights:
            ident, natural = (float(x) for x in args.weights.split(","))
            rt.search.weights = FusionWeights(identifier=ident, natural=natural)
        for language in args.languages:
            t0 = time.perf_counter()
            info.append(await run_language(rt, language, by_language[language], args.repos, res, modes, misses))
            print(
                f"{language}: {info[-1]['chunks']} chunks, {info[-1]['queries']} queries, "
                f"{time.perf_counter() - t0:.0f} s",
                file=sys.stderr,
            )
    text, data = report(res, args.languages, info)
    adapter = f", adapter {args.adapter} on the {args.adapter_side} side" if args.adapter else ""
    header = (
        f"model {args.model} ({rt.model.name}{adapter}), split {args.split}, "
        f"max {args.max_queries or 'all'} queries per language and kind"
    )
    print(f"# Multi-language evaluation: {header}\n\n{text}")
    if args.misses and misses is not None:
        Path(args.misses).write_text("".join(misses), encoding="utf-8")
    if args.json:
        data["settings"] = {"model": args.model, "split": args.split, "max_queries": args.max_queries,
                            "adapter": args.adapter, "adapter_side": args.adapter_side}  # fmt: skip
        Path(args.json).write_text(json.dumps(data, indent=1), encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["fake", "local"], default="fake")
    parser.add_argument("--split", choices=["all", "tune", "report"], default="all")
    parser.add_argument("--languages", default=",".join(LANGUAGES), type=lambda s: [x for x in s.split(",") if x])
    parser.add_argument("--max-queries", type=int, default=0, help="per language and kind (0: all)")
    parser.add_argument("--repos", type=int, default=0, help="index only the first N repositories per language")
    parser.add_argument("--home", help="database home to use (default: a new temporary folder)")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    parser.add_argument("--weights", help="keyword weight of fusion for identifier,natural queries (e.g. 0.7,0.5)")
    parser.add_argument("--modes", help="only these modes, comma-separated labels (e.g. keyword,hybrid+rank)")
    parser.add_argument("--kinds", type=lambda s: [x for x in s.split(",") if x], help="only these query kinds")
    parser.add_argument("--adapter", help="with --model local: a trained adapter matrix (.npy, train/run.py)")
    parser.add_argument("--adapter-side", choices=["query", "both"], default="query", help="what --adapter maps")
    parser.add_argument("--misses", help="write each query not answered first (with its top 5) to this file")
    parsed = parser.parse_args()
    unknown = set(parsed.languages) - set(LANGUAGES)
    if unknown:
        sys.exit(f"unknown languages {sorted(unknown)}; known: {LANGUAGES}")
    asyncio.run(main(parsed))
