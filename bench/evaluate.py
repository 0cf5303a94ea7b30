"""Retrieval quality on a code-search set built from real code.

    python bench/evaluate.py [--queries 300] [--models local-int8,local-fp32,local-int8-128]

A model key is ``local-int8`` or ``local-fp32``, optionally followed by the input budget in
word-pieces (``local-int8-128``; default 256). ``--packages click,httpx`` evaluates on a smaller
corpus: faster; its absolute figures compare models among themselves, not with the full corpus's.

The corpus is the installed sources of several PyPI packages with every docstring removed (replaced
by ``...`` so line numbers stay). Each query is the first sentence of a removed function or method
docstring; the answer is the chunk holding that function. Reported per retrieval mode: MRR@10,
Recall@10 and nDCG@10, and per model the embedding rate, so models compare by quality per second.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import math
import random
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from codebase_mcp.embeddings.base import create_model
from codebase_mcp.indexing.indexer import Indexer
from codebase_mcp.search.engine import SearchEngine
from codebase_mcp.settings import Settings
from codebase_mcp.storage.database import open_database
from common import build_corpus, table

EVAL_PACKAGES = ["click", "jinja2", "httpx", "rich", "starlette", "psycopg", "pydantic_settings", "typer"]
_SENTENCE = re.compile(r"^(.+?[.!?])(\s|$)", re.S)


@dataclass
class Query:
    text: str
    path: str
    line: int  # the def line of the target function


def strip_docstrings(root: Path) -> list[Query]:
    queries: list[Query] = []
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8", errors="replace")
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        lines = source.splitlines()
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
                continue
            body = node.body
            if not body or not isinstance(body[0], ast.Expr) or not isinstance(body[0].value, ast.Constant):
                continue
            if not isinstance(body[0].value.value, str):
                continue
            doc = body[0].value.value
            start, end = body[0].lineno, body[0].end_lineno or body[0].lineno
            indent = lines[start - 1][: len(lines[start - 1]) - len(lines[start - 1].lstrip())]
            lines[start - 1] = indent + "..."
            for i in range(start, end):
                lines[i] = ""
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("__"):
                first = " ".join(doc.strip().split("\n\n")[0].split())
                m = _SENTENCE.match(first)
                sentence = (m.group(1) if m else first).strip()
                if len(sentence.split()) >= 4 and not sentence.startswith((":", "..", ">>>")):
                    queries.append(Query(sentence, str(path.relative_to(root)), node.lineno))
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return queries


def metrics(ranks: list[int | None]) -> tuple[float, float, float]:
    n = len(ranks)
    mrr = sum(1 / r for r in ranks if r) / n
    recall = sum(1 for r in ranks if r) / n
    ndcg = sum(1 / math.log2(r + 1) for r in ranks if r) / n
    return mrr, recall, ndcg


def model_settings(model_key: str, home: Path) -> Settings:
    """``local-int8`` / ``local-fp32`` [``-<budget>``] as settings for the local model."""
    parts = model_key.split("-")
    if parts[0] != "local" or len(parts) not in (2, 3) or parts[1] not in ("int8", "fp32"):
        raise SystemExit(f"unknown model key {model_key!r}: use local-int8 or local-fp32, optionally -<budget>")
    budget = int(parts[2]) if len(parts) == 3 else 256
    return Settings(
        home=home, embedding_provider="local", embedding_int8=parts[1] == "int8", embedding_max_tokens=budget
    )


async def evaluate(model_key: str, corpus: Path, queries: list[Query]) -> list[tuple[str, str]]:
    home = Path(tempfile.mkdtemp(prefix="cbm-eval-"))
    settings = model_settings(model_key, home)
    model = create_model(settings)
    db = await open_database(settings)
    state = await Indexer(db, model, settings).index(corpus)
    rate = state.chunks_embedded / state.seconds["embed"]
    engine = SearchEngine(db, model, settings.search_candidates)
    rows: list[tuple[str, str]] = [
        (f"{model.name}: embedding rate", f"{rate:.1f} chunks/s ({state.chunks_created} chunks)")
    ]
    configs = [
        ("keyword", "keyword", False),
        ("dense", "dense", False),
        ("hybrid (RRF only)", "hybrid", False),
        ("hybrid + ranking stage", "hybrid", True),
    ]
    for label, mode, rank in configs:
        ranks: list[int | None] = []
        started = time.perf_counter()
        for q in queries:
            result = await engine.search(q.text, limit=10, mode=mode, rank=rank)  # type: ignore[arg-type]
            found = None
            for i, hit in enumerate(result.hits, 1):
                if hit.path == q.path and hit.start_line <= q.line <= hit.end_line:
                    found = i
                    break
            ranks.append(found)
        ms = (time.perf_counter() - started) * 1000 / len(queries)
        mrr, recall, ndcg = metrics(ranks)
        rows.append(
            (
                f"{model.name}: {label}",
                f"MRR@10 {mrr:.3f} · Recall@10 {recall:.3f} · nDCG@10 {ndcg:.3f} · {ms:.0f} ms/query",
            )
        )
    await db.close()
    return rows


async def main(args: argparse.Namespace) -> None:
    packages = args.packages.split(",") if args.packages else EVAL_PACKAGES
    corpus = build_corpus("eval" if packages == EVAL_PACKAGES else "eval-" + "-".join(packages), packages)
    marker = corpus / ".docstrings-stripped"
    queries_all = strip_docstrings(corpus) if not marker.exists() else None
    if queries_all is not None:
        marker.write_text("\n".join(f"{q.path}\t{q.line}\t{q.text}" for q in queries_all))
    else:
        queries_all = [
            Query(t, p, int(line)) for p, line, t in (row.split("\t", 2) for row in marker.read_text().splitlines())
        ]
    random.Random(11).shuffle(queries_all)
    queries = queries_all[: args.queries]
    rows: list[tuple[str, str]] = [
        ("corpus", f"{', '.join(packages)}, docstrings removed"),
        ("queries", f"{len(queries)} docstring first sentences (of {len(queries_all)})"),
    ]
    for key in args.models.split(","):
        model_rows = await evaluate(key, corpus, queries)
        print("\n".join(f"{k}: {v}" for k, v in model_rows), flush=True)  # progress: one model at a time
        rows += model_rows
    print(table(rows, "Retrieval quality"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--models", default="local-int8,local-fp32")
    parser.add_argument("--packages", default="", help="comma-separated subset of the corpus packages (faster)")
    asyncio.run(main(parser.parse_args()))
