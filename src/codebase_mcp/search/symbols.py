"""Symbol tools over the stored index: where a name is defined (``find_symbol``) and where an identifier
occurs (``find_references``). Candidates come from ``storage/symbol_store.py``; the defining line of a
member inside a larger chunk (a method of a small class) is found in the stored text by pattern."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from codebase_mcp.core.languages import is_test_path
from codebase_mcp.core.untrusted import clean
from codebase_mcp.domain import ReferenceLine, SearchFilters, StoredChunk, SymbolDefinition
from codebase_mcp.errors import InvalidInput
from codebase_mcp.storage import symbol_store
from codebase_mcp.storage.database import Conn

_SEPARATORS = re.compile(r"::|->|[.#\\/]")
_IDENTIFIER = re.compile(r"^[A-Za-z_$][\w$]*[!?]?$")
_KEYWORDS = (
    "def|class|fn|func|function|fun|sub|struct|enum|interface|trait|type|module|namespace|impl|object|"
    "record|protocol|extension|macro|typedef|union|package"
)
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
MAX_CANDIDATES = 400
MAX_LINE_CHARS = 120


@dataclass(frozen=True)
class SymbolName:
    """A name as asked: ``Class.method``, ``pkg::Type``, ``a.b.C`` or a plain identifier."""

    raw: str
    parts: tuple[str, ...]

    @property
    def last(self) -> str:
        return self.parts[-1]

    @property
    def qualifier(self) -> tuple[str, ...]:
        return self.parts[:-1]


def parse_name(name: str) -> SymbolName:
    raw = clean(name).strip()
    parts = tuple(p for p in _SEPARATORS.split(raw) if p)
    if not parts or len(raw) > 300 or not all(_IDENTIFIER.match(p) for p in parts):
        raise InvalidInput(
            f"{raw[:100]!r} is not a symbol name. Give an identifier such as 'parse_config', or a qualified "
            "name such as 'Parser.parse', 'pkg::Type' or 'a.b.C'."
        )
    return SymbolName(raw, parts)


def definition_line(content: str, name: str) -> int | None:
    """The 0-based line of ``content`` that defines ``name`` (a keyword before it, or a C-style
    signature ``Type name(...)`` that is not a statement), or ``None``."""
    n = re.escape(name)
    keyword = re.compile(rf"\b(?:{_KEYWORDS})\b[^=;(]*?(?<![\w$]){n}(?![\w$])")
    signature = re.compile(rf"^\s*(?:[\w$<>\[\],.*&?:~@]+\s+)*[*&]*(?:\w+::)?{n}\s*(?:<[^>]*>\s*)?\(")
    assignment = re.compile(rf"^\s*(?:export\s+)?(?:const|let|var|val)\s+{n}\s*[=:]")
    for row, line in enumerate(content.split("\n")):
        if name not in line:
            continue
        stripped = line.strip()
        if stripped.startswith(("//", "#", "*", "/*", "--", '"', "'")) and not stripped.startswith("#define"):
            continue
        if keyword.search(line) or assignment.search(line):
            return row
        first = stripped.split(maxsplit=1)[0] if stripped else ""
        if signature.search(line) and first not in _NOT_A_DEFINITION and not stripped.endswith((";", ",")):
            return row
    return None


def _qualified(symbol: str | None) -> tuple[str, ...]:
    return tuple(p.lower() for p in _SEPARATORS.split(symbol or "") if p)


def _ends_with(parts: tuple[str, ...], suffix: tuple[str, ...]) -> bool:
    return len(parts) >= len(suffix) and parts[len(parts) - len(suffix) :] == suffix


def _definition(chunk: StoredChunk, row: int, symbol: str) -> SymbolDefinition:
    lines = chunk.content.split("\n")
    return SymbolDefinition(
        repository=clean(chunk.repository, 200),
        repository_id=chunk.repository_id,
        path=clean(chunk.path, 1000),
        line=chunk.start_line + row,
        end_line=chunk.end_line,
        symbol=clean(symbol, 300),
        kind=chunk.kind,
        language=chunk.language,
        content=clean("\n".join(lines[row:])),
        in_tests=is_test_path(chunk.path),
    )


async def find_definitions(
    conn: Conn, repo_ids: list[int], filters: SearchFilters, name: str, kind: str | None, limit: int
) -> list[SymbolDefinition]:
    """Definitions of ``name``: chunks named so (the whole chunk is the definition), and members defined
    inside a chunk named by the qualifier (a method of a class stored as one chunk). Non-test code first,
    then exact qualified matches, then by path."""
    want = parse_name(name)
    suffix = tuple(p.lower() for p in want.parts)
    tails = [want.last.lower()] + ([want.qualifier[-1].lower()] if want.qualifier else [])
    found: dict[tuple[int, str, int], tuple[SymbolDefinition, int]] = {}

    def add(defn: SymbolDefinition, exact: int) -> None:
        key = (defn.repository_id, defn.path, defn.line)
        if key not in found or found[key][1] > exact:
            found[key] = (defn, exact)

    for chunk in await symbol_store.chunks_by_symbol_tail(conn, repo_ids, filters, tails, MAX_CANDIDATES):
        parts = _qualified(chunk.symbol)
        if parts and parts[-1] == suffix[-1] and _ends_with(parts, suffix):
            if (
                chunk.kind in {"lines", "section"}
                and chunk.start_line > 1
                and definition_line(chunk.content, want.last) is None
            ):
                continue  # a later piece of a split definition
            row = definition_line(chunk.content, want.last)
            add(_definition(chunk, row or 0, chunk.symbol or want.raw), 0 if parts == suffix else 1)
        elif want.qualifier and parts and _ends_with(parts, suffix[:-1]):
            row = definition_line(chunk.content, want.last)
            if row is not None:
                add(_definition(chunk, row, ".".join([chunk.symbol or "", want.last])), 0)
    if not want.qualifier:
        # members of chunks stored under their container's name (methods of a small class, functions
        # of a module), found by their defining line
        for chunk in await symbol_store.chunks_mentioning(conn, repo_ids, filters, want.last, MAX_CANDIDATES):
            if _qualified(chunk.symbol)[-1:] == (suffix[-1],):
                continue
            row = definition_line(chunk.content, want.last)
            if row is not None:
                owner = chunk.symbol or ""
                add(_definition(chunk, row, f"{owner}.{want.last}" if owner else want.last), 1)
    defs = [(d, exact) for d, exact in found.values() if kind is None or d.kind == kind]
    defs.sort(key=lambda de: (de[0].in_tests, de[1], de[0].path, de[0].line))
    return [d for d, _ in defs[:limit]]


async def find_references(
    conn: Conn, repo_ids: list[int], filters: SearchFilters, name: str, limit: int
) -> tuple[list[ReferenceLine], int]:
    """Lines where the identifier (the last segment of ``name``) occurs as a whole word, in file order,
    and how many there are in all (up to the candidate cap)."""
    want = parse_name(name)
    word = re.compile(rf"(?<![\w$]){re.escape(want.last)}(?![\w$])")
    lines: list[ReferenceLine] = []
    total = 0
    for chunk in await symbol_store.chunks_mentioning(conn, repo_ids, filters, want.last, MAX_CANDIDATES):
        defined = definition_line(chunk.content, want.last)
        for row, text in enumerate(chunk.content.split("\n")):
            if want.last not in text or not word.search(text):
                continue
            total += 1
            if len(lines) < limit:
                lines.append(
                    ReferenceLine(
                        repository=clean(chunk.repository, 200),
                        repository_id=chunk.repository_id,
                        path=clean(chunk.path, 1000),
                        line=chunk.start_line + row,
                        text=clean(text.strip(), MAX_LINE_CHARS),
                        definition=row == defined,
                    )
                )
    return lines, total


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
