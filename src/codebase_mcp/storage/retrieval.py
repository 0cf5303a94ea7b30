"""Retrieval in one statement: every retriever a search needs (BM25 from the postings, nearest vectors,
definitions of an asked name) is a block of SQL with the same columns, and ``retrieve`` runs them
together as one ``UNION ALL`` (one database round trip), so the keyword and dense arms and the
definitions come back at once, each row tagged with its arm and, when the ranking stage reads defining
lines, carrying the chunk's text.

Two retrievers run in a statement of their own, because they are rare and need planner settings or a
loop: BM25 over the GIN candidates (``search_store.gin_top``) for repositories whose postings are being
bulk-built, and as the exact fallback when filters leave fewer chunks among the postings read than were
asked for. The postings path and its exactness proof are described in ``search_store``'s docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from psycopg import sql

from codebase_mcp.domain import Bm25Stats, RetrievedChunk, SearchFilters
from codebase_mcp.storage.database import Conn
from codebase_mcp.storage.search_store import (
    LOADING_MAX_ROWS,
    MAX_ROWS,
    bm25_stats,
    conditions,
    gin_top,
    impact_bound,
)

POSTINGS_DEPTH = 1000  # postings read per query lexeme and repository, highest impact first (rarest lexeme)
MIN_DEPTH = 100  # postings read at least, for the most common lexeme
RESCORED_PER_RESULT = 4  # chunks rescored exactly per result wanted (at least MIN_RESCORED)
MIN_RESCORED = 200

#: the columns every retriever's block yields, in this order
COLUMNS = (
    "arm, id, file_id, path, symbol, kind, language, lines, score, partial, content, cut_lexeme, cut_repo, cut_impact"
)
_CHUNK = sql.SQL("c.id, c.file_id, f.path, c.symbol, c.kind, c.language, c.end_line - c.start_line + 1 AS lines")
_TEXT = sql.SQL("CASE WHEN %(with_text)s THEN c.content END AS content")


class Retriever(Protocol):
    """One source of candidates: the named blocks (common table expressions) it needs and the one
    SELECT that yields ``COLUMNS``, with its parameters (names prefixed by the retriever, so that blocks
    compose; the filters' own parameters are shared)."""

    @property
    def arm(self) -> str: ...

    def ctes(self, where: sql.Composable) -> list[sql.Composable]: ...

    def select(self) -> sql.Composable: ...

    def params(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PostingsBm25:
    """BM25 from the postings (``search_store``'s docstring): each lexeme's best postings by impact, the
    partial sums, the best of them rescored exactly from their tsvectors; and, tagged ``cut``, each cut
    list's last impact read, from which the exactness bound follows."""

    repo_ids: Sequence[int]
    stats: Bm25Stats
    lexemes: Sequence[str]  # present in the statistics, rarest first
    limit: int
    filtered: bool
    arm: str = "keyword"

    @property
    def idf(self) -> list[float]:
        return [self.stats.idf(lex) for lex in self.lexemes]

    @property
    def depth(self) -> list[int]:
        # a lexeme's depth follows its weight: the rarest reads POSTINGS_DEPTH, a word in most chunks
        # (low idf, little to add to any score) fewer, at least MIN_DEPTH
        idf = self.idf
        return [max(MIN_DEPTH, round(POSTINGS_DEPTH * w / max(idf))) for w in idf]

    @property
    def rescored(self) -> int:
        return max(RESCORED_PER_RESULT * self.limit, MIN_RESCORED)

    @property
    def whole(self) -> bool:
        """Every lexeme's postings fit in its depth: the partial scores are the scores."""
        return all(self.stats.df[lex] <= d for lex, d in zip(self.lexemes, self.depth, strict=True))

    def ctes(self, where: sql.Composable) -> list[sql.Composable]:
        return [
            sql.SQL(
                "kw_q AS (SELECT * FROM unnest(%(kw_lex)s::text[], %(kw_idf)s::float8[], %(kw_depth)s::int[]) "
                " AS q(lexeme, idf, depth))"
            ),
            sql.SQL(
                "kw_top AS MATERIALIZED ("
                " SELECT r.id AS repo, q.lexeme, q.depth, p.chunk_id, p.impact, "
                "  bm25(q.idf, p.tf, p.doc_len, %(kw_avgdl)s) AS part "
                " FROM unnest(%(kw_repos)s::bigint[]) AS r(id) CROSS JOIN kw_q q CROSS JOIN LATERAL ("
                "  SELECT p.chunk_id, p.tf, p.doc_len, p.impact FROM bm25_postings p "
                "  WHERE p.repository_id = r.id AND p.lexeme = q.lexeme "
                "  ORDER BY p.impact DESC, p.chunk_id LIMIT q.depth) p)"
            ),
            sql.SQL(
                "kw_cuts AS (SELECT repo, lexeme, min(impact) AS impact FROM kw_top "
                " GROUP BY 1, 2, depth HAVING count(*) >= depth)"
            ),
            sql.SQL("kw_partial AS (SELECT chunk_id, sum(part) AS partial FROM kw_top GROUP BY chunk_id {})").format(
                # without filters, only the best partial scores need their chunk rows
                sql.SQL("" if self.filtered else "ORDER BY partial DESC, chunk_id LIMIT %(kw_rescored)s")
            ),
            sql.SQL(
                "kw_best AS ("
                " SELECT {chunk}, c.tsv, c.doc_len, {text}, p.partial "
                " FROM kw_partial p JOIN chunks c ON c.id = p.chunk_id JOIN files f ON f.id = c.file_id "
                " WHERE {where} ORDER BY p.partial DESC, c.id LIMIT %(kw_rescored)s)"
            ).format(chunk=_CHUNK, text=_TEXT, where=where),
        ]

    def select(self) -> sql.Composable:
        exact = sql.SQL(
            "(SELECT sum(bm25(q.idf, cardinality(u.positions), b.doc_len, %(kw_avgdl)s)) "
            " FROM unnest(ts_filter(setweight(b.tsv, 'A', %(kw_lex)s), '{a}')) AS u "
            " JOIN kw_q q ON q.lexeme = u.lexeme)"
        )
        return sql.SQL(
            "SELECT {arm}, b.id, b.file_id, b.path, b.symbol, b.kind, b.language, b.lines, {score}, b.partial, "
            " b.content, NULL, NULL, NULL FROM kw_best b "
            "UNION ALL SELECT 'cut', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, lexeme, repo, impact "
            "FROM kw_cuts"
        ).format(arm=sql.Literal(self.arm), score=sql.SQL("b.partial") if self.whole else exact)

    def params(self) -> dict[str, Any]:
        return {
            "kw_repos": list(self.repo_ids),
            "kw_avgdl": self.stats.avgdl,
            "kw_lex": list(self.lexemes),
            "kw_idf": self.idf,
            "kw_depth": self.depth,
            "kw_rescored": self.rescored,
        }

    def bound(self, cuts: Sequence[dict[str, Any]], hits: Sequence[dict[str, Any]]) -> float | None:
        """What a chunk this read did not score could score at most (0: the top is exact over every
        matching chunk), or None when the postings read hold too few chunks that pass the filters."""
        idf_of = dict(zip(self.lexemes, self.idf, strict=True))
        unseen: dict[int, float] = {}
        for r in cuts:  # a chunk in no list read has, for each lexeme whose list was cut, at most the cut
            cut = idf_of[r["cut_lexeme"]] * impact_bound(float(r["cut_impact"]), self.stats.avgdl)
            unseen[r["cut_repo"]] = unseen.get(r["cut_repo"], 0.0) + cut
        bound = max(unseen.values(), default=0.0)
        if bound > 0.0 and len(hits) < self.limit:
            return None
        if bound > 0.0 and len(hits) >= self.rescored:  # read but not rescored: its partial plus the bound
            bound += min(float(h["partial"]) for h in hits)
        return bound


@dataclass(frozen=True)
class NearestVectors:
    """The chunks whose vectors (of one model) are nearest the query's, by cosine distance, over the
    per-model HNSW index; its scan is iterative (the pool's sessions set ``hnsw.iterative_scan``), so
    filters keep recall."""

    repo_ids: Sequence[int]
    vector: npt.NDArray[np.float32]
    model_id: int
    dimension: int
    limit: int
    arm: str = "dense"

    def ctes(self, where: sql.Composable) -> list[sql.Composable]:
        dim = sql.Literal(self.dimension)
        return [
            sql.SQL(
                "dn_near AS MATERIALIZED (SELECT {chunk}, {text}, "
                " (c.embedding::vector({dim})) <=> %(dn_qv)s::vector({dim}) AS distance "
                " FROM chunks c JOIN files f ON f.id = c.file_id "
                " WHERE c.embedding_model_id = %(dn_model)s AND c.repository_id = ANY(%(dn_repos)s) AND {where} "
                " ORDER BY distance LIMIT %(dn_k)s)"
            ).format(chunk=_CHUNK, text=_TEXT, dim=dim, where=where)
        ]

    def select(self) -> sql.Composable:
        return sql.SQL(
            "SELECT {}, id, file_id, path, symbol, kind, language, lines, distance, NULL, content, "
            " NULL, NULL, NULL FROM dn_near"
        ).format(sql.Literal(self.arm))

    def params(self) -> dict[str, Any]:
        return {"dn_repos": list(self.repo_ids), "dn_qv": self.vector, "dn_model": self.model_id, "dn_k": self.limit}


@dataclass(frozen=True)
class Definitions:
    """Chunks whose symbol ends in an asked name (lower case; ``symbol_tail``, migration 0005), whether
    or not an arm returned them: shortest paths first, then chunk id, so that a name defined in many
    files keeps a stable, small answer. The chunks named so first (symbol_tail index), then each one's
    file by its key: the planner cannot estimate how many chunks a name has, and joining every file by
    hash cost more than the search."""

    repo_ids: Sequence[int]
    tails: Sequence[str]
    limit: int
    arm: str = "definition"

    def ctes(self, where: sql.Composable) -> list[sql.Composable]:
        return [
            sql.SQL(
                "df_named AS MATERIALIZED ("
                " SELECT id, file_id, symbol, kind, language, start_line, end_line, content FROM chunks "
                " WHERE repository_id = ANY(%(df_repos)s) AND symbol IS NOT NULL "
                "  AND symbol_tail(symbol) = ANY(%(df_tails)s))"
            ),
            sql.SQL(
                "df_found AS (SELECT {chunk}, {text} FROM df_named c "
                " CROSS JOIN LATERAL (SELECT path FROM files WHERE files.id = c.file_id) f "
                " WHERE {where} ORDER BY length(f.path), c.id LIMIT %(df_k)s)"
            ).format(chunk=_CHUNK, text=_TEXT, where=where),
        ]

    def select(self) -> sql.Composable:
        return sql.SQL(
            "SELECT {}, id, file_id, path, symbol, kind, language, lines, 0.0, NULL, content, "
            " NULL, NULL, NULL FROM df_found"
        ).format(sql.Literal(self.arm))

    def params(self) -> dict[str, Any]:
        return {"df_repos": list(self.repo_ids), "df_tails": list(self.tails), "df_k": self.limit}


@dataclass(frozen=True)
class Retrieved:
    """What the retrievers returned, each list in its own order (keyword: BM25 descending; dense:
    cosine distance ascending; definitions: shortest path first), and whether the keyword top is
    provably the exact BM25 top."""

    keyword: tuple[RetrievedChunk, ...] = ()
    dense: tuple[RetrievedChunk, ...] = ()
    definitions: tuple[RetrievedChunk, ...] = ()
    keyword_exact: bool = True


@dataclass(frozen=True)
class KeywordArm:
    """What the keyword arm needs: the query's lexemes and the searched repositories' statistics."""

    lexemes: Sequence[str]
    stats: Bm25Stats


@dataclass(frozen=True)
class DenseArm:
    vector: npt.NDArray[np.float32]
    model_id: int
    dimension: int


def _chunk(r: dict[str, Any], score: str) -> RetrievedChunk:
    return RetrievedChunk(
        r["id"],
        r["file_id"],
        r["path"],
        r["symbol"],
        r["kind"],
        r["language"],
        float(r[score]),
        int(r["lines"]),
        text=r.get("content"),
    )


async def retrieve(
    conn: Conn,
    repo_ids: Sequence[int],
    filters: SearchFilters,
    limit: int,
    *,
    keyword: KeywordArm | None = None,
    dense: DenseArm | None = None,
    tails: Sequence[str] = (),
    tails_limit: int = 20,
    with_text: bool = False,
) -> Retrieved:
    """Every arm asked for, ``limit`` candidates each (definitions: ``tails_limit``), in one statement;
    a second only for repositories being bulk-loaded or the filtered fallback (module docstring)."""
    conds, params = conditions(filters)
    where = sql.SQL(" AND ").join([sql.SQL("TRUE"), *conds])
    postings: PostingsBm25 | None = None
    loading: list[int] = []
    retrievers: list[Retriever] = []
    present: list[str] = []
    if keyword is not None:
        stats = keyword.stats
        present = sorted((lex for lex in keyword.lexemes if stats.df.get(lex, 0) > 0), key=lambda x: (stats.df[x], x))
        if present and stats.chunks:
            ready = [r for r in repo_ids if r not in stats.loading]
            loading = [r for r in repo_ids if r in stats.loading]
            if ready:
                postings = PostingsBm25(ready, stats, present, limit, filtered=bool(conds))
                retrievers.append(postings)
    if dense is not None:
        retrievers.append(NearestVectors(repo_ids, dense.vector, dense.model_id, dense.dimension, limit))
    if tails:
        retrievers.append(Definitions(repo_ids, tails, tails_limit))
    rows: list[dict[str, Any]] = []
    if retrievers:
        for r in retrievers:
            params.update(r.params())
        ctes = [cte for r in retrievers for cte in r.ctes(where)]
        stmt = sql.SQL("WITH {} SELECT * FROM ({}) AS found({})").format(
            sql.SQL(", ").join(ctes),
            sql.SQL(" UNION ALL ").join(sql.SQL("({})").format(r.select()) for r in retrievers),
            sql.SQL(COLUMNS),
        )
        cur = await conn.execute(stmt, {**params, "with_text": with_text})
        rows = await cur.fetchall()
    by_arm: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_arm.setdefault(row["arm"], []).append(row)
    found = sorted(by_arm.get("keyword", []), key=lambda r: (-float(r["score"]), r["id"]))
    exact = True
    if postings is not None:
        bound = postings.bound(by_arm.get("cut", []), found)
        if bound is None:  # filters leave too few chunks among the postings read: exact over the GIN
            found, exact = await gin_top(
                conn, list(postings.repo_ids), filters, present, postings.stats, limit, MAX_ROWS
            )
        else:
            exact = bound == 0.0 or (len(found) >= limit and float(found[limit - 1]["score"]) >= bound)
    if loading and keyword is not None:  # no postings yet: the GIN candidates, one bounded query
        gin, loading_exact = await gin_top(
            conn, loading, filters, present, keyword.stats, limit, LOADING_MAX_ROWS, from_text=True
        )
        found = sorted([*found, *gin], key=lambda r: (-float(r["score"]), r["id"]))
        exact = exact and loading_exact
    return Retrieved(
        keyword=tuple(_chunk(r, "score") for r in found[:limit]),
        dense=tuple(sorted((_chunk(r, "score") for r in by_arm.get("dense", [])), key=lambda c: c.score)),
        definitions=tuple(_chunk(r, "score") for r in by_arm.get("definition", [])),
        keyword_exact=exact,
    )


async def keyword_search(
    conn: Conn, repo_ids: list[int], filters: SearchFilters, lexes: list[str], limit: int
) -> tuple[list[RetrievedChunk], bool]:
    """The keyword arm alone (the bench's and the tests' entry): the ``limit`` best chunks by BM25, and
    whether that top is provably exact."""
    stats = await bm25_stats(conn, repo_ids, lexes)
    found = await retrieve(conn, repo_ids, filters, limit, keyword=KeywordArm(lexes, stats))
    return list(found.keyword), found.keyword_exact


async def keyword_candidates(
    conn: Conn, repo_ids: list[int], filters: SearchFilters, lexes: list[str], limit: int
) -> list[RetrievedChunk]:
    """The ``limit`` best chunks by BM25 for these lexemes."""
    found, _ = await keyword_search(conn, repo_ids, filters, lexes, limit)
    return found
