"""Reads for the symbol tools and for helpful empty answers: chunks by the last segment of their symbol
(``symbol_tail``, indexed by migration 0005), chunks that mention an identifier (the full-text index
preselects, a plain substring test confirms), the languages of a project, and which search filter
matches nothing. Lines and definitions are picked out of the returned text by ``search/symbols.py``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from codebase_mcp.domain import SearchFilters, StoredChunk
from codebase_mcp.storage.database import Conn
from codebase_mcp.storage.search_store import conditions

_COLUMNS = sql.SQL(
    "c.id, c.repository_id, r.name AS repository, f.path, c.start_line, c.end_line, c.kind, c.symbol, "
    "c.language, c.content"
)
_FROM = sql.SQL("FROM chunks c JOIN files f ON f.id = c.file_id JOIN repositories r ON r.id = c.repository_id")


def _chunks(rows: Sequence[dict[str, Any]]) -> list[StoredChunk]:
    return [
        StoredChunk(
            chunk_id=r["id"],
            repository_id=r["repository_id"],
            repository=r["repository"],
            path=r["path"],
            start_line=r["start_line"],
            end_line=r["end_line"],
            kind=r["kind"],
            symbol=r["symbol"],
            language=r["language"],
            content=r["content"],
        )
        for r in rows
    ]


async def chunks_by_symbol_tail(
    conn: Conn, repo_ids: list[int], filters: SearchFilters, tails: list[str], limit: int
) -> list[StoredChunk]:
    """Chunks whose symbol ends in one of ``tails`` (lower case), in file order."""
    conds = [sql.SQL("c.symbol IS NOT NULL"), sql.SQL("symbol_tail(c.symbol) = ANY(%(tails)s)")]
    return await _in_file_order(conn, repo_ids, filters, conds, {"tails": tails}, limit)


async def chunks_mentioning(
    conn: Conn, repo_ids: list[int], filters: SearchFilters, identifier: str, limit: int
) -> list[StoredChunk]:
    """Chunks whose text contains ``identifier`` (case-sensitive), in file order. The chunks' full-text
    index preselects (its tokens hold every identifier whole and split), so this stays an index scan."""
    conds = [sql.SQL("c.tsv @@ plainto_tsquery('english', %(ident)s)"), sql.SQL("strpos(c.content, %(ident)s) > 0")]
    return await _in_file_order(conn, repo_ids, filters, conds, {"ident": identifier}, limit)


async def _in_file_order(
    conn: Conn,
    repo_ids: list[int],
    filters: SearchFilters,
    conds: Sequence[sql.Composable],
    params: dict[str, Any],
    limit: int,
) -> list[StoredChunk]:
    """The chunks of these repositories that pass the filters and ``conds``, in file order."""
    filter_conds, filter_params = conditions(filters)
    where = sql.SQL(" AND ").join([sql.SQL("c.repository_id = ANY(%(repos)s)"), *conds, *filter_conds])
    stmt = sql.SQL("SELECT {} {} WHERE {} ORDER BY f.path, c.start_line LIMIT %(k)s").format(_COLUMNS, _FROM, where)
    cur = await conn.execute(stmt, {**filter_params, **params, "repos": repo_ids, "k": limit})
    return _chunks(await cur.fetchall())


async def languages(conn: Conn, repo_ids: list[int]) -> list[str]:
    """The languages of the files indexed in these repositories."""
    cur = await conn.execute(
        "SELECT DISTINCT language FROM files WHERE repository_id = ANY(%s) ORDER BY language", (repo_ids,)
    )
    return [str(r["language"]) for r in await cur.fetchall()]


async def filters_matching_nothing(conn: Conn, repo_ids: list[int], filters: SearchFilters) -> list[str]:
    """Which of the set filters (``language``, ``file_type``, ``directory``), each on its own, match no
    chunk of these repositories."""
    empty = []
    for name, alone in (
        ("language", SearchFilters(language=filters.language)),
        ("file_type", SearchFilters(file_type=filters.file_type)),
        ("directory", SearchFilters(path_prefix=filters.path_prefix)),
    ):
        conds, params = conditions(alone)
        if not conds:
            continue
        where = sql.SQL(" AND ").join([sql.SQL("c.repository_id = ANY(%(repos)s)"), *conds])
        stmt = sql.SQL("SELECT EXISTS (SELECT 1 FROM chunks c JOIN files f ON f.id = c.file_id WHERE {}) AS hit")
        cur = await conn.execute(stmt.format(where), {**params, "repos": repo_ids})
        row = await cur.fetchone()
        if not row or not row["hit"]:
            empty.append(name)
    return empty
