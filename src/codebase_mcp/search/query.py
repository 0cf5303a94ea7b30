"""What a search query asks for: its kind, and the symbol names it names; ``analyse`` reads a query
once into an ``AnalysedQuery`` that every stage of a search is given (retrieval, fusion, ranking).

A query that is one identifier (it has ``_``, an inner capital, ``::``, ``.``, ``->`` or ``#`` between
names, a trailing ``()``, or starts with a capital) is a symbol lookup; so is one plain lower-case word
(``render``, ``lowercase``): measured on the ``tune`` half of ``bench/evaluate_multi.py``, treating it as
a lookup lifts those queries a lot and costs nothing elsewhere (docs/benchmarks/quality-docstring.md).
Anything else is natural language; identifiers written inside it (``where is parseHeader called``) are
asked names too, at half strength in the ranking stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

from codebase_mcp.core.analysis import query_lexemes
from codebase_mcp.core.codenames import fold, qualified, segments, spelled_tail, without_call
from codebase_mcp.core.tokens import QUERY_STOPWORDS, code_tokens, query_terms

QueryKind = Literal["identifier", "natural"]

# a trailing ? or ! belongs to the name in Ruby (``stale?``, ``reset!``)
_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*(?:(?:\.|::|->|#)[A-Za-z_$][\w$]*)*[?!]?(?:\(\))?")
MIN_BARE_WORD = 3


def _codelike(word: str) -> bool:
    """An identifier written the way only code writes it."""
    name = without_call(word)
    if name != word or "_" in name.strip("_") or len(segments(name)) > 1:
        return True
    return any(ch.isupper() for ch in name[1:]) and any(ch.islower() for ch in name)


def query_kind(query: str, *, bare_word: bool = True) -> QueryKind:
    """``identifier`` for one token that looks like a name, ``natural`` otherwise (module docstring)."""
    q = query.strip()
    if not q or len(q.split()) != 1 or not _IDENTIFIER.fullmatch(q):
        return "natural"
    if _codelike(q) or q[0].isupper():
        return "identifier"
    return "identifier" if bare_word and len(q) >= MIN_BARE_WORD else "natural"


def _asked_tail(name: str) -> str:
    """The name a query asks for, as written: the last segment of what it calls (``Foo::Bar()`` -> ``Bar``)."""
    return spelled_tail(without_call(name))


def asked_spellings(query: str, *, bare_word: bool = True, inside: float = 0.5) -> list[tuple[str, float]]:
    """The symbol names a query asks for (last segment, as written), each with its strength: 1 for an
    identifier query, ``inside`` for code-like identifiers inside a natural-language query."""
    q = query.strip()
    if query_kind(q, bare_word=bare_word) == "identifier":
        name = _asked_tail(q)
        return [(name, 1.0)] if name else []
    names: dict[str, float] = {}
    for word in q.split():
        word = word.strip(",;:!?\"'`[]{}<>")  # in a sentence, a final ? or ! is punctuation
        word = word.rstrip(".")
        if _IDENTIFIER.fullmatch(word) and _codelike(word):
            name = _asked_tail(word)
            if len(name) >= MIN_BARE_WORD:
                names.setdefault(name, inside)
    return sorted(names.items()) if inside > 0 else []


def asked_names(query: str, *, bare_word: bool = True, inside: float = 0.5) -> list[tuple[str, float]]:
    """``asked_spellings`` in lower case (as ``symbol_tail`` stores them), one per name."""
    names: dict[str, float] = {}
    for name, strength in asked_spellings(query, bare_word=bare_word, inside=inside):
        names.setdefault(fold(name), strength)
    return sorted(names.items())


_QUESTION_WORDS = frozenset(
    {"how", "where", "what", "which", "why", "when", "who", "does", "do", "is", "are", "can", "find", "show", "list"}
)


def is_question(query: str) -> bool:
    """A question (``how are retries configured``, ``where is the session validated?``), as agents ask
    them, rather than a description of one piece of code or an identifier."""
    words = query.split()
    return bool(words) and (words[0].lower().strip(",:") in _QUESTION_WORDS or query.rstrip().endswith("?"))


def _path_words(query: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for t in code_tokens(query):
        if len(t) >= 3 and t not in QUERY_STOPWORDS and "_" not in t:
            seen.setdefault(t, None)
    return tuple(seen)


@dataclass(frozen=True)
class AnalysedQuery:
    """A query read once (``analyse``): what retrieval, fusion and ranking need of it."""

    text: str
    kind: QueryKind
    question: bool
    terms: tuple[str, ...]  # the keyword terms (core/tokens.py ``query_terms``)
    lexemes: tuple[str, ...]  # their lexemes, as chunks' tsvectors hold them (core/analysis.py)
    tokens: frozenset[str]  # the query's code tokens (identifiers whole and split, lower case)
    words: tuple[str, ...]  # words matched against file and folder names (natural-language queries)
    names: tuple[tuple[str, float], ...]  # asked symbol names as spelled, with their strength
    qualified: str  # the query's words read as one qualified name (``TokenBucket Allow``), or ""

    @property
    def tails(self) -> list[str]:
        """The asked names in lower case (as ``symbol_tail`` stores them), one per name."""
        return sorted({name.lower() for name, _ in self.names})

    def restemmed(self) -> AnalysedQuery:
        """The same query with its lexemes computed again (after the server corrected a stem)."""
        return replace(self, lexemes=tuple(query_lexemes(self.terms)))


def analyse(query: str, *, bare_word: bool = True, inside: float = 0.5) -> AnalysedQuery:
    """``query`` read once: ``bare_word`` and ``inside`` as for ``query_kind`` and ``asked_spellings``."""
    kind = query_kind(query, bare_word=bare_word)
    terms = tuple(query_terms(query))
    spelled = [w for w in re.split(r"[\s.:#>-]+", query.strip()) if w]
    natural = kind == "natural"
    return AnalysedQuery(
        text=query,
        kind=kind,
        question=is_question(query),
        terms=terms,
        lexemes=tuple(query_lexemes(terms)),
        tokens=frozenset(code_tokens(query)),
        words=_path_words(query) if natural else (),
        names=tuple(asked_spellings(query, bare_word=bare_word, inside=inside)),
        qualified=qualified(".".join(spelled)) if natural and 1 < len(spelled) <= 4 else "",
    )
