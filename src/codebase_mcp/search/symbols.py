"""Symbol tools over the stored index: where a name is defined (``find_symbol``) and where an identifier
occurs (``find_references``). Candidates come from ``storage/symbol_store.py``; the defining line of a
member inside a larger chunk (a method of a small class) is found in the stored text by pattern
(``core/codenames.py``, ``definition_line``)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from codebase_mcp.core.codenames import definition_line, fold, qualified_parts, qualify, segments, tail
from codebase_mcp.core.languages import is_test_path
from codebase_mcp.core.untrusted import clean
from codebase_mcp.domain import ReferenceLine, SearchFilters, StoredChunk, SymbolDefinition
from codebase_mcp.errors import InvalidInput
from codebase_mcp.storage import symbol_store
from codebase_mcp.storage.database import Conn

_IDENTIFIER = re.compile(r"^[A-Za-z_$][\w$]*[!?]?$")
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
    parts = segments(raw)
    if not parts or len(raw) > 300 or not all(_IDENTIFIER.match(p) for p in parts):
        raise InvalidInput(
            f"{raw[:100]!r} is not a symbol name. Give an identifier such as 'parse_config', or a qualified "
            "name such as 'Parser.parse', 'pkg::Type' or 'a.b.C'."
        )
    return SymbolName(raw, parts)


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
    suffix = tuple(fold(p) for p in want.parts)
    tails = [tail(want.last)] + ([tail(want.qualifier[-1])] if want.qualifier else [])
    found: dict[tuple[int, str, int], tuple[SymbolDefinition, int]] = {}

    def add(defn: SymbolDefinition, exact: int) -> None:
        key = (defn.repository_id, defn.path, defn.line)
        if key not in found or found[key][1] > exact:
            found[key] = (defn, exact)

    for chunk in await symbol_store.chunks_by_symbol_tail(conn, repo_ids, filters, tails, MAX_CANDIDATES):
        parts = qualified_parts(chunk.symbol or "")
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
                add(_definition(chunk, row, qualify(chunk.symbol, want.last)), 0)
    if not want.qualifier:
        # members of chunks stored under their container's name (methods of a small class, functions
        # of a module), found by their defining line
        for chunk in await symbol_store.chunks_mentioning(conn, repo_ids, filters, want.last, MAX_CANDIDATES):
            if qualified_parts(chunk.symbol or "")[-1:] == (suffix[-1],):
                continue
            row = definition_line(chunk.content, want.last)
            if row is not None:
                add(_definition(chunk, row, qualify(chunk.symbol, want.last)), 1)
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
