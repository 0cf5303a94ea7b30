"""Mine (query, chunk) pairs from the pinned packages with the product's own chunker and chunk text.

For each source file of a package's language: its doc comments are found and removed with line numbers
kept (``bench/eval_corpus.py``'s analysis, the same one our evaluation corpus is built with), the
stripped file is chunked by ``codebase_mcp.indexing.chunker.chunk_file`` at the product's budget, and
each chunk's embedded text is ``codebase_mcp.indexing.indexer.embedding_text`` (path and symbol header,
then the code), exactly what the indexer embeds. Pairs:

- ``doc``: a doc comment's first sentence -> the chunk holding the definition it documents;
- ``identifier``: a definition's name split into words -> that chunk;
- ``module``: a module doc comment's first sentence -> the file's first chunk.

Every chunk of a package's non-test source files is kept as the pool its hard negatives come from. A
pair is dropped when its target's normalised body (comments and whitespace removed) hashes equal to a
chunk of our evaluation corpora (bench/.corpus/eval-multi, bench/.corpus/agent-eval), or its query equals
an evaluation query.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from sources import BENCH, DATA, Source, load_manifest, unpack

from codebase_mcp.core.languages import is_test_path, language_for
from codebase_mcp.indexing.chunker import Chunk, chunk_file
from codebase_mcp.indexing.indexer import embedding_text
from codebase_mcp.indexing.scanner import classify_text
from codebase_mcp.settings import Settings

sys.path.insert(0, str(BENCH))
import eval_corpus

PAIRS = DATA / "pairs.jsonl"
POOL = DATA / "pool.jsonl"
EVAL_ROOTS = [BENCH / ".corpus" / "eval-multi", BENCH / ".corpus" / "agent-eval"]
#: Bundles, builds and copies that repeat a package's sources.
_SKIP_PATH = re.compile(
    r"(^|/)(node_modules|dist|umd|min|bundles?|vendor|third_party|locale|fp|benches|examples?|docs?)(/|$)"
    r"|\.min\.[jt]s$|(^|/)lodash\.js$|(^|/)core\.js$"
)
MAX_FILE_BYTES = 300_000
_LINE_COMMENT = {"python": r"#[^\n]*", "ruby": r"#[^\n]*", "rust": r"//[^\n]*"}


@dataclass(frozen=True)
class Pair:
    language: str
    repo: str
    kind: str  # doc, identifier, module
    query: str
    target: str  # the chunk's embedded text


def body_hash(content: str, language: str) -> str:
    """A chunk's code with comments and whitespace removed, hashed: equal code, equal hash."""
    text = re.sub(r"/\*.*?\*/", "", content, flags=re.S) if language not in ("python", "ruby") else content
    text = re.sub(_LINE_COMMENT.get(language, r"//[^\n]*"), "", text)
    if language == "python":
        text = re.sub(r'(?s)""".*?"""|\'\'\'.*?\'\'\'', "", text)
    return hashlib.blake2b("".join(text.split()).encode("utf-8", "replace"), digest_size=12).hexdigest()


def evaluation_hashes(budget: int) -> set[str]:
    """Normalised body hashes of every chunk of our evaluation corpora."""
    hashes: set[str] = set()
    for root in EVAL_ROOTS:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            language = language_for(rel)
            if language in ("text", "markdown") or path.stat().st_size > MAX_FILE_BYTES:
                continue
            text = path.read_bytes().decode("utf-8", "replace").replace("\r\n", "\n")
            hashes.update(body_hash(c.content, language) for c in chunk_file(text, language, budget))
    return hashes


def split_identifier(name: str) -> str | None:
    """``parseHTTPHeader`` / ``parse_http_header`` -> ``parse http header`` (None for one-word names)."""
    words = re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+", name)
    words = [w.lower() for w in words]
    return " ".join(words) if len(words) >= 2 else None


def package_root(path: Path) -> Path:
    """Down through folders with one child (Debian's usr/share/gocode/src/github.com/owner/repo)."""
    while True:
        children = [c for c in path.iterdir()]
        if len(children) != 1 or not children[0].is_dir():
            return path
        path = children[0]


