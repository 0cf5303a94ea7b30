"""Code-aware tokens for keyword search: identifiers kept whole and split on camelCase/snake_case.

``getUserById`` yields ``getuserbyid get user by id``; ``MAX_RETRY_COUNT`` yields
``max_retry_count max retry count``. The same function turns queries into terms, so an identifier
query matches exactly and a natural-language query matches the parts.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+", re.ASCII)
_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+", re.ASCII)
MAX_TOKEN_LEN = 64

# Words that carry no meaning in a code-search query.
QUERY_STOPWORDS: frozenset[str] = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "from",
        "by",
        "with",
        "and",
        "or",
        "not",
        "is",
        "are",
        "was",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "how",
        "what",
        "where",
        "which",
        "who",
        "when",
        "why",
        "do",
        "does",
        "did",
        "can",
        "could",
        "should",
        "would",
        "will",
        "i",
        "we",
        "you",
        "me",
        "my",
        "our",
        "find",
        "show",
        "get",
        "code",
        "file",
        "files",
        "function",
        "functions",
        "method",
        "implementation",
        "implemented",
        "where's",
        "there",
        "use",
        "used",
        "using",
        "into",
        "via",
    ]
)


def split_identifier(word: str) -> list[str]:
    parts: list[str] = []
    for piece in word.split("_"):
        parts.extend(_PART.findall(piece))
    return [p.lower() for p in parts if p]


def code_tokens(text: str) -> list[str]:
    """Tokens of ``text`` in order: each identifier whole, then its parts when it has several."""
    out: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group(0)
        if len(word) > MAX_TOKEN_LEN:
            continue
        whole = word.strip("_").lower()
        if not whole:
            continue
        out.append(whole)
        parts = split_identifier(word)
        if len(parts) > 1:
            out.extend(parts)
    return out


def search_text(content: str, rel_path: str, symbol: str | None) -> str:
    """The text fed to full-text search for one chunk: its path, symbol and code, tokenised."""
    header = f"{rel_path} {symbol or ''}"
    return " ".join(code_tokens(header) + code_tokens(content))


def query_terms(query: str) -> list[str]:
    """Distinct search terms of a query, in order, without stopwords (all of them when the query is
    nothing but stopwords)."""
    seen: dict[str, None] = {}
    for token in code_tokens(query):
        seen.setdefault(token, None)
    terms = [t for t in seen if t not in QUERY_STOPWORDS]
    return terms or list(seen)
