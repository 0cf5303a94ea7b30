"""Tool results as an agent reads them: structured content (the data, matching the output schema) and
one compact text rendering, both within a character budget."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from mcp_types import CallToolResult, TextContent

from codebase_mcp.domain import ReferenceLine, RepositoryFreshness, SearchHit, SearchResponse, SymbolDefinition
from codebase_mcp.search import freshness
from codebase_mcp.search.snippets import trim_snippet
from codebase_mcp.server.schemas import (
    Definition,
    Detail,
    Hit,
    ReferenceFile,
    ReferenceResult,
    SearchResult,
    SymbolResult,
)

# default 10 results in ``snippets`` detail stay under this (structured + text, as JSON strings)
COMPACT_BUDGET_CHARS = 9_000
FULL_BUDGET_CHARS = 60_000  # well under Claude Code's 25,000-token tool output limit
SNIPPET_STEPS = (600, 420, 300, 220, 160, 110, 70, 40)
FULL_STEPS = (8_000, 5_000, 3_000, 2_000, 1_200, 800, 500, 300)


def _size(structured: Any, text: str) -> int:
    return len(json.dumps(structured, ensure_ascii=False)) + len(json.dumps(text, ensure_ascii=False))


def _result(structured: Any, text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def _fit(build: Callable[[int], tuple[Any, str]], steps: Sequence[int], budget: int) -> CallToolResult:
    """The richest rendering (largest code allowance in ``steps``) that fits ``budget``."""
    structured, text = build(steps[0])
    for allowance in steps[1:]:
        if _size(structured, text) <= budget:
            break
        structured, text = build(allowance)
    return _result(structured, text)


def _header(path: str, start: int, end: int, symbol: str | None, kind: str, repository: str | None) -> str:
    where = f"{repository}:{path}" if repository else path
    lines = f"{start}-{end}" if end != start else str(start)
    return f"{where}:{lines}" + (f"  {symbol} ({kind})" if symbol else f"  ({kind})")


def _stale(base: SearchResult | SymbolResult | ReferenceResult) -> list[str]:
    """The one line saying the index may be behind, when some searched repository has pending changes."""
    note = freshness.stale_note(
        RepositoryFreshness.from_dict(dict(f)) for f in base.get("freshness", ()) if f.get("pending")
    )
    return [note] if note else []


def search(base: SearchResult, response: SearchResponse, detail: Detail) -> CallToolResult:
    hits = response.hits
    several_repos = len({h.repository_id for h in hits}) > 1

    def build(allowance: int) -> tuple[SearchResult, str]:
        out: SearchResult = {**base, "results": [_hit(h, response.query, detail, allowance) for h in hits]}
        head = f"{len(hits)} of {response.total_count} results for {response.query[:200]!r}"
        lines = [f"{head} (project {base['project_id']}, {base['latency_ms']:.0f} ms). {base['notice']}"]
        lines += _stale(base)
        for extra in ("warning", "message"):
            if extra in base:
                lines.append(str(base[extra]))
        for h, record in zip(hits, out["results"], strict=True):
            repo = h.repository if several_repos else None
            if detail == "locations":
                lines.append(_header(h.path, h.start_line, h.end_line, h.symbol, h.kind, repo))
                continue
            lines.append("")
            lines.append(_header(h.path, h.start_line, h.end_line, h.symbol, h.kind, repo))
            if detail == "full" and record.get("context_before"):
                lines.append(record["context_before"])
            lines.append(record.get("content", ""))
            if detail == "full" and record.get("context_after"):
                lines.append(record["context_after"])
            if record.get("truncated"):
                lines.append(f"[… lines {record.get('snippet_start_line')}-{record.get('snippet_end_line')} shown]")
        return out, "\n".join(lines)

    if detail == "locations":
        return _fit(build, (0,), FULL_BUDGET_CHARS)
    if detail == "full":
        return _fit(build, FULL_STEPS, FULL_BUDGET_CHARS)
    per_hit = COMPACT_BUDGET_CHARS * 10 // max(10, len(hits))
    return _fit(build, SNIPPET_STEPS, max(COMPACT_BUDGET_CHARS, per_hit * len(hits) // 10))


def _hit(h: SearchHit, query: str, detail: Detail, allowance: int) -> Hit:
    out: Hit = {
        "repository": h.repository,
        "repository_id": h.repository_id,
        "path": h.path,
        "start_line": h.start_line,
        "end_line": h.end_line,
        "symbol": h.symbol,
        "kind": h.kind,
        "language": h.language,
        "score": h.score,
    }
    if h.explain is not None:
        out["explain"] = h.explain
    if detail == "locations":
        return out
    if detail == "full":
        content = h.content[:allowance]
        out |= {
            "content": content,
            "snippet_start_line": h.start_line,
            "snippet_end_line": h.end_line,
            "truncated": h.truncated or len(h.content) > allowance,
            "context_before": h.context_before,
            "context_after": h.context_after,
        }
        return out
    snippet = trim_snippet(h.content, h.start_line, query, allowance, max_lines=10)
    out |= {
        "content": snippet.text,
        "snippet_start_line": snippet.start_line,
        "snippet_end_line": snippet.end_line,
        "truncated": snippet.truncated or h.truncated,
    }
    return out


def symbols(base: SymbolResult, defs: Sequence[SymbolDefinition], name: str, detail: Detail) -> CallToolResult:
    def build(allowance: int) -> tuple[SymbolResult, str]:
        records: list[Definition] = []
        lines = [f"{len(defs)} definitions of {name[:200]!r} (project {base['project_id']}). {base['notice']}"]
        lines += _stale(base)
        if "message" in base:
            lines.append(base["message"])
        for d in defs:
            record: Definition = {
                "repository": d.repository,
                "repository_id": d.repository_id,
                "path": d.path,
                "line": d.line,
                "end_line": d.end_line,
                "symbol": d.symbol,
                "kind": d.kind,
                "language": d.language,
                "in_tests": d.in_tests,
            }
            header = _header(d.path, d.line, d.end_line, d.symbol, d.kind, d.repository)
            if detail != "locations":
                snippet = trim_snippet(d.content, d.line, "", allowance, max_lines=8 if detail == "snippets" else 400)
                record |= {"content": snippet.text, "truncated": snippet.truncated}
                lines += ["", header, snippet.text]
            else:
                lines.append(header)
            records.append(record)
        return {**base, "definitions": records}, "\n".join(lines)

    if detail == "locations":
        return _fit(build, (0,), FULL_BUDGET_CHARS)
    steps = FULL_STEPS if detail == "full" else SNIPPET_STEPS
    return _fit(build, steps, FULL_BUDGET_CHARS if detail == "full" else COMPACT_BUDGET_CHARS)


def references(base: ReferenceResult, refs: Sequence[ReferenceLine], name: str) -> CallToolResult:
    files: dict[tuple[int, str], ReferenceFile] = {}
    for ref in refs:
        group = files.setdefault(
            (ref.repository_id, ref.path),
            {"repository": ref.repository, "path": ref.path, "lines": [], "text": [], "definition_lines": []},
        )
        group["lines"].append(ref.line)
        group["text"].append(ref.text)
        if ref.definition:
            group["definition_lines"].append(ref.line)
    out: ReferenceResult = {**base, "files": list(files.values()), "shown": len(refs)}
    lines = [
        f"{len(refs)} of {base['total_count']} lines mentioning {name[:200]!r} in {len(files)} files "
        f"(project {base['project_id']}). {base['notice']}"
    ]
    lines += _stale(base)
    if "message" in base:
        lines.append(base["message"])
    for group in out["files"]:
        lines.append(f"{group['repository']}:{group['path']}")
        for line, text in zip(group["lines"], group["text"], strict=True):
            mark = "  (definition)" if line in group["definition_lines"] else ""
            lines.append(f"  {line}: {text}{mark}")
    return _result(out, "\n".join(lines))
