"""Trimming a hit's code to a few lines around what matched the query: agents pay for every character,
and the first lines of a long chunk (imports, a docstring) are rarely the part that answered."""

from __future__ import annotations

import re
from dataclasses import dataclass

from codebase_mcp.core.tokens import query_terms

MAX_LINE_CHARS = 160


@dataclass(frozen=True)
class Snippet:
    text: str
    start_line: int  # 1-based line numbers in the file
    end_line: int
    truncated: bool  # lines of the chunk were left out, or lines were shortened


def _matcher(query: str) -> re.Pattern[str] | None:
    terms = sorted({t.lower() for t in query_terms(query) if len(t) > 1}, key=len, reverse=True)
    if not terms:
        return None
    return re.compile("|".join(re.escape(t) for t in terms), re.IGNORECASE)


def trim_snippet(content: str, start_line: int, query: str, max_chars: int, max_lines: int = 12) -> Snippet:
    """The window of at most ``max_lines`` lines (and about ``max_chars`` characters) of ``content`` that
    holds the most lines matching the query's terms, starting one line before the first of them; the
    chunk's first lines when nothing matches. Long lines are cut at ``MAX_LINE_CHARS``."""
    lines = content.split("\n")
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()
    max_lines = max(1, max_lines)
    matcher = _matcher(query)
    hits = [bool(matcher and matcher.search(line)) for line in lines]
    begin = 0
    if any(hits) and len(lines) > max_lines:
        best = -1
        for first in range(len(lines)):
            if not hits[first]:
                continue
            count = sum(hits[first : first + max_lines])
            if count > best:
                best, begin = count, max(0, first - 1)
        begin = min(begin, max(0, len(lines) - max_lines))
    out: list[str] = []
    used = 0
    shortened = False
    for line in lines[begin : begin + max_lines]:
        if len(line) > MAX_LINE_CHARS:
            line = line[: MAX_LINE_CHARS - 1] + "…"
            shortened = True
        if out and used + len(line) + 1 > max_chars:
            break
        if not out and len(line) > max_chars:
            line = line[: max(1, max_chars - 1)] + "…"
            shortened = True
        out.append(line)
        used += len(line) + 1
    end = begin + len(out)
    truncated = shortened or begin > 0 or end < len(lines)
    return Snippet("\n".join(out), start_line + begin, start_line + end - 1, truncated)
