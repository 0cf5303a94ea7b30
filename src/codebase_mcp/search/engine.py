"""Hybrid code search: keyword (PostgreSQL full-text over code-aware tokens) and dense (pgvector
HNSW) retrieval, fused and re-ranked, within one project."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from psycopg import sql

from codebase_mcp.embeddings.base import EmbeddingModel
from codebase_mcp.errors import EmbeddingError, InvalidInput, NotFound
from codebase_mcp.indexing.tokens import query_terms
from codebase_mcp.search import keyword
from codebase_mcp.search.filters import SearchFilters, conditions
from codebase_mcp.search.ranking import Candidate, rerank, rrf
from codebase_mcp.search.untrusted import clean
from codebase_mcp.storage import repo_store
from codebase_mcp.storage.database import Database

log = logging.getLogger(__name__)
Mode = Literal["hybrid", "keyword", "dense"]
MAX_QUERY_CHARS = 2000
MAX_LIMIT = 50
CONTEXT_LINES = 2
MAX_CONTEXT_CHARS = 400


@dataclass
class SearchHit:
    repository: str
    repository_id: int
    path: str
    start_line: int
    end_line: int
    symbol: str | None
    kind: str
    language: str
    score: float
    content: str
    truncated: bool
    context_before: str
    context_after: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResponse:
    query: str
    hits: list[SearchHit]
    total_count: int
    latency_ms: float
    mode: str
    warning: str | None = None


def check_query(query: str) -> str:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("The query is empty. Describe the code you are looking for, or give an identifier.")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"The query is {len(query)} characters long; the most is {MAX_QUERY_CHARS}.")
    if "\x00" in query:
        raise InvalidInput("The query contains a NUL character.")
    cleaned = clean(query).strip()  # bidi overrides, zero-width and control characters carry no meaning
    if not cleaned:
        raise InvalidInput("The query has only invisible or control characters. Type the words or identifier.")
    return cleaned


def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be a whole number from 1 to {MAX_LIMIT}; got {limit!r}.")
    return limit


class SearchEngine:
    def __init__(self, db: Database, model: EmbeddingModel | None, candidates: int = 60) -> None:
        self.db = db
        self.model = model
        self.candidates = candidates
        self._model_id: int | None = None
        self._term_stats: keyword.TermStats | None = None

    async def search(
        self,
        query: str,
        *,
        project_id: str = "default",
        filters: SearchFilters | None = None,
        limit: int = 10,
        mode: Mode = "hybrid",
        rank: bool = True,
        max_chars: int = 2000,
    ) -> SearchResponse:
        started = time.perf_counter()
        query = check_query(query)
        limit = check_limit(limit)
        filters = filters or SearchFilters()
        repo_store.check_project_id(project_id)
        if mode != "keyword" and self.model is None:
            mode = "keyword"
        async with self.db.connection() as conn:
            if not await repo_store.project_exists(conn, project_id):
                raise NotFound(f"Unknown project {project_id!r}. Index a repository into it first.")
            repo_ids = await self._repo_ids(conn, project_id, filters.repository)
            await conn.commit()
        if not repo_ids:
            return SearchResponse(query, [], 0, _ms(started), mode)
        conds, params = conditions(filters)
        params["repos"] = repo_ids
        params["k"] = self.candidates

        warning: list[str] = []

        async def dense_or_nothing() -> list[dict[str, Any]]:
            # hybrid search survives an embedding provider that is down: keyword results only, said so
            try:
                return await self._dense(query, conds, params)
            except EmbeddingError as exc:
                log.warning("dense retrieval skipped: %s", exc.message)
                warning.append(f"Keyword results only: the embedding model failed ({exc.message})")
                return []

        keyword_task = self._keyword(query, conds, params) if mode != "dense" else None
        dense_task = (
            (dense_or_nothing() if mode == "hybrid" else self._dense(query, conds, params))
            if mode != "keyword"
            else None
        )
        results = await asyncio.gather(*(t for t in (keyword_task, dense_task) if t is not None))
        keyword = results[0] if keyword_task is not None else []
        dense = results[-1] if dense_task is not None else []

        by_id: dict[int, Candidate] = {}
        for rank_no, row in enumerate(keyword, 1):
            by_id.setdefault(row["id"], _candidate(row)).keyword_rank = rank_no
        for rank_no, row in enumerate(dense, 1):
            by_id.setdefault(row["id"], _candidate(row)).dense_rank = rank_no
        candidates = list(by_id.values())
        rrf(candidates)
        if rank:
            candidates = rerank(candidates, query)
        else:
            candidates.sort(key=lambda c: c.score, reverse=True)
        top = candidates[:limit]
        hits = await self._hydrate(top, max_chars)
        return SearchResponse(query, hits, len(candidates), _ms(started), mode, warning[0] if warning else None)

    async def _repo_ids(self, conn: Any, project_id: str, repository: str | None) -> list[int]:
        if repository:
            repo = await repo_store.find_repository(conn, project_id, repository)
            return [int(repo["id"])]
        cur = await conn.execute("SELECT id FROM repositories WHERE project_id = %s", (project_id,))
        return [int(r["id"]) for r in await cur.fetchall()]

    async def _keyword(self, query: str, conds: list[sql.Composable], params: dict[str, Any]) -> list[dict[str, Any]]:
        terms = query_terms(query)
        if not terms:
            return []
        where = sql.SQL(" AND ").join([sql.SQL("c.repository_id = ANY(%(repos)s)"), sql.SQL("c.tsv @@ q"), *conds])
        stmt = sql.SQL(
            "SELECT c.id, c.file_id, f.path, c.symbol, c.kind, c.language, ts_rank_cd(c.tsv, q, 1) AS rank "
            "FROM chunks c JOIN files f ON f.id = c.file_id, to_tsquery('simple', %(tsq)s) AS q "
            "WHERE {} ORDER BY rank DESC, c.id LIMIT %(k)s"
        ).format(where)
        async with self.db.connection() as conn:
            if self._term_stats is None or time.monotonic() - self._term_stats.loaded_at > keyword.STATS_TTL_SECONDS:
                self._term_stats = await keyword.load_stats(conn)
            lexes = await keyword.lexemes(conn, terms)
            if not lexes:  # nothing but stopwords
                await conn.commit()
                return []
            cur = await conn.execute(stmt, {**params, "tsq": keyword.build_tsquery(lexes, self._term_stats)})
            rows = await cur.fetchall()
            await conn.commit()
        return rows

    async def _dense(self, query: str, conds: list[sql.Composable], params: dict[str, Any]) -> list[dict[str, Any]]:
        assert self.model is not None
        vector = await asyncio.to_thread(self.model.embed_query, query)
        async with self.db.connection() as conn:
            if self._model_id is None:
                cur = await conn.execute("SELECT id FROM embedding_models WHERE name = %s", (self.model.name,))
                row = await cur.fetchone()
                if row is None:
                    await conn.commit()
                    return []
                self._model_id = int(row["id"])
            dim = sql.Literal(self.model.dimension)
            where = sql.SQL(" AND ").join(
                [sql.SQL("c.embedding_model_id = %(model_id)s"), sql.SQL("c.repository_id = ANY(%(repos)s)"), *conds]
            )
            stmt = sql.SQL(
                "SELECT c.id, c.file_id, f.path, c.symbol, c.kind, c.language, "
                "(c.embedding::vector({dim})) <=> %(qv)s::vector({dim}) AS distance "
                "FROM chunks c JOIN files f ON f.id = c.file_id WHERE {where} ORDER BY distance LIMIT %(k)s"
            ).format(dim=dim, where=where)
            async with conn.transaction():
                await conn.execute("SET LOCAL hnsw.ef_search = 100")
                await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                cur = await conn.execute(stmt, {**params, "qv": vector, "model_id": self._model_id})
                rows = await cur.fetchall()
        rows.sort(key=lambda r: r["distance"])
        return rows

    async def _hydrate(self, top: list[Candidate], max_chars: int) -> list[SearchHit]:
        if not top:
            return []
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT c.id, c.start_line, c.end_line, c.content, r.id AS repository_id, r.name AS repository, "
                " array_to_string((string_to_array(f.content, E'\\n'))"
                "   [greatest(c.start_line - %(n)s, 1):c.start_line - 1], E'\\n') AS before, "
                " array_to_string((string_to_array(f.content, E'\\n'))"
                "   [c.end_line + 1:c.end_line + %(n)s], E'\\n') AS after "
                "FROM chunks c JOIN files f ON f.id = c.file_id JOIN repositories r ON r.id = c.repository_id "
                "WHERE c.id = ANY(%(ids)s)",
                {"ids": [c.chunk_id for c in top], "n": CONTEXT_LINES},
            )
            rows = {r["id"]: r for r in await cur.fetchall()}
            await conn.commit()
        hits = []
        for c in top:
            row = rows.get(c.chunk_id)
            if row is None:  # deleted between retrieval and hydration
                continue
            content = clean(row["content"])
            truncated = len(content) > max_chars
            context_chars = min(max_chars // 2, MAX_CONTEXT_CHARS)
            hits.append(
                SearchHit(
                    repository=clean(row["repository"], 200),
                    repository_id=row["repository_id"],
                    path=clean(c.path, 1000),
                    start_line=row["start_line"],
                    end_line=row["end_line"],
                    symbol=clean(c.symbol, 200) or None,
                    kind=c.kind,
                    language=c.language,
                    score=round(c.score, 6),
                    content=content[:max_chars],
                    truncated=truncated,
                    context_before=clean(row["before"])[-context_chars:],
                    context_after=clean(row["after"], context_chars),
                )
            )
        return hits


def _candidate(row: dict[str, Any]) -> Candidate:
    return Candidate(row["id"], row["file_id"], row["path"], row["symbol"], row["kind"], row["language"])


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
