"""Hybrid code search: keyword (BM25 in PostgreSQL over code-aware tokens) and dense (pgvector HNSW)
retrieval, each over-fetched, fused by normalised weighted sum (search/fusion.py) and re-ranked
(search/ranking.py), within one project."""

from __future__ import annotations

import asyncio
import logging
import time

from codebase_mcp.core.analysis import query_lexemes
from codebase_mcp.core.tokens import query_terms
from codebase_mcp.core.untrusted import clean
from codebase_mcp.core.validation import check_project_id
from codebase_mcp.domain import RetrievedChunk, SearchFilters, SearchHit, SearchMode, SearchResponse
from codebase_mcp.embeddings.base import EmbeddingModel
from codebase_mcp.errors import EmbeddingError, InvalidInput, NotFound
from codebase_mcp.search import freshness
from codebase_mcp.search.fusion import FusionWeights, fetch_size, fuse, query_kind
from codebase_mcp.search.query import asked_names
from codebase_mcp.search.ranking import DEFAULT, Candidate, RankParams, rerank, with_definitions
from codebase_mcp.storage import index_store, repo_store, search_store, symbol_store
from codebase_mcp.storage.database import Database

log = logging.getLogger(__name__)
PARTIAL_COVERAGE = (
    "Semantic results cover only part of the index: some chunks have no vector yet (indexing is still "
    "embedding them); keyword matching covers every indexed file."
)
MAX_QUERY_CHARS = 2000
MAX_LIMIT = 50
CONTEXT_LINES = 2
MAX_CONTEXT_CHARS = 400
DEFINITIONS_FETCHED = 20  # chunks defining an asked name, added to the candidates before ranking


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
    def __init__(
        self,
        db: Database,
        model: EmbeddingModel | None,
        candidates: int = 50,
        weights: FusionWeights | None = None,
        rank_params: RankParams = DEFAULT,
    ) -> None:
        self.db = db
        self.model = model
        self.candidates = candidates  # the least each arm fetches
        self.weights = weights or FusionWeights()
        self.rank_params = rank_params
        self._model_id: int | None = None

    async def search(
        self,
        query: str,
        *,
        project_id: str = "default",
        filters: SearchFilters | None = None,
        limit: int = 10,
        mode: SearchMode = "hybrid",
        rank: bool = True,
        max_chars: int = 2000,
    ) -> SearchResponse:
        started = time.perf_counter()
        query = check_query(query)
        limit = check_limit(limit)
        filters = filters or SearchFilters()
        search_store.conditions(filters)  # a bad filter is an error before any work
        check_project_id(project_id)
        if mode != "keyword" and self.model is None:
            mode = "keyword"
        async with self.db.connection() as conn:
            if not await repo_store.project_exists(conn, project_id):
                raise NotFound(f"Unknown project {project_id!r}. Index a repository into it first.")
            # with each repository's freshness, read before any content (search/freshness.py)
            scope = await repo_store.search_scope(conn, project_id, filters.repository or None)
        repo_ids = [f.repository_id for f in scope]
        if not repo_ids:
            return SearchResponse(query, (), 0, _ms(started), mode)

        warning: list[str] = []

        async def dense_or_nothing(fetch: int) -> list[RetrievedChunk]:
            # hybrid search survives an embedding provider that is down: keyword results only, said so
            try:
                return await self._dense(query, repo_ids, filters, fetch)
            except EmbeddingError as exc:
                log.warning("dense retrieval skipped: %s", exc.message)
                warning.append(f"Keyword results only: the embedding model failed ({exc.message})")
                return []

        fetch = fetch_size(limit, self.candidates)
        keyword_task = self._keyword(query, repo_ids, filters, fetch) if mode != "dense" else None
        dense_task = (
            (dense_or_nothing(fetch) if mode == "hybrid" else self._dense(query, repo_ids, filters, fetch))
            if mode != "keyword"
            else None
        )

        async def keyword_side() -> tuple[list[RetrievedChunk], list[RetrievedChunk]]:
            # the definitions of asked names do not depend on the arms: fetched beside the dense arm,
            # after the keyword one (one connection at a time per side, two per search)
            found = await keyword_task if keyword_task is not None else []
            return found, (await self._definitions(query, repo_ids, filters) if rank else [])

        async def dense_side() -> tuple[list[RetrievedChunk], bool]:
            if dense_task is None:
                return [], False
            found = await dense_task
            async with self.db.connection() as conn:
                return found, await search_store.any_unembedded(conn, repo_ids)

        (keyword, definitions), (dense, pending) = await asyncio.gather(keyword_side(), dense_side())
        if pending and not warning:
            warning.append(PARTIAL_COVERAGE)
        params = self.rank_params
        candidates = fuse(keyword, dense, query_kind(query, bare_word=params.bare_word), self.weights)
        if rank:
            candidates = with_definitions(candidates, definitions)
            texts = None
            if asked_names(query, bare_word=params.bare_word, inside=params.inside):
                async with self.db.connection() as conn:  # defining lines of the asked names
                    texts = await search_store.chunk_texts(conn, [c.chunk_id for c in candidates])
            candidates = rerank(candidates, query, params, texts)
        hits = await self._hydrate(candidates[:limit], max_chars)
        fresh = freshness.reported(scope, (h.repository_id for h in hits), asked=bool(filters.repository))
        return SearchResponse(query, hits, len(candidates), _ms(started), mode, warning[0] if warning else None, fresh)

    async def _keyword(
        self, query: str, repo_ids: list[int], filters: SearchFilters, fetch: int
    ) -> list[RetrievedChunk]:
        terms = query_terms(query)
        if not terms:
            return []
        lexes = query_lexemes(terms)
        async with self.db.connection() as conn:
            if await search_store.check_stems(conn):  # a word this process had not seen before
                lexes = query_lexemes(terms)
            if not lexes:  # nothing but stopwords
                return []
            return await search_store.keyword_candidates(conn, repo_ids, filters, lexes, fetch)

    async def _definitions(self, query: str, repo_ids: list[int], filters: SearchFilters) -> list[RetrievedChunk]:
        """Chunks defining a symbol the query names, whether or not an arm returned them."""
        p = self.rank_params
        names = [name for name, _ in asked_names(query, bare_word=p.bare_word, inside=p.inside)]
        if not names or not p.definition:
            return []
        async with self.db.connection() as conn:
            return await symbol_store.definitions_by_tail(conn, repo_ids, filters, names, DEFINITIONS_FETCHED)

    async def _dense(self, query: str, repo_ids: list[int], filters: SearchFilters, fetch: int) -> list[RetrievedChunk]:
        assert self.model is not None
        vector = await asyncio.to_thread(self.model.embed_query, query)
        async with self.db.connection() as conn:
            if self._model_id is None:
                self._model_id = await index_store.model_id(conn, self.model.name)
                if self._model_id is None:
                    return []
            return await search_store.dense_candidates(
                conn, repo_ids, filters, vector, self._model_id, self.model.dimension, fetch
            )

    async def _hydrate(self, top: list[Candidate], max_chars: int) -> tuple[SearchHit, ...]:
        if not top:
            return ()
        async with self.db.connection() as conn:
            contexts = await search_store.chunk_contexts(conn, [c.chunk_id for c in top], CONTEXT_LINES)
        hits = []
        context_chars = min(max_chars // 2, MAX_CONTEXT_CHARS)
        for c in top:
            ctx = contexts.get(c.chunk_id)
            if ctx is None:  # deleted between retrieval and hydration
                continue
            content = clean(ctx.content)
            hits.append(
                SearchHit(
                    repository=clean(ctx.repository, 200),
                    repository_id=ctx.repository_id,
                    path=clean(c.path, 1000),
                    start_line=ctx.start_line,
                    end_line=ctx.end_line,
                    symbol=clean(c.symbol, 200) or None,
                    kind=c.kind,
                    language=c.language,
                    score=round(c.score, 6),
                    content=content[:max_chars],
                    truncated=len(content) > max_chars,
                    context_before=clean(ctx.before)[-context_chars:],
                    context_after=clean(ctx.after, context_chars),
                )
            )
        return tuple(hits)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
