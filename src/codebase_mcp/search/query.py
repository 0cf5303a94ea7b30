"""What a search query asks for (issue 11, item 3): its kind, and the symbol names it names.

A query that is one identifier (it has ``_``, an inner capital, ``::``, ``.``, ``->`` or ``#`` between
names, a trailing ``()``, or starts with a capital) is a symbol lookup; so is one plain lower-case word
(``render``, ``lowercase``): measured on the ``tune`` half of ``bench/evaluate_multi.py``, treating it as
a lookup lifts those queries a lot and costs nothing elsewhere (docs/benchmarks/quality-docstring.md).
Anything else is natural language; identifiers written inside it (``where is parseHeader called``) are
asked names too, at half strength in the ranking stage.
"""

from __future__ import annotations

import re
from typing import Literal

QueryKind = Literal["identifier", "natural"]

# a trailing ? or ! belongs to the name in Ruby (``stale?``, ``reset!``)
_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*(?:(?:\.|::|->|#)[A-Za-z_$][\w$]*)*[?!]?(?:\(\))?")
_SEPARATORS = (".", "::", "->", "#")
_TAIL = re.compile(r"^.*[.:#\\/> ]")  # as symbol_tail() in migration 0005
MIN_BARE_WORD = 3


def _codelike(word: str) -> bool:
    """An identifier written the way only code writes it."""
    name = word[:-2] if word.endswith("()") else word
    if word.endswith("()") or "_" in name.strip("_") or any(sep in name for sep in _SEPARATORS):
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


def spelled_tail(name: str) -> str:
    """The last segment of a qualified name as written (``Foo::Bar()`` -> ``Bar``)."""
    return _TAIL.sub("", name.removesuffix("()").replace("->", "."))


def tail(name: str) -> str:
    """The last segment of a qualified name, lower case (``Foo.bar()`` -> ``bar``)."""
    return spelled_tail(name).lower()


def asked_spellings(query: str, *, bare_word: bool = True, inside: float = 0.5) -> list[tuple[str, float]]:
    """The symbol names a query asks for (last segment, as written), each with its strength: 1 for an
    identifier query, ``inside`` for code-like identifiers inside a natural-language query."""
    q = query.strip()
    if query_kind(q, bare_word=bare_word) == "identifier":
        name = spelled_tail(q)
        return [(name, 1.0)] if name else []
    names: dict[str, float] = {}
    for word in q.split():
        word = word.strip(",;:!?\"'`[]{}<>")  # in a sentence, a final ? or ! is punctuation
        word = word.rstrip(".")
        if _IDENTIFIER.fullmatch(word) and _codelike(word):
            name = spelled_tail(word)
            if len(name) >= MIN_BARE_WORD:
                names.setdefault(name, inside)
    return sorted(names.items()) if inside > 0 else []


def asked_names(query: str, *, bare_word: bool = True, inside: float = 0.5) -> list[tuple[str, float]]:
    """``asked_spellings`` in lower case (as ``symbol_tail`` stores them), one per name."""
    names: dict[str, float] = {}
    for name, strength in asked_spellings(query, bare_word=bare_word, inside=inside):
        names.setdefault(name.lower(), strength)
    return sorted(names.items())
