"""The ranking stage, over the fused candidates (search/fusion.py): what knows code —
matches in symbol names and paths, definitions over mentions, implementation over tests and docs
unless the query asks for them, and several chunks of one file not crowding out other files."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from codebase_mcp.core.tokens import code_tokens, split_identifier
from codebase_mcp.domain import RetrievedChunk

_TEST_PATH = re.compile(
    r"(^|/)(tests?|__tests__|spec|specs|testing)(/|$)|(^|/)test_[^/]*$|_test\.[a-z]+$|"
    r"\.(test|spec)\.[a-z]+$|Tests?\.[a-z]+$"
)
_DOC_LANGUAGES = frozenset({"markdown", "rst", "text"})
_DOC_PATH = re.compile(r"(^|/)(docs?|documentation|examples?)(/|$)")
_DEFINITIONS = frozenset({"function", "method", "class", "type"})
_TEST_WORDS = frozenset({"test", "tests", "testing", "spec", "specs", "fixture", "fixtures", "mock"})
_DOC_WORDS = frozenset({"doc", "docs", "documentation", "readme", "guide", "tutorial", "example", "examples"})


@dataclass
class Candidate:
    chunk_id: int
    file_id: int
    path: str
    symbol: str | None
    kind: str
    language: str
    keyword_rank: int | None = None
    dense_rank: int | None = None
    score: float = 0.0
    signals: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, found: RetrievedChunk) -> Candidate:
        return cls(found.chunk_id, found.file_id, found.path, found.symbol, found.kind, found.language)


def rerank(candidates: list[Candidate], query: str) -> list[Candidate]:
    terms = set(code_tokens(query))
    wants_tests = bool(terms & _TEST_WORDS)
    wants_docs = bool(terms & _DOC_WORDS)
    whole_query = "".join(query.split()).lower()
    for c in candidates:
        factor = 1.0
        if c.symbol and terms:
            last = re.split(r"[.:>#\s]+", c.symbol)[-1].lower()
            symbol_tokens = set(code_tokens(c.symbol))
            if last and (last == whole_query or last == "_".join(split_identifier(whole_query))):
                factor *= 2.0
                c.signals["symbol_exact"] = 1.0
            overlap = len(terms & symbol_tokens) / len(terms)
            factor *= 1.0 + 0.6 * overlap
            c.signals["symbol_overlap"] = overlap
        if terms:
            path_overlap = len(terms & set(code_tokens(c.path))) / len(terms)
            factor *= 1.0 + 0.25 * path_overlap
            c.signals["path_overlap"] = path_overlap
        if c.kind in _DEFINITIONS:
            factor *= 1.15
        if not wants_tests and _TEST_PATH.search(c.path):
            factor *= 0.3  # fused scores are spread wider than RRF scores were: 0.6 no longer demoted
            c.signals["test"] = 1.0
        if not wants_docs and (c.language in _DOC_LANGUAGES or _DOC_PATH.search(c.path)):
            factor *= 0.75
            c.signals["doc"] = 1.0
        c.score *= factor
    candidates.sort(key=lambda c: (-c.score, c.chunk_id))
    # diversity: each further chunk of the same file counts for less
    seen: dict[int, int] = {}
    for c in candidates:
        n = seen.get(c.file_id, 0)
        if n:
            c.score *= 0.7**n
        seen[c.file_id] = n + 1
    candidates.sort(key=lambda c: (-c.score, c.chunk_id))
    return candidates
