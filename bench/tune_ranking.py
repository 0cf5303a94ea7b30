"""Tune fusion weights and the ranking stage on the ``tune`` half of the multi-language evaluation.

    python bench/tune_ranking.py --home /tmp/rank-home/fake --split tune --cache /tmp/rank.pkl \\
        [--vary definition=0,3 tiny=1,0.8 ...] [--weights 0.7,0.5]

Needs a ``--home`` already indexed by ``bench/evaluate_multi.py`` (same model). For every query it runs,
once, both retrieval arms and the definitions fetch of the engine (``SearchEngine._keyword``,
``_dense``, ``_definitions``, each arm over-fetched as in search) and caches them; then it replays
fusion (``search/fusion.py``) and the ranking stage (``search/ranking.py``) in process for each setting,
so a factor is measured in seconds. Prints chunk-level MRR@10 per language and kind: the defaults, then
each ``--vary`` value changed alone (all else at the defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import pickle
import sys
from pathlib import Path
from typing import Any

from codebase_mcp.domain import RetrievedChunk
from codebase_mcp.runtime import open_runtime
from codebase_mcp.search.fusion import FusionWeights, fuse
from codebase_mcp.search.query import analyse
from codebase_mcp.search.ranking import DEFAULT, RankParams, rerank, with_definitions
from codebase_mcp.settings import Settings
from eval_corpus import KINDS, LANGUAGES, QUERIES, Query, load_queries

K = 10


async def collect(args: argparse.Namespace) -> dict[str, Any]:
    queries = [q for q in load_queries() if q.language in args.languages]
    if args.split != "all":
        queries = [q for q in queries if q.split == args.split]
    out: list[dict[str, Any]] = []
    chunk_ids: set[int] = set()
    settings = Settings(home=Path(args.home), embedding_provider=args.model)
    async with open_runtime(settings) as rt:
        engine = rt.search
        engine.rank_params = dataclasses.replace(DEFAULT, bare_word=True, inside=0.5, definition=1.0)
        for language in args.languages:
            for q in (q for q in queries if q.language == language):
                _, found = await engine.retrieved(q.query, project_id=f"eval-{language}", limit=K)
                kw, dense, defs = list(found.keyword), list(found.dense), list(found.definitions)
                chunk_ids |= {c.chunk_id for c in (*kw, *dense, *defs)}
                out.append({"q": q, "kw": kw, "dense": dense, "defs": defs})
            print(f"{language}: collected", file=sys.stderr)
        async with rt.db.connection() as conn:
            cur = await conn.execute(
                "SELECT c.id, r.name AS repo, c.start_line, c.end_line FROM chunks c "
                "JOIN repositories r ON r.id = c.repository_id WHERE c.id = ANY(%s)",
                (sorted(chunk_ids),),
            )
            where = {r["id"]: (r["repo"], r["start_line"], r["end_line"]) for r in await cur.fetchall()}
    return {"runs": out, "where": where}


def rank_of(q: Query, ids: list[int], paths: dict[int, str], where: dict[int, tuple[str, int, int]]) -> int | None:
    for i, cid in enumerate(ids[:K], 1):
        repo, start, end = where[cid]
        if repo == q.repo and paths[cid] == q.path and (q.line is None or start <= q.line <= end):
            return i
    return None


def evaluate(
    data: dict[str, Any], params: RankParams | None, weights: FusionWeights, fetched: bool = True
) -> dict[tuple[str, str], float]:
    """MRR@10 (chunk level) per (language, kind); ``params`` None: hybrid without ranking."""
    sums: dict[tuple[str, str], list[float]] = {}
    where = data["where"]
    for run in data["runs"]:
        q: Query = run["q"]
        kw: list[RetrievedChunk] = run["kw"]
        dense: list[RetrievedChunk] = run["dense"]
        p = params or DEFAULT
        analysed = analyse(q.query, bare_word=p.bare_word, inside=p.inside)
        cands = fuse(kw, dense, analysed.kind, weights)
        if params is not None:
            defs = run["defs"] if fetched and params.definition else []
            cands = rerank(with_definitions(cands, defs), analysed, params)
        paths = {c.chunk_id: c.path for c in cands}
        r = rank_of(q, [c.chunk_id for c in cands], paths, where)
        for key in ((q.language, q.kind), (q.language, "all"), ("all", q.kind), ("all", "all")):
            sums.setdefault(key, []).append(1 / r if r else 0.0)
    return {k: sum(v) / len(v) for k, v in sums.items()}


def show(label: str, m: dict[tuple[str, str], float], base: dict[tuple[str, str], float] | None) -> str:
    langs = [*sorted({k[0] for k in m} - {"all"}), "all"]
    cells = []
    for lang in langs:
        for kind in [*KINDS, "all"]:
            if (lang, kind) in m and (kind == "all" or lang == "all" or kind == "identifier"):
                v = m[(lang, kind)]
                d = f"{v - base[(lang, kind)]:+.3f}" if base else ""
                cells.append(f"{lang[:4]}/{kind[:5]} {v:.3f}{d}")
    return f"{label:<28} " + " | ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", required=True)
    parser.add_argument("--model", choices=["fake", "local"], default="fake")
    parser.add_argument("--split", choices=["all", "tune", "report"], default="tune")
    parser.add_argument("--languages", default=",".join(LANGUAGES), type=lambda s: [x for x in s.split(",") if x])
    parser.add_argument("--cache", required=True, help="pickle of the collected candidates (made if missing)")
    parser.add_argument("--weights", default="0.7,0.5", help="keyword weight for identifier,natural queries")
    parser.add_argument("--vary", nargs="*", default=[], help="FIELD=v1,v2 (each value alone vs the defaults)")
    parser.add_argument("--grid-weights", action="store_true", help="grid the fusion weights, ranking on")
    args = parser.parse_args()
    if not QUERIES.exists():
        sys.exit(f"{QUERIES} is missing: run python bench/eval_corpus.py first")
    cache = Path(args.cache)
    if cache.exists():
        data = pickle.loads(cache.read_bytes())
    else:
        data = asyncio.run(collect(args))
        cache.write_bytes(pickle.dumps(data))
    ident, natural = (float(x) for x in args.weights.split(","))
    weights = FusionWeights(identifier=ident, natural=natural)
    print(show("hybrid (no ranking)", evaluate(data, None, weights), None))
    base = evaluate(data, DEFAULT, weights)
    print(show("hybrid+rank (defaults)", base, None))
    print(show("  without fetched defs", evaluate(data, DEFAULT, weights, fetched=False), base))
    for spec in args.vary:
        name, values = spec.split("=")
        field_type = type(getattr(DEFAULT, name))
        for raw in values.split(","):
            value = (raw == "true") if field_type is bool else field_type(raw)
            m = evaluate(data, dataclasses.replace(DEFAULT, **{name: value}), weights)
            print(show(f"  {name}={raw}", m, base))
    if args.grid_weights:
        for w in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
            m = evaluate(data, DEFAULT, FusionWeights(identifier=w, natural=w))
            print(show(f"  keyword weight {w}", m, base))


if __name__ == "__main__":
    main()
