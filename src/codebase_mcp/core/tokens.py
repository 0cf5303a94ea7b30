"""Code-aware tokens for keyword search: identifiers kept whole and split on camelCase/snake_case.

``getUserById`` yields ``getuserbyid get user by id``; ``MAX_RETRY_COUNT`` yields
``max_retry_count max retry count``. The same function turns queries into terms, so an identifier
query matches exactly and a natural-language query matches the parts.
"""

from __future__ import annotations

import functools
import itertools
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
    # map and chain run the per-word loop in C: a Python loop here was most of code_tokens' own time
    return list(itertools.chain.from_iterable(map(_word_tokens, _WORD.findall(text))))


@functools.lru_cache(maxsize=1 << 16)
def _word_tokens(word: str) -> tuple[str, ...]:
    """One word's tokens. Cached: code repeats its identifiers, and splitting them was two thirds of
    the read + chunk time on the 10,066-file throughput corpus (docs/benchmarks/indexing.md)."""
    if len(word) > MAX_TOKEN_LEN:
        return ()
    whole = word.strip("_").lower()
    if not whole:
        return ()
    parts = split_identifier(word)
    return (whole, *parts) if len(parts) > 1 else (whole,)


PATH_FOLDERS = 3  # last folder names of a chunk's path that join its keyword text


def path_words(rel_path: str) -> str:
    """The file stem twice (a file named after what a query asks for is strong evidence) and the
    names of the last ``PATH_FOLDERS`` folders."""
    parts = rel_path.replace("\\", "/").split("/")
    stem = parts[-1].split(".")[0] if not parts[-1].startswith(".") else parts[-1].lstrip(".").split(".")[0]
    return " ".join([stem, stem, *parts[:-1][-PATH_FOLDERS:]])


def search_text(content: str, rel_path: str, symbol: str | None) -> str:
    """The text fed to full-text search for one chunk: its file stem (counted twice), last folder
    names, symbol and code, tokenised."""
    header = f"{path_words(rel_path)} {symbol or ''}"
    return " ".join(code_tokens(header) + code_tokens(content))


def query_terms(query: str) -> list[str]:
    """Distinct search terms of a query, in order, without stopwords (all of them when the query is
    nothing but stopwords)."""
    seen: dict[str, None] = {}
    for token in code_tokens(query):
        seen.setdefault(token, None)
    terms = [t for t in seen if t not in QUERY_STOPWORDS]
    return terms or list(seen)
