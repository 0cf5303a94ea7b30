"""Hybrid code search: keyword (BM25 in PostgreSQL over code-aware tokens) and dense (pgvector HNSW)
retrieval, each over-fetched, fused by normalised weighted sum (search/fusion.py) and re-ranked
(search/ranking.py), within one project; the plan is ``SearchEngine``'s docstring."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from codebase_mcp.core.untrusted import clean
from codebase_mcp.core.validation import check_project_id
from codebase_mcp.domain import (
    RetrievedChunk,
    SearchContext,
    SearchFilters,
    SearchHit,
    SearchMode,
    SearchResponse,
)
from codebase_mcp.embeddings.base import EmbeddingModel
from codebase_mcp.errors import EmbeddingError, InvalidInput, NotFound
from codebase_mcp.search import freshness
from codebase_mcp.search.fusion import FusionWeights, fetch_size, fuse
from codebase_mcp.search.query import AnalysedQuery, analyse
from codebase_mcp.search.ranking import DEFAULT, Candidate, RankParams, rerank, with_definitions
from codebase_mcp.storage import retrieval, search_store
from codebase_mcp.storage.database import Conn, Database
from codebase_mcp.storage.retrieval import DenseArm, Retrieved

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
    """A search is one plan: the query analysed once (``search/query.py``); one statement for the
    context (project, repositories and their freshness, keyword statistics, the model's id) with the
    retrievers that need no query vector (``storage/retrieval.py``: BM25 from the postings, definitions
    of asked names, with their text when the ranking stage reads defining lines), while the query is
    embedded; the nearest vectors as soon as it is, in a statement of its own on a second connection, so
    that the two run side by side in two server processes; fusion and ranking as pure functions of the
    analysed query and the candidates; one statement to hydrate the top. Three statements in all, two
    of them one after the other; a fourth only for a repository being bulk-loaded, a filtered keyword
    fallback, a query word new to this process that the server stems differently, or a remembered model
    id gone stale (the vectors' statement needs the model's id: the first search of a model in this
    engine waits for the context's, later ones use the one remembered). No
    connection is held while another is awaited, so concurrent searches never wait on each other's."""

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
        self._model_ids: dict[str, int] = {}  # a model's row id never changes (embedding_models)

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
        explain: bool = False,
    ) -> SearchResponse:
        started = time.perf_counter()
        analysed = analyse(check_query(query), bare_word=self.rank_params.bare_word, inside=self.rank_params.inside)
        limit = check_limit(limit)
        filters = filters or SearchFilters()
        search_store.conditions(filters)  # a bad filter is an error before any work
        check_project_id(project_id)
        if mode != "keyword" and self.model is None:
            mode = "keyword"
        warning: list[str] = []
        analysed, context, found = await self._gather(
            analysed, project_id, filters, fetch_size(limit, self.candidates), mode, rank, warning
        )
        if not context.scope:
            return SearchResponse(analysed.text, (), 0, _ms(started), mode)
        candidates = fuse(found.keyword, found.dense, analysed.kind, self.weights)
        if rank:
            candidates = rerank(with_definitions(candidates, found.definitions), analysed, self.rank_params)
        async with self.db.connection() as conn:
            hits = await self._hydrate(conn, candidates[:limit], max_chars, explain)
        if mode != "keyword" and context.vectors_pending and not warning:
            warning.append(PARTIAL_COVERAGE)
        fresh = freshness.reported(context.scope, (h.repository_id for h in hits), asked=bool(filters.repository))
        return SearchResponse(
            analysed.text, hits, len(candidates), _ms(started), mode, warning[0] if warning else None, fresh
        )

    async def retrieved(
        self, query: str, *, project_id: str = "default", filters: SearchFilters | None = None, limit: int = 10
    ) -> tuple[AnalysedQuery, Retrieved]:
        """What the retrievers return for ``query`` before fusion and ranking, every arm with the
        chunks' text and the definitions of asked names (the ranking benches replay fusion and ranking
        over them)."""
        analysed = analyse(check_query(query), bare_word=self.rank_params.bare_word, inside=self.rank_params.inside)
        mode: SearchMode = "hybrid" if self.model is not None else "keyword"
        fetch = fetch_size(check_limit(limit), self.candidates)
        analysed, _, found = await self._gather(
            analysed, project_id, filters or SearchFilters(), fetch, mode, True, [], with_text=True
        )
        return analysed, found

    async def _gather(
        self,
        analysed: AnalysedQuery,
        project_id: str,
        filters: SearchFilters,
        fetch: int,
        mode: SearchMode,
        rank: bool,
        warning: list[str],
        *,
        with_text: bool = False,
    ) -> tuple[AnalysedQuery, SearchContext, Retrieved]:
        """The context and every arm's candidates (the class docstring's first two steps); the query
        analysed again when the server stems one of its words differently."""
        scope = retrieval.ProjectScope(project_id, filters.repository or None)
        model = self.model.name if mode != "keyword" and self.model is not None else None
        with_text = with_text or (rank and bool(analysed.names))
        model_id: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        if model is not None and model in self._model_ids:
            model_id.set_result(self._model_ids[model])
        near = (
            asyncio.create_task(self._nearest(analysed.text, mode, scope, filters, fetch, model_id, with_text, warning))
            if model is not None
            else None
        )
        try:
            async with self.db.connection() as conn:
                first = (conn, scope, filters, fetch, mode, rank, model, with_text)
                context, found = await self._first(analysed, *first)
                if context.stems_corrected:
                    analysed = analysed.restemmed()
                    context, found = await self._first(analysed, *first)
            self._check(context, project_id, filters)
            if not model_id.done():
                model_id.set_result(context.model_id)
            if near is None or not context.scope:
                return analysed, context, found
            try:
                dense, used, vector = await near
            except Exception:
                if model is not None:  # the remembered id may be what failed: the next search reads it again
                    self._model_ids.pop(model, None)
                raise
            if model is not None and context.model_id is not None:
                self._model_ids[model] = context.model_id
                if vector is not None and used != context.model_id:  # the remembered id was stale
                    dense = await self._near(vector, scope, filters, fetch, context.model_id, with_text)
            return analysed, context, replace(found, dense=dense if context.model_id is not None else ())
        finally:
            if near is not None and not near.done():
                near.cancel()
                # its connection is back in the pool, and its failure (if any) observed, before returning
                await asyncio.gather(near, return_exceptions=True)

    async def _first(
        self,
        analysed: AnalysedQuery,
        conn: Conn,
        scope: retrieval.ProjectScope,
        filters: SearchFilters,
        fetch: int,
        mode: SearchMode,
        rank: bool,
        model: str | None,
        with_text: bool,
    ) -> tuple[SearchContext, Retrieved]:
        """The first statement: the context, the keyword arm and the definitions of asked names."""
        block = retrieval.context_block(analysed.lexemes, model, languages=bool(filters.language))
        context, found = await retrieval.retrieve(
            conn,
            scope,
            filters,
            fetch,
            context=block,
            keyword=analysed.lexemes if mode != "dense" else None,
            tails=analysed.tails if rank and self.rank_params.definition else (),
            tails_limit=DEFINITIONS_FETCHED,
            with_text=with_text,
        )
        assert context is not None
        return context, found

    @staticmethod
    def _check(context: SearchContext, project_id: str, filters: SearchFilters) -> None:
        if not context.project_exists:
            raise NotFound(f"Unknown project {project_id!r}. Index a repository into it first.")
        if filters.language and context.languages and filters.language.strip().lower() not in context.languages:
            raise InvalidInput(
                f"No {clean(filters.language, 64)!r} files are indexed in project {project_id!r}. "
                f"Languages present: {', '.join(context.languages)}."
            )

    async def _nearest(
        self,
        text: str,
        mode: SearchMode,
        scope: retrieval.ProjectScope,
        filters: SearchFilters,
        fetch: int,
        model_id: asyncio.Future[int | None],
        with_text: bool,
        warning: list[str],
    ) -> tuple[tuple[RetrievedChunk, ...], int | None, npt.NDArray[np.float32] | None]:
        """The dense arm: the query embedded, then its nearest vectors (with the model's id, remembered
        or read by the first statement); and the id and vector it used."""
        vector = await self._embed(text, mode, warning)
        if vector is None:
            return (), None, None
        used = await model_id
        if used is None:
            return (), None, vector
        return await self._near(vector, scope, filters, fetch, used, with_text), used, vector

    async def _near(
        self,
        vector: npt.NDArray[np.float32],
        scope: retrieval.ProjectScope,
        filters: SearchFilters,
        fetch: int,
        model_id: int,
        with_text: bool,
    ) -> tuple[RetrievedChunk, ...]:
        assert self.model is not None
        async with self.db.connection() as conn:
            arm = DenseArm(vector, model_id, self.model.dimension)
            _, found = await retrieval.retrieve(conn, scope, filters, fetch, dense=arm, with_text=with_text)
        return found.dense

    async def _embed(self, query: str, mode: SearchMode, warning: list[str]) -> npt.NDArray[np.float32] | None:
        """The query's vector, computed while the first statement runs. Hybrid search survives an
        embedding provider that is down: keyword results only, said so."""
        assert self.model is not None
        try:
            return await asyncio.to_thread(self.model.embed_query, query)
        except EmbeddingError as exc:
            if mode != "hybrid":
                raise
            log.warning("dense retrieval skipped: %s", exc.message)
            warning.append(f"Keyword results only: the embedding model failed ({exc.message})")
            return None

    async def _hydrate(self, conn: Conn, top: list[Candidate], max_chars: int, explain: bool) -> tuple[SearchHit, ...]:
        if not top:
            return ()
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
                    explain=_explained(c) if explain else None,
                )
            )
        return tuple(hits)


def _explained(c: Candidate) -> dict[str, float]:
    """What placed a hit: each arm's rank and raw and normalised score, the fused score, and the ranking
    stage's factors (search/ranking.py)."""
    ranks = {"keyword_rank": c.keyword_rank, "dense_rank": c.dense_rank}
    return {k: float(v) for k, v in ranks.items() if v is not None} | {k: round(v, 6) for k, v in c.signals.items()}


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
