"""Names in code, in one place: the last segment of a qualified name (its *tail*), a qualified name in one
spelling, how the chunker writes a member's name, and the lines that define a name.

The tail is what symbol lookups match: migration 0005's ``symbol_tail()``, the SQL function the
``chunks_symbol_tail`` index is built on, cuts a stored symbol after the last ``.``, ``:``, ``#``, ``\\``,
``/``, ``>`` or space and lower-cases it, and ``tail`` here does the same in Python (tests/core/
test_codenames.py holds them equal), so a name read from a query finds the stored rows. The chunker
writes members as ``owner.name`` (``qualify``); the symbol tools and the ranking stage compare names by
``qualified`` form and read defining lines with ``defined_names`` and ``definition_line``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# symbol_tail(): '^.*[.:#\\/> ]' removed, in PostgreSQL's regular expressions, where '.' also matches a
# newline ('->' and '::' end in characters of the class)
_TAIL = re.compile(r"^.*[.:#\\/> ]", re.DOTALL)
# where a qualified name is cut into segments: where its tail is cut, but not at a space (a Markdown
# section's title, ``Quick start``, is one name; in a query, spaces separate words)
_SEGMENT_SEPARATORS = re.compile(r"(?:->|[.:#\\/>])+")


def without_call(name: str) -> str:
    """A name written as a call (``Foo.bar()``) is the name before the ``()``."""
    return name.removesuffix("()")


def fold(name: str) -> str:
    """Lower case as PostgreSQL's ``lower()`` makes it in the embedded server's locale (C.UTF-8):
    character by character, each to one character (``İ`` to ``i``, a final ``Σ`` to ``σ``), where
    ``str.lower`` may give two or look at the neighbours."""
    if name.isascii():
        return name.lower()
    return "".join(ch.lower()[:1] for ch in name)


def spelled_tail(symbol: str) -> str:
    """The last segment of a qualified name as written, cut where ``symbol_tail()`` cuts it
    (``Foo::Bar`` -> ``Bar``, ``a.b.c`` -> ``c``, ``Foo#bar`` and ``Foo->bar`` -> ``bar``)."""
    return _TAIL.sub("", symbol, count=1)


def tail(symbol: str) -> str:
    """``symbol_tail(symbol)`` of migration 0005: the last segment, lower case (``Foo.Bar`` -> ``bar``)."""
    return fold(spelled_tail(symbol))


def segments(name: str) -> tuple[str, ...]:
    """The segments of a qualified name as written, without a trailing ``()`` (``pkg::Type``,
    ``Type#method()``, ``a.b.C``, ``Foo->bar``, ``x/y``); empty ones left out."""
    return tuple(part for part in _SEGMENT_SEPARATORS.split(without_call(name)) if part)


def qualified_parts(name: str) -> tuple[str, ...]:
    """The segments of a qualified name, lower case (``Foo::Bar()`` -> ``("foo", "bar")``)."""
    return tuple(fold(part) for part in segments(name))


def qualified(name: str) -> str:
    """A qualified name in one spelling: segments joined by dots, lower case (``Foo::bar()``,
    ``Foo#bar`` and ``Foo->bar`` are all ``foo.bar``)."""
    return ".".join(qualified_parts(name))


def qualify(owner: str | None, name: str) -> str:
    """The symbol of ``name`` defined inside ``owner`` (a method of a class, a function of a namespace, a Go
    method of its receiver's type): ``owner.name``, or the name alone without an owner."""
    return f"{owner}.{name}" if owner else name


# Words after which a line defines the name that follows them; modifiers may come before them
# (``pub fn name``, ``export default class Name``), one qualifier between (``def self.name``,
# ``module Outer::Name``). Left out on purpose: ``impl`` and Swift's ``extension`` add to a type defined
# elsewhere (its ``struct`` line is its definition, and an ``impl`` block must not rank as one);
# ``typedef`` puts the name last, after the type it names (``typedef struct Foo {`` is found by its
# ``struct``, which ``typedef`` would swallow); ``package`` heads every file of a package.
DEFINING_WORDS = (
    "def",
    "defp",
    "defmodule",
    "class",
    "module",
    "struct",
    "enum",
    "union",
    "trait",
    "interface",
    "type",
    "typealias",
    "fn",
    "func",
    "function",
    "fun",
    "sub",
    "macro",
    "macro_rules!",
    "mod",
    "namespace",
    "object",
    "protocol",
    "record",
    "const",
    "static",
    "let",
    "var",
    "val",
    "alias",
    "#define",
)
_WORDS = "|".join(re.escape(word) for word in DEFINING_WORDS)
# a line that defines a name: a defining word then the name (``def self.name``, ``pub fn name``,
# ``const NAME``), a Go method (``func (r *T) Name(``), a method or field in a class body (``name(args) {``,
# ``name = (``), or a key of an object literal bound to a function; the name is the captured group
_DEFINED = re.compile(
    r"^\s*(?:(?:static|async|get|set|public|private|protected|readonly|override)\s+)*\*?(?P<c>[\w$]+[?!]?)\s*"
    r"(?:<[^>\n]*>)?\s*\([^)\n]*\)\s*(?::[^{\n]*)?\{\s*$"
    r"|^\s*(?:(?:static|readonly)\s+)*(?P<d>[\w$]+)\s*[:=]\s*(?:async\s+)?(?:function\b|\([^)\n]*\)\s*=>)"
    r"|\bfunc\s*\([^)]*\)\s*(?P<b>[\w$]+)"
    rf"|(?:^|[\s(])(?:{_WORDS})\s+(?:[\w$]+(?:\.|::))?(?P<a>[\w$]+[?!]?)",
    re.MULTILINE,
)
# a line that starts so is a comment or a string, and defines nothing (unless it starts with a defining
# word: ``#define``)
_COMMENT_STARTS = ("//", "#", "*", "/*", "--", '"', "'")
_DEFINE_STARTS = tuple(word for word in DEFINING_WORDS if word.startswith(_COMMENT_STARTS))


def _is_comment(line: str) -> bool:
    stripped = line.lstrip()
    return stripped.startswith(_COMMENT_STARTS) and not stripped.startswith(_DEFINE_STARTS)


def defined_names(text: str, among: Iterable[str] | None = None) -> frozenset[str]:
    """The names ``text`` has a defining line for (``_DEFINED``), as spelled; with ``among``, only the
    lines that mention one of those names (any case) are read."""
    lines = text.split("\n")
    if among is not None:
        wanted = [n.lower() for n in among]
        if not any(n in text.lower() for n in wanted):
            return frozenset()
        lines = [line for line in lines if any(n in line.lower() for n in wanted)]
    code = "\n".join(line for line in lines if not _is_comment(line))
    return frozenset(next(g for g in m.groups() if g) for m in _DEFINED.finditer(code))


def defines(text: str, name: str, *, ignore_case: bool = False) -> bool:
    """Whether ``text`` has a line defining ``name``."""
    names = defined_names(text)
    if ignore_case:
        return name.lower() in {n.lower() for n in names}
    return name in names


# first words of statements, which a C-style signature never starts with (``return compute(x)``)
_NOT_A_DEFINITION = frozenset(
    {
        "return",
        "if",
        "for",
        "while",
        "switch",
        "catch",
        "new",
        "throw",
        "await",
        "else",
        "case",
        "elif",
        "not",
        "and",
        "or",
        "assert",
        "yield",
        "raise",
        "del",
        "delete",
        "echo",
        "print",
        "go",
        "defer",
        "in",
        "is",
        "with",
        "puts",
    }
)


def definition_line(content: str, name: str) -> int | None:
    """The 0-based line of ``content`` that defines ``name``, or ``None``: a line ``defined_names`` reads
    as defining it, or a C-style signature ``Type name(...)`` that is not a statement.

    The signature rule is for the symbol tools: they point at the line of a typed method inside a class
    stored as one chunk (``public void enqueueItem(T v) {``). The ranking stage reads ``defined_names``
    alone: its weights were measured with that rule."""
    signature = re.compile(rf"^\s*(?:[\w$<>\[\],.*&?:~@]+\s+)*[*&]*(?:\w+::)?{re.escape(name)}\s*(?:<[^>]*>\s*)?\(")
    for row, line in enumerate(content.split("\n")):
        if name not in line or _is_comment(line):
            continue
        if any(next(g for g in m.groups() if g) == name for m in _DEFINED.finditer(line)):
            return row
        stripped = line.strip()
        first = stripped.split(maxsplit=1)[0] if stripped else ""
        if signature.search(line) and first not in _NOT_A_DEFINITION and not stripped.endswith((";", ",")):
            return row
    return None