def _chunk_at(chunks: list[Chunk], line: int) -> Chunk | None:
    return next((c for c in chunks if c.start_line <= line <= c.end_line), None)


def mine_package(src: Source, budget: int, stats: Counter[str]) -> tuple[list[Pair], list[tuple[str, str]]]:
    """Pairs and the pool (repo, embedded text) of one package."""
    root = package_root(unpack(src))
    extensions = eval_corpus.EXTENSIONS[src.language]
    pairs: list[Pair] = []
    pool: list[tuple[str, str]] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(extensions)):
        rel = path.relative_to(root).as_posix()
        if _SKIP_PATH.search(rel) or is_test_path(rel) or eval_corpus._TEST_PATH.search(rel):
            continue
        if path.stat().st_size > MAX_FILE_BYTES:
            continue
        source = path.read_bytes().decode("utf-8", "replace").replace("\r\n", "\n")
        if classify_text(rel, source, 1000) is not None:
            continue
        language = language_for(rel)
        analysis_language = "typescript" if language == "tsx" else language
        if src.language == "python":
            info = eval_corpus.analyse_python(source)
        else:
            info = eval_corpus.analyse_tree_sitter(source, analysis_language)
        if info is None:
            continue
        stats[f"{src.language} files"] += 1
        chunks = chunk_file(eval_corpus.strip(source, info), language, budget)
        texts = {id(c): embedding_text(rel, c.symbol, c.content) for c in chunks}
        pool += [(src.repo, t) for t in texts.values()]
        for d in info.definitions:
            chunk = _chunk_at(chunks, d.line)
            if chunk is None:
                continue
            sentence = eval_corpus.first_sentence(d.doc) if d.doc else None
            if sentence:
                pairs.append(Pair(src.language, src.repo, "doc", sentence, texts[id(chunk)]))
            words = split_identifier(d.name) if not d.name.startswith("__") else None
            if words:
                pairs.append(Pair(src.language, src.repo, "identifier", words, texts[id(chunk)]))
        sentence = eval_corpus.first_sentence(info.module_doc) if info.module_doc else None
        if sentence and chunks:
            pairs.append(Pair(src.language, src.repo, "module", sentence, texts[id(chunks[0])]))
    return pairs, pool


def target_body(target: str) -> str:
    return target.split("\n", 1)[1] if "\n" in target else ""


def main() -> None:
    budget = Settings().chunk_max_chars
    banned = evaluation_hashes(budget)
    eval_queries = {q.query.strip().lower() for q in eval_corpus.load_queries()}
    print(f"{len(banned):,} chunk hashes in the evaluation corpora", file=sys.stderr)
    stats: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    pool_seen: set[str] = set()
    DATA.mkdir(parents=True, exist_ok=True)
    with PAIRS.open("w", encoding="utf-8") as pf, POOL.open("w", encoding="utf-8") as lf:
        for src in load_manifest():
            pairs, pool = mine_package(src, budget, stats)
            for repo, text in pool:
                if text not in pool_seen:
                    pool_seen.add(text)
                    lf.write(json.dumps({"repo": repo, "language": src.language, "text": text}) + "\n")
            for p in pairs:
                key = (p.query.lower(), p.target)
                if key in seen:
                    stats[f"{p.language} {p.kind} duplicate"] += 1
                    continue
                seen.add(key)
                if body_hash(target_body(p.target), p.language) in banned:
                    stats[f"{p.language} {p.kind} dropped: body in evaluation"] += 1
                    continue
                if p.query.strip().lower() in eval_queries:
                    stats[f"{p.language} {p.kind} dropped: query in evaluation"] += 1
                    continue
                stats[f"{p.language} {p.kind}"] += 1
                pf.write(json.dumps(asdict(p)) + "\n")
    stats["pool chunks"] = len(pool_seen)
    for key in sorted(stats):
        print(f"{key}: {stats[key]}")


if __name__ == "__main__":
    main()
