"""The search tools: code by meaning or identifier, where a name is defined, where it occurs."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, cast

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import Field

from codebase_mcp.core import untrusted
from codebase_mcp.domain import RepositoryFreshness, SearchFilters
from codebase_mcp.search import freshness, symbols
from codebase_mcp.server import render
from codebase_mcp.server.params import (
    DetailArg,
    DirectoryArg,
    FileTypeArg,
    LanguageArg,
    ProjectArg,
    RepositoryArg,
    SymbolNameArg,
)
from codebase_mcp.server.schemas import Freshness, ReferenceResult, SearchResult, SymbolResult
from codebase_mcp.server.state import App, app_of
from codebase_mcp.server.tooling import READ_ONLY, ToolSpec


async def search_code(
    ctx: Context,
    query: Annotated[
        str,
        Field(
            min_length=1,
            max_length=2000,
            description="What the code does, a question or an identifier, e.g. 'retry an HTTP request with "
            "backoff' or 'parse_config'.",
        ),
    ],
    project_id: ProjectArg = None,
    repository_id: RepositoryArg = None,
    language: LanguageArg = None,
    file_type: FileTypeArg = None,
    directory: DirectoryArg = None,
    limit: Annotated[int, Field(ge=1, le=50, description="How many results at most, e.g. 5.")] = 10,
    detail: DetailArg = "snippets",
    explain: Annotated[
        bool,
        Field(description="e.g. true: why each hit ranks where it does."),
    ] = False,
) -> Annotated[CallToolResult, SearchResult]:
    """Find code by meaning or identifier (hybrid semantic + keyword search, ranked). Use grep for exact
    strings or regexes, find_symbol for definitions, find_references for uses. Each result:
    path:start-end, symbol, kind, snippet."""
    app = app_of(ctx)
    project = await app.project(ctx, project_id, must_exist=False)  # the search says if it is unknown
    filters = SearchFilters(repository_id, language, file_type, directory)
    async with app.search_slots:
        result = await app.runtime.search.search(
            query, project_id=project, filters=filters, limit=limit, max_chars=render.FULL_STEPS[0], explain=explain
        )
    base: SearchResult = {
        "results": [],
        "total_count": result.total_count,
        "latency_ms": result.latency_ms,
        "project_id": project,
        "detail": detail,
        "notice": untrusted.NOTICE,
    }
    if result.warning:
        base["warning"] = result.warning
    if result.freshness:
        base["freshness"] = records(result.freshness)
    if not result.hits:
        repo_ids = [f.repository_id for f in await app.repositories(project, filters)]
        base["message"] = await app.why_empty(project, repo_ids, filters, "search_code")
    return render.search(base, result, detail)


async def find_symbol(
    ctx: Context,
    name: SymbolNameArg,
    kind: Annotated[
        str | None,
        Field(max_length=32, description="Only this kind: 'class', 'function', 'method', 'type' or 'module'."),
    ] = None,
    language: LanguageArg = None,
    repository_id: RepositoryArg = None,
    project_id: ProjectArg = None,
    directory: DirectoryArg = None,
    limit: Annotated[int, Field(ge=1, le=50, description="How many definitions at most, e.g. 5.")] = 10,
    detail: DetailArg = "snippets",
) -> Annotated[CallToolResult, SymbolResult]:
    """Where a class, function, method, type or module is defined, by exact or qualified name; non-test
    code first. Use search_code when you know what the code does but not its name."""
    look = await _Lookup.start(ctx, project_id, SearchFilters(repository_id, language, None, directory))
    async with look.app.search_slots, look.app.runtime.db.connection() as conn:
        defs = await symbols.find_definitions(conn, look.repo_ids, look.filters, name, kind, limit)
    base: SymbolResult = {
        "definitions": [],
        "latency_ms": symbols.elapsed_ms(look.started),
        "project_id": look.project,
        "detail": detail,
        "notice": untrusted.NOTICE,
    }
    if fresh := look.freshness(d.repository_id for d in defs):
        base["freshness"] = fresh
    if not defs:
        base["message"] = await look.why_empty(
            "find_symbol",
            f" No definition named {untrusted.clean(name, 100)!r}"
            + (f" of kind {kind!r}" if kind else "")
            + ": try search_code with a description, or find_references.",
        )
    return render.symbols(base, defs, untrusted.clean(name, 300), detail)


async def find_references(
    ctx: Context,
    name: SymbolNameArg,
    language: LanguageArg = None,
    repository_id: RepositoryArg = None,
    project_id: ProjectArg = None,
    directory: DirectoryArg = None,
    limit: Annotated[int, Field(ge=1, le=200, description="How many lines at most, e.g. 100.")] = 30,
) -> Annotated[CallToolResult, ReferenceResult]:
    """Where an identifier occurs (calls, imports, uses, definition): lines with their text, by file,
    from the index (reindex to see recent edits). 'Parser.parse' is looked for as the word 'parse'."""
    look = await _Lookup.start(ctx, project_id, SearchFilters(repository_id, language, None, directory))
    async with look.app.search_slots, look.app.runtime.db.connection() as conn:
        refs, total = await symbols.find_references(conn, look.repo_ids, look.filters, name, limit)
    base: ReferenceResult = {
        "files": [],
        "total_count": total,
        "shown": 0,
        "latency_ms": symbols.elapsed_ms(look.started),
        "project_id": look.project,
        "notice": untrusted.NOTICE,
    }
    if fresh := look.freshness(r.repository_id for r in refs):
        base["freshness"] = fresh
    if not refs:
        base["message"] = await look.why_empty(
            "find_references", f" {untrusted.clean(name, 100)!r} occurs nowhere in the indexed text."
        )
    return render.references(base, refs, untrusted.clean(name, 300))


@dataclass(frozen=True)
class _Lookup:
    """A symbol tool's call: its project, filters and the repositories they cover (with freshness)."""

    app: App
    project: str
    filters: SearchFilters
    scope: list[RepositoryFreshness]
    started: float

    @classmethod
    async def start(cls, ctx: Context, project_id: str | None, filters: SearchFilters) -> _Lookup:
        app = app_of(ctx)
        project = await app.project(ctx, project_id, must_exist=True)
        scope = await app.repositories(project, filters)
        return cls(app, project, filters, scope, time.perf_counter())

    @property
    def repo_ids(self) -> list[int]:
        return [f.repository_id for f in self.scope]

    def freshness(self, answered_from: Iterable[int]) -> list[Freshness]:
        """The freshness to report for an answer drawn from these repositories (empty: nothing to say)."""
        return records(freshness.reported(self.scope, answered_from, asked=bool(self.filters.repository)))

    async def why_empty(self, tool: str, hint: str) -> str:
        return await self.app.why_empty(self.project, self.repo_ids, self.filters, tool) + hint


def records(fresh: Iterable[RepositoryFreshness]) -> list[Freshness]:
    """The freshness field of a result, as its output schema has it."""
    return [cast(Freshness, f.to_dict()) for f in fresh]


# registered in this order (tools/list lists them so), each with what it does to the index
TOOLS: list[ToolSpec] = [(search_code, READ_ONLY), (find_symbol, READ_ONLY), (find_references, READ_ONLY)]
