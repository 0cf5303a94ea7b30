"""Agent-question evaluation (issue 21): how/where/why questions over pinned real repositories.

    python bench/agent_eval.py fetch [REPO ...]
    python bench/agent_eval.py run [--half tune|report|all] [--model local|fake] [--repos a,b]
                                   [--modes bm25,keyword+rank,hybrid+rank] [--home DIR] [--misses FILE]

The questions and where each repository comes from are in bench/agent_eval/<repo>/ (format:
bench/agent_eval/README.md). ``fetch`` unpacks each pinned archive (sha256 checked) under
bench/.corpus/agent-eval/<repo>/. ``run`` indexes every repository into one data directory (a project per
run, a repository each) and asks each question of its own repository, top 10, in three modes:

- ``bm25``: the keyword arm alone, no ranking stage (BM25 over code-aware tokens, stemmed);
- ``keyword+rank``: the keyword arm with the ranking stage (what runs without a model);
- ``hybrid+rank``: keyword and dense arms fused, then the ranking stage (the product's default).

Scores: file-level NDCG@10 (a hit's gain is its file's grade, counted at the file's first position) and
Recall@10 (share of the relevant files in the top 10), the definition's hit rate in the top 10 (chunk
level, where a question names one), distinct files per top 10, and short chunks (≤ 5 lines) in the top 10
that are not the definition asked for. By half, kind and language. ``--misses`` writes, per mode, the
questions whose NDCG@10 is below 0.5, grouped by the likeliest cause, with what was returned.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import pickle
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codebase_mcp.core.languages import is_test_path
from codebase_mcp.domain import RetrievedChunk, SearchFilters, SearchHit, SearchMode
from codebase_mcp.runtime import open_runtime
from codebase_mcp.search.fusion import FusionWeights, fuse
from codebase_mcp.search.query import analyse
from codebase_mcp.search.ranking import DEFAULT, RankParams, rerank, with_definitions
from codebase_mcp.settings import Settings
from common import grid
from eval_corpus import Source, fetch, unpack

DATA = Path(__file__).parent / "agent_eval"
TREES = Path(__file__).parent / ".corpus" / "agent-eval"
K = 10
SHORT_LINES = 5
MODES: dict[str, tuple[SearchMode, bool]] = {
    "bm25": ("keyword", False),
    "keyword+rank": ("keyword", True),
    "hybrid+rank": ("hybrid", True),
}
KINDS = ("architecture", "semantic", "symbol")


@dataclass(frozen=True)
class Repo:
    source: Source
    licence: str
    half: str

    @property
    def name(self) -> str:
        return self.source.repo

    @property
    def tree(self) -> Path:
        return TREES / self.source.repo


@dataclass(frozen=True)
class Question:
    id: str
    repo: Repo
    kind: str
    question: str
    grades: dict[str, int]  # path -> grade (2 answers, 1 helps)
    definition: dict[str, Any] | None


@dataclass
class Outcome:
    ndcg: float
    recall: float
    definition_hit: bool | None  # None: the question names no definition
    distinct_files: int
    short_chunks: int
    hits: list[SearchHit]


def load() -> tuple[list[Repo], list[Question]]:
    repos: list[Repo] = []
    questions: list[Question] = []
    for folder in sorted(p for p in DATA.iterdir() if (p / "source.json").exists()):
        meta = json.loads((folder / "source.json").read_text(encoding="utf-8"))
        src = Source(
            meta["language"],
            meta["repo"],
            meta["registry"],
            meta["name"],
            meta["version"],
            meta["sha256"],
            meta["subdir"],
        )
        repo = Repo(src, meta.get("licence", "?"), meta["half"])
        repos.append(repo)
        lines = (folder / "questions.jsonl").read_text(encoding="utf-8").splitlines()
        for line in filter(None, lines):
            q = json.loads(line)
            grades = {r["path"]: int(r["grade"]) for r in q["relevant"]}
            questions.append(Question(q["id"], repo, q["kind"], q["question"], grades, q.get("definition")))
    return repos, questions


def fetch_trees(repos: list[Repo]) -> None:
    for repo in repos:
        done = TREES / f"{repo.name}.complete"
        if done.exists():
            continue
        archive = fetch(repo.source)
        if repo.tree.exists():
            shutil.rmtree(repo.tree)
        unpack(repo.source, archive, repo.tree)
        done.write_text("")
        print(f"{repo.name}: {sum(1 for p in repo.tree.rglob('*') if p.is_file())} files", file=sys.stderr)


def score(q: Question, hits: list[SearchHit]) -> Outcome:
    seen: set[str] = set()
    dcg = 0.0
    for rank, hit in enumerate(hits[:K], 1):
        if hit.path in q.grades and hit.path not in seen:
            dcg += (2 ** q.grades[hit.path] - 1) / math.log2(rank + 1)
        seen.add(hit.path)
    ideal = sorted(q.grades.values(), reverse=True)[:K]
    idcg = sum((2**g - 1) / math.log2(rank + 1) for rank, g in enumerate(ideal, 1))
    found = {h.path for h in hits[:K]}
    recall = len(found & set(q.grades)) / len(q.grades) if q.grades else 0.0
    d = q.definition
    definition_hit = None
    if d is not None:
        definition_hit = any(h.path == d["path"] and h.start_line <= d["line"] <= h.end_line for h in hits[:K])
    short = sum(
        1
        for h in hits[:K]
        if h.end_line - h.start_line + 1 <= SHORT_LINES
        and not (d is not None and h.path == d["path"] and h.start_line <= d["line"] <= h.end_line)
    )
    return Outcome(dcg / idcg if idcg else 0.0, recall, definition_hit, len(found), short, hits[:K])


def cause(q: Question, o: Outcome) -> str:
    """The likeliest reason a question scored low, from what came back."""
    ranks = {h.path: i for i, h in reversed(list(enumerate(o.hits, 1)))}
    best = [p for p, g in q.grades.items() if g == 2]
    if not any(p in ranks for p in q.grades):
        if all(is_test_path(h.path) for h in o.hits[:3]) and o.hits:
            return "tests ranked above the code"
        return "no relevant file in the top 10"
    per_file: dict[str, int] = defaultdict(int)
    for h in o.hits:
        per_file[h.path] += 1
    if max(per_file.values(), default=0) >= 4 and not any(per_file.get(p, 0) >= 4 for p in q.grades):
        return "one unrelated file fills the top 10"
    if o.short_chunks >= 3:
        return "short chunks crowd the top 10"
    if best and not any(p in ranks for p in best):
        return "only helping files found, not the answer"
    return "answer found, ranked low"


def summarise(rows: list[tuple[Question, Outcome]]) -> list[str]:
    if not rows:
        return ["0", "-", "-", "-", "-", "-"]
    defs = [o.definition_hit for _, o in rows if o.definition_hit is not None]
    return [
        str(len(rows)),
        f"{statistics.fmean(o.ndcg for _, o in rows):.3f}",
        f"{statistics.fmean(o.recall for _, o in rows):.3f}",
        f"{sum(defs) / len(defs):.3f}" if defs else "-",
        f"{statistics.fmean(o.distinct_files for _, o in rows):.1f}",
        f"{statistics.fmean(o.short_chunks for _, o in rows):.2f}",
    ]


async def run(args: argparse.Namespace) -> None:
    repos, questions = load()
    if args.repos:
        wanted = set(args.repos.split(","))
        repos = [r for r in repos if r.name in wanted]
    if args.half != "all":
        repos = [r for r in repos if r.half == args.half]
    names = {r.name for r in repos}
    questions = [q for q in questions if q.repo.name in names]
    fetch_trees(repos)
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="cbm-agent-eval-"))
    settings = Settings(home=home, embedding_provider=args.model)
    modes = args.modes.split(",")
    results: dict[str, list[tuple[Question, Outcome]]] = defaultdict(list)
    async with open_runtime(settings) as rt:
        started = time.perf_counter()
        for repo in repos:
            await rt.indexer.index(repo.tree, project_id="agent-eval")
        index_s = time.perf_counter() - started
        for q in questions:
            filters = SearchFilters(repository=str(q.repo.tree.resolve()))
            for label in modes:
                mode, rank = MODES[label]
                resp = await rt.search.search(
                    q.question, project_id="agent-eval", filters=filters, limit=K, mode=mode, rank=rank
                )
                results[label].append((q, score(q, resp.hits)))
    header = ["mode", "group", "questions", "NDCG@10", "Recall@10", "def hit@10", "files/top10", "short/top10"]
    rows: list[list[str]] = []
    for label in modes:
        rs = results[label]
        groups: list[tuple[str, list[tuple[Question, Outcome]]]] = [("all", rs)]
        groups += [(f"half {h}", [r for r in rs if r[0].repo.half == h]) for h in ("tune", "report")]
        groups += [(f"kind {k}", [r for r in rs if r[0].kind == k]) for k in KINDS]
        languages = sorted({q.repo.source.language for q, _ in rs})
        groups += [(f"lang {lang}", [r for r in rs if r[0].repo.source.language == lang]) for lang in languages]
        for name, group in groups:
            if group:
                rows.append([label, name, *summarise(group)])
    title = (
        f"Agent questions: {len(questions)} over {len(repos)} repositories (half {args.half}, model {args.model}, "
        f"indexed in {index_s:.0f} s)"
    )
    print(grid(header, rows, title))
    if args.misses:
        lines: list[str] = []
        for label in modes:
            by_cause: dict[str, list[str]] = defaultdict(list)
            for q, o in results[label]:
                if o.ndcg >= 0.5:
                    continue
                want = ", ".join(f"{p} ({g})" for p, g in sorted(q.grades.items(), key=lambda pg: -pg[1]))
                got = "".join(
                    f"      {i}. {h.path}:{h.start_line}-{h.end_line} {h.symbol or ''} ({h.kind}) {h.score:.3f}\n"
                    for i, h in enumerate(o.hits[:5], 1)
                )
                by_cause[cause(q, o)].append(
                    f"  [{q.id}] {q.kind} ndcg={o.ndcg:.2f} {q.question!r}\n    want {want}\n{got}"
                )
            lines.append(f"# {label}: {sum(len(v) for v in by_cause.values())} questions below NDCG@10 0.5\n")
            for name, items in sorted(by_cause.items(), key=lambda kv: -len(kv[1])):
                lines.append(f"\n## {name} ({len(items)})\n\n" + "".join(items))
        Path(args.misses).write_text("".join(lines), encoding="utf-8")


# --- tuning: both arms and the definitions fetched once per question, fusion and ranking replayed ---------


@dataclass(frozen=True)
class Located:
    """What ``score`` reads of a hit."""

    path: str
    start_line: int
    end_line: int
    symbol: str | None = None
    kind: str = ""
    score: float = 0.0


async def collect(args: argparse.Namespace, repos: list[Repo], questions: list[Question]) -> dict[str, Any]:
    settings = Settings(home=Path(args.home), embedding_provider=args.model)
    runs: list[dict[str, Any]] = []
    ids: set[int] = set()
    async with open_runtime(settings) as rt:
        for repo in repos:  # indexing an indexed repository reads nothing again
            await rt.indexer.index(repo.tree, project_id="agent-eval")
        engine = rt.search
        engine.rank_params = dataclasses.replace(DEFAULT, definition=1.0)  # fetch definitions whatever is tried
        if args.model == "none":
            engine.model = None
        for q in questions:
            filters = SearchFilters(repository=str(q.repo.tree.resolve()))
            _, found = await engine.retrieved(q.question, project_id="agent-eval", filters=filters, limit=K)
            kw, dense, defs = list(found.keyword), list(found.dense), list(found.definitions)
            ids |= {c.chunk_id for c in (*kw, *dense, *defs)}
            runs.append({"id": q.id, "kw": kw, "dense": dense, "defs": defs})
        async with rt.db.connection() as conn:
            cur = await conn.execute("SELECT id, start_line, end_line FROM chunks WHERE id = ANY(%s)", (sorted(ids),))
            where = {r["id"]: (r["start_line"], r["end_line"]) for r in await cur.fetchall()}
    return {"runs": runs, "where": where}


def replay(
    data: dict[str, Any],
    questions: dict[str, Question],
    params: RankParams | None,
    weights: FusionWeights,
    hybrid: bool,
) -> list[tuple[Question, Outcome]]:
    out: list[tuple[Question, Outcome]] = []
    for run in data["runs"]:
        q = questions.get(run["id"])
        if q is None:
            continue
        kw: list[RetrievedChunk] = run["kw"]
        dense: list[RetrievedChunk] = run["dense"] if hybrid else []
        p = params or DEFAULT
        analysed = analyse(q.question, bare_word=p.bare_word, inside=p.inside)
        cands = fuse(kw, dense, analysed.kind, weights)
        if params is not None:
            defs = run["defs"] if params.definition else []
            cands = rerank(with_definitions(cands, defs), analysed, params)
        hits = [Located(c.path, *data["where"][c.chunk_id], c.symbol, c.kind, c.score) for c in cands[:K]]
        out.append((q, score(q, hits)))  # type: ignore[arg-type]
    return out


def tune(args: argparse.Namespace) -> None:
    repos, questions = load()
    repos = [r for r in repos if args.half == "all" or r.half == args.half]
    chosen = [q for q in questions if q.repo in repos]
    fetch_trees(repos)
    cache = Path(args.cache)
    if cache.exists():
        data = pickle.loads(cache.read_bytes())
    else:
        data = asyncio.run(collect(args, repos, chosen))
        cache.write_bytes(pickle.dumps(data))
    by_id = {q.id: q for q in chosen}
    weights = FusionWeights(*(float(w) for w in args.weights.split(","))) if args.weights else FusionWeights()
    hybrid = args.model != "none"
    base_params = DEFAULT
    for item in args.base:
        name, value = item.split("=")
        kind = type(getattr(DEFAULT, name))
        base_params = dataclasses.replace(
            base_params, **{name: kind(float(value)) if kind is not bool else value == "1"}
        )
    header = ["setting", "NDCG@10", "Recall@10", "def hit@10", "files/top10", "short/top10"]
    rows = [["bm25 (no ranking, keyword arm)", *summarise(replay(data, by_id, None, weights, False))[1:]]]
    rows.append(["defaults", *summarise(replay(data, by_id, DEFAULT, weights, hybrid))[1:]])
    if args.base:
        rows.append([" ".join(args.base), *summarise(replay(data, by_id, base_params, weights, hybrid))[1:]])
    for item in args.vary:
        name, values = item.split("=")
        for value in values.split(","):
            kind = type(getattr(DEFAULT, name))
            params = dataclasses.replace(
                base_params, **{name: kind(float(value)) if kind is not bool else value == "1"}
            )
            rows.append([f"{name}={value}", *summarise(replay(data, by_id, params, weights, hybrid))[1:]])
    title = f"Ranking replayed on {len(by_id)} questions (half {args.half}, {'hybrid' if hybrid else 'keyword'})"
    print(grid(header, rows, title))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch")
    f.add_argument("repos", nargs="*")
    r = sub.add_parser("run")
    r.add_argument("--half", choices=["tune", "report", "all"], default="all")
    r.add_argument("--model", default="local")
    r.add_argument("--repos", default="")
    r.add_argument("--modes", default=",".join(MODES))
    r.add_argument("--home")
    r.add_argument("--misses")
    t = sub.add_parser("tune")
    t.add_argument("--half", choices=["tune", "report", "all"], default="tune")
    t.add_argument("--model", default="local", help="local, fake, or none (keyword arm only)")
    t.add_argument("--home", required=True, help="data directory (indexed on the first run)")
    t.add_argument("--cache", required=True, help="pickle of the collected candidates (made if missing)")
    t.add_argument("--weights", default="", help="fusion weights of the keyword arm: identifier,natural")
    t.add_argument("--vary", nargs="*", default=[], help="e.g. coherence=0,0.2 same_file=0.5,1")
    t.add_argument("--base", nargs="*", default=[], help="settings every --vary starts from, e.g. same_file=0.5")
    args = parser.parse_args()
    if args.command == "tune":
        tune(args)
        return
    if args.command == "fetch":
        repos, _ = load()
        fetch_trees([r for r in repos if not args.repos or r.name in args.repos])
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
