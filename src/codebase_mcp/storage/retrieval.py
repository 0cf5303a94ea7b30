"""Retrieval in one statement: what a search reads before ranking (the context: project, repositories
with their freshness, keyword statistics, the model's id) and every retriever that needs no query
vector (BM25 from the postings, definitions of an asked name) are blocks of SQL with the same columns,
run together as one ``UNION ALL`` (one database round trip) over the repositories the statement itself
resolves; each row is tagged with its arm and, when the ranking stage reads defining lines, carries the
chunk's text. Nearest vectors are the same kind of block, sent as soon as the query is embedded, on a
connection of their own (search/engine.py): the statements run side by side in two server processes.

Two retrievers run in a statement of their own, because they are rare and need planner settings or a
loop: BM25 over the GIN candidates (``search_store.gin_top``) for repositories whose postings are being
bulk-built, and as the exact fallback when filters leave fewer chunks among the postings read than were
asked for. The postings path and its exactness proof are described in ``search_store``'s docstring.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from psycopg import sql

from codebase_mcp.core import analysis
from codebase_mcp.domain import Bm25Stats, RetrievedChunk, SearchContext, SearchFilters
from codebase_mcp.storage.database import TO_EMBED, Conn
from codebase_mcp.storage.repo_store import SCOPE_ROWS, scope_freshness
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

_CHUNK_COLUMNS = ("id", "file_id", "path", "symbol", "kind", "language", "lines")
#: the columns every block yields, in this order
COLUMN_NAMES = (
    *("arm", *_CHUNK_COLUMNS),
    *("score", "partial", "content", "cut_lexeme", "cut_repo", "cut_impact", "context"),
)
COLUMNS = ", ".join(COLUMN_NAMES)
#: each column's type, for the NULLs a block yields (UNION ALL resolves types two inputs at a time, so
#: untyped NULLs would make the result depend on the blocks' order)
_COLUMN_TYPES = {
    **dict.fromkeys(("id", "file_id", "cut_repo"), "bigint"),
    **dict.fromkeys(("path", "symbol", "kind", "language", "content", "cut_lexeme", "arm"), "text"),
    "lines": "integer",
    **dict.fromkeys(("score", "partial", "cut_impact"), "double precision"),
    "context": "json",
}
_CHUNK = sql.SQL("c.id, c.file_id, f.path, c.symbol, c.kind, c.language, c.end_line - c.start_line + 1 AS lines")
_TEXT = sql.SQL("CASE WHEN %(with_text)s THEN c.content END AS content")
#: the searched repositories' ids, as the statement resolved them (the ``ids`` block of a scope)
REPOS = sql.SQL("((SELECT ids FROM ids)::bigint[])")


def select_row(arm: str, source: str, *, chunk_of: str | None = None, **given: str) -> sql.Composable:
    """The SELECT of a block: ``COLUMNS`` from ``source``, the ``given`` columns' expressions, the chunk
    columns of the alias ``chunk_of`` (when given) and NULL for the rest."""
    exprs: list[sql.Composable] = [sql.Literal(arm)]
    for name in COLUMN_NAMES[1:]:
        if name in given:
            exprs.append(sql.SQL(given[name]))
        elif chunk_of is not None and name in _CHUNK_COLUMNS:
            exprs.append(sql.SQL(f"{chunk_of}.{name}"))
        else:
            exprs.append(sql.SQL(f"NULL::{_COLUMN_TYPES[name]}"))
    return sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(exprs), sql.SQL(source))


class Block(Protocol):
    """A part of the statement: the named blocks (common table expressions) it needs, the one SELECT
    that yields ``COLUMNS``, and its parameters (names prefixed by the block, so that blocks compose;
    the filters' own parameters are shared). Its repositories are ``REPOS``."""

    @property
    def arm(self) -> str: ...

    def ctes(self, where: sql.Composable) -> list[sql.Composable]: ...

    def select(self) -> sql.Composable: ...

    def params(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ProjectScope:
    """The repositories of a project, or the one ``ref`` names (id, path or name), resolved by the
    statement with their freshness (``repo_store.SCOPE_ROWS``)."""

    project_id: str
    ref: str | None = None

    def ctes(self) -> list[sql.Composable]:
        return [
            sql.SQL("scope AS MATERIALIZED (" + SCOPE_ROWS + ")"),
            sql.SQL("ids AS (SELECT coalesce(array_agg(id), '{}')::bigint[] AS ids FROM scope)"),
        ]

    def params(self) -> dict[str, Any]:
        return {"sc_project": self.project_id, "sc_ref": self.ref}


@dataclass(frozen=True)
class GivenRepositories:
    """Repositories named by id (the benches' and the fallbacks' scope)."""

    repo_ids: Sequence[int]

    def ctes(self) -> list[sql.Composable]:
        return [sql.SQL("ids AS (SELECT %(sc_ids)s::bigint[] AS ids)")]

    def params(self) -> dict[str, Any]:
        return {"sc_ids": list(self.repo_ids)}


Scope = ProjectScope | GivenRepositories


@dataclass(frozen=True)
class Context:
    """What a search reads besides candidates (``SearchContext``): whether the project exists, the
    repositories with their freshness, the BM25 statistics of the query's lexemes, the id of the query
    model's vectors, whether some chunk still waits for one, the languages indexed (only when a language
    filter asks), and the server's stems of the words this process stemmed and did not have checked yet
    (``core/analysis.py``). One row, its ``context`` column a JSON object. Needs a ``ProjectScope``."""

    lexemes: Sequence[str]
    model: str | None  # the query model's name (None: no dense arm)
    languages: bool
    words: tuple[str, ...]  # analysis.unchecked_words() when the statement was built
    arm: str = "context"

    def ctes(self, where: sql.Composable) -> list[sql.Composable]:
        return [
            sql.SQL(
                "cx_facts AS (SELECT "
                " EXISTS (SELECT 1 FROM projects WHERE id = %(sc_project)s) AS project, "
                " (SELECT id FROM embedding_models WHERE name = %(cx_model)s) AS model_id, "
                " %(cx_model)s::text IS NOT NULL AND EXISTS (SELECT 1 FROM chunks WHERE repository_id = ANY({repos}) "
                "  AND embedding IS NULL AND " + TO_EMBED + ") AS pending, "
                " (SELECT coalesce(sum(chunks), 0)::bigint FROM bm25_docs WHERE repository_id = ANY({repos})) AS n, "
                " (SELECT coalesce(sum(total_len), 0)::bigint FROM bm25_docs WHERE repository_id = ANY({repos})) "
                "  AS total, "
                " (SELECT coalesce(json_object_agg(lexeme, df), '{{}}'::json) FROM ("
                "   SELECT lexeme, sum(df)::bigint AS df FROM bm25_terms "
                "   WHERE repository_id = ANY({repos}) AND lexeme = ANY(%(cx_lexes)s) GROUP BY lexeme) t) AS df, "
                " array(SELECT repository_id FROM bm25_bulk WHERE repository_id = ANY({repos})) AS loading, "
                " CASE WHEN %(cx_languages)s THEN array(SELECT DISTINCT language FROM files "
                "  WHERE repository_id = ANY({repos}) ORDER BY language) END AS languages, "
                " array(SELECT coalesce((ts_lexize('english_stem', t.w))[1], '') "
                "  FROM unnest(%(cx_words)s::text[]) WITH ORDINALITY AS t(w, n) ORDER BY t.n) AS stems, "
                " (SELECT coalesce(json_agg(s), '[]'::json) FROM scope s) AS scope)"
            ).format(repos=REPOS)
        ]

    def select(self) -> sql.Composable:
        return select_row(self.arm, "cx_facts f", context="to_json(f)")

    def params(self) -> dict[str, Any]:
        return {
            "cx_model": self.model,
            "cx_lexes": list(self.lexemes),
            "cx_languages": self.languages,
            "cx_words": list(self.words),
        }

    def read(self, facts: dict[str, Any], scope: ProjectScope) -> SearchContext:
        """The context from this block's row; records the server's stems of ``words``."""
        corrected = bool(self.words) and bool(
            analysis.record_server_stems(dict(zip(self.words, facts["stems"], strict=True)))
        )
        rows = [
            {**r, "last_indexed_at": datetime.fromisoformat(r["last_indexed_at"]) if r["last_indexed_at"] else None}
            for r in facts["scope"]
        ]
        found = scope_freshness(rows, scope.project_id, scope.ref) if facts["project"] else []
        n, total = int(facts["n"]), int(facts["total"])
        return SearchContext(
            project_exists=bool(facts["project"]),
            scope=tuple(found),
            stats=Bm25Stats(
                chunks=n,
                avgdl=total / n if n else 1.0,
                df={str(k): int(v) for k, v in facts["df"].items()},
                loading=frozenset(int(r) for r in facts["loading"]),
            ),
            model_id=facts["model_id"],
            vectors_pending=bool(facts["pending"]),
            languages=tuple(facts["languages"]) if facts["languages"] is not None else None,
            stems_corrected=corrected,
        )


@dataclass(frozen=True)
class PostingsBm25:
    """BM25 from the postings (``search_store``'s docstring), its statistics read in the statement: each
    query lexeme's idf over the searched repositories and its depth (the rarest reads
    ``POSTINGS_DEPTH`` postings, a word in most chunks, with little to add to any score, fewer, at least
    ``MIN_DEPTH``); each lexeme's best postings by impact in every repository not being bulk-loaded, the
    partial sums, the best of them rescored exactly from their tsvectors (unless no list was cut: then
    the partial scores are the scores); and, tagged ``cut``, each cut list's last impact read with the
    lexeme's idf and the average length, from which the exactness bound follows."""

    lexemes: Sequence[str]
    limit: int
    filtered: bool
    arm: str = "keyword"

    @property
    def rescored(self) -> int:
        return max(RESCORED_PER_RESULT * self.limit, MIN_RESCORED)

    def ctes(self, where: sql.Composable) -> list[sql.Composable]:
        # A lexeme's best ``depth`` postings: its blocks in key order, each unnested in storage order,
        # are its postings in read order (a block's postings lie between the previous key and its
        # own, deletes leave keys as bounds), so their first ``depth`` rows are its best; merged with
        # the delta's best and cut in read order. The arrays are unnested in the select list (a
        # ProjectSet: 30 % faster than a function scan, which copies each block's rows into a tuple
        # store); LIMIT counts the unnested rows.
        return [
            sql.SQL(
                "kw_q AS MATERIALIZED (SELECT w.lexeme, w.df, w.idf, w.avgdl, "
                " greatest({min_depth}, round({depth} * w.idf / max(w.idf) OVER ()))::int AS depth FROM ("
                "  SELECT t.lexeme, t.df, ln(1 + (n.n - t.df + 0.5) / (t.df + 0.5)) AS idf, n.avgdl FROM ("
                "   SELECT coalesce(sum(chunks), 0)::float8 AS n, "
                "    coalesce(sum(total_len), 0)::float8 / greatest(coalesce(sum(chunks), 0), 1) AS avgdl "
                "   FROM bm25_docs WHERE repository_id = ANY({repos})) n, ("
                "   SELECT lexeme, sum(df)::float8 AS df FROM bm25_terms "
                "   WHERE repository_id = ANY({repos}) AND lexeme = ANY(%(kw_lex)s) GROUP BY lexeme) t "
                "  WHERE t.df > 0) w)"
            ).format(repos=REPOS, min_depth=sql.Literal(MIN_DEPTH), depth=sql.Literal(POSTINGS_DEPTH)),
            sql.SQL(
                "kw_top AS MATERIALIZED ("
                " SELECT r.id AS repo, q.lexeme, q.depth, q.idf, q.avgdl, p.chunk_id, p.impact, "
                "  bm25(q.idf, p.tf, p.doc_len, q.avgdl) AS part "
                " FROM unnest({repos}) AS r(id) CROSS JOIN kw_q q CROSS JOIN LATERAL ("
                "  SELECT m.chunk_id, m.tf, m.doc_len, m.impact FROM ("
                "   (SELECT unnest(b.chunk_ids) AS chunk_id, unnest(b.tfs)::integer AS tf, "
                "     unnest(b.doc_lens) AS doc_len, unnest(b.impacts) AS impact "
                "    FROM bm25_blocks b WHERE b.repository_id = r.id AND b.lexeme = q.lexeme "
                "    ORDER BY b.last_impact DESC, b.last_chunk LIMIT q.depth) "
                "   UNION ALL "
                "   (SELECT p.chunk_id, p.tf, p.doc_len, p.impact FROM bm25_postings p "
                "    WHERE p.repository_id = r.id AND p.lexeme = q.lexeme "
                "    ORDER BY p.impact DESC, p.chunk_id LIMIT q.depth)) m "
                "  ORDER BY m.impact DESC, m.chunk_id LIMIT q.depth) p "
                " WHERE NOT EXISTS (SELECT 1 FROM bm25_bulk b WHERE b.repository_id = r.id))"
            ).format(repos=REPOS),
            sql.SQL(
                "kw_cuts AS (SELECT repo, lexeme, min(impact) AS impact, idf, avgdl FROM kw_top "
                " GROUP BY repo, lexeme, depth, idf, avgdl HAVING count(*) >= depth)"
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
        exact = (
            "CASE WHEN NOT EXISTS (SELECT 1 FROM kw_q WHERE df > depth) THEN b.partial ELSE "
            " (SELECT sum(bm25(q.idf, cardinality(u.positions), b.doc_len, q.avgdl)) "
            "  FROM unnest(ts_filter(setweight(b.tsv, 'A', %(kw_lex)s), '{a}')) AS u "
            "  JOIN kw_q q ON q.lexeme = u.lexeme) END"
        )
        cuts = select_row(
            "cut", "kw_cuts", score="idf", partial="avgdl", cut_lexeme="lexeme", cut_repo="repo", cut_impact="impact"
        )
        scored = select_row(self.arm, "kw_best b", chunk_of="b", score=exact, partial="b.partial", content="b.content")
        return sql.SQL(" UNION ALL ").join([scored, cuts])

    def params(self) -> dict[str, Any]:
        return {"kw_lex": list(self.lexemes), "kw_rescored": self.rescored}

    def bound(self, cuts: Sequence[dict[str, Any]], hits: Sequence[dict[str, Any]]) -> float | None:
        """What a chunk this read did not score could score at most (0: the top is exact over every
        matching chunk), or None when the postings read hold too few chunks that pass the filters."""
        unseen: dict[int, float] = {}
        for r in cuts:  # a chunk in no list read has, for each lexeme whose list was cut, at most the cut
            cut = float(r["score"]) * impact_bound(float(r["cut_impact"]), float(r["partial"]))
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
    per-model HNSW index (the model's id is a constant, so that the planner picks that partial index);
    its scan is iterative (the pool's sessions set ``hnsw.iterative_scan``), so filters keep recall."""

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
                " WHERE c.embedding_model_id = {model} AND c.repository_id = ANY({repos}) AND {where} "
                " ORDER BY distance LIMIT %(dn_k)s)"
            ).format(chunk=_CHUNK, text=_TEXT, dim=dim, model=sql.Literal(self.model_id), repos=REPOS, where=where)
        ]

    def select(self) -> sql.Composable:
        return select_row(self.arm, "dn_near n", chunk_of="n", score="distance", content="content")

    def params(self) -> dict[str, Any]:
        return {"dn_qv": self.vector, "dn_k": self.limit}


@dataclass(frozen=True)
class Definitions:
    """Chunks whose symbol ends in an asked name (lower case; ``symbol_tail``, migration 0005), whether
    or not an arm returned them: shortest paths first, then chunk id, so that a name defined in many
    files keeps a stable, small answer. The chunks named so first (symbol_tail index), then each one's
    file by its key: the planner cannot estimate how many chunks a name has, and joining every file by
    hash cost more than the search."""

    tails: Sequence[str]
    limit: int
    arm: str = "definition"

    def ctes(self, where: sql.Composable) -> list[sql.Composable]:
        return [
            sql.SQL(
                "df_named AS MATERIALIZED ("
                " SELECT id, file_id, symbol, kind, language, start_line, end_line, content FROM chunks "
                " WHERE repository_id = ANY({repos}) AND symbol IS NOT NULL "
                "  AND symbol_tail(symbol) = ANY(%(df_tails)s))"
            ).format(repos=REPOS),
            sql.SQL(
                "df_found AS (SELECT {chunk}, {text} FROM df_named c "
                " CROSS JOIN LATERAL (SELECT path FROM files WHERE files.id = c.file_id) f "
                " WHERE {where} ORDER BY length(f.path), c.id LIMIT %(df_k)s)"
            ).format(chunk=_CHUNK, text=_TEXT, where=where),
        ]

    def select(self) -> sql.Composable:
        return select_row(self.arm, "df_found d", chunk_of="d", score="0.0", content="content")

    def params(self) -> dict[str, Any]:
        return {"df_tails": list(self.tails), "df_k": self.limit}


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


def context_block(lexemes: Sequence[str], model: str | None, *, languages: bool) -> Context:
    """The context block for a statement built now (it asks the server to stem the words this process
    has not had checked yet)."""
    return Context(lexemes, model, languages, tuple(analysis.unchecked_words()))


async def retrieve(
    conn: Conn,
    scope: Scope,
    filters: SearchFilters,
    limit: int,
    *,
    context: Context | None = None,
    keyword: Sequence[str] | None = None,
    stats: Bm25Stats | None = None,
    dense: DenseArm | None = None,
    tails: Sequence[str] = (),
    tails_limit: int = 20,
    with_text: bool = False,
) -> tuple[SearchContext | None, Retrieved]:
    """The context (when asked: needs a ``ProjectScope``) and every arm asked for, ``limit`` candidates
    each (definitions: ``tails_limit``), in one statement; a second only for repositories being
    bulk-loaded or the filtered fallback (module docstring), which read the keyword statistics from the
    context or ``stats``. ``keyword``: the query's lexemes."""
    if context is not None and not isinstance(scope, ProjectScope):
        raise TypeError("the context needs a project's scope")
    conds, params = conditions(filters)
    where = sql.SQL(" AND ").join([sql.SQL("TRUE"), *conds])
    blocks: list[Block] = []
    postings = PostingsBm25(keyword, limit, filtered=bool(conds)) if keyword else None
    for block in (context, postings):
        if block is not None:
            blocks.append(block)
    if dense is not None:
        blocks.append(NearestVectors(dense.vector, dense.model_id, dense.dimension, limit))
    if tails:
        blocks.append(Definitions(tails, tails_limit))
    if not blocks:
        return None, Retrieved()
    for b in blocks:
        params.update(b.params())
    stmt = sql.SQL("WITH {} SELECT * FROM ({}) AS found({})").format(
        sql.SQL(", ").join([*scope.ctes(), *(cte for b in blocks for cte in b.ctes(where))]),
        sql.SQL(" UNION ALL ").join(sql.SQL("({})").format(b.select()) for b in blocks),
        sql.SQL(COLUMNS),
    )
    cur = await conn.execute(stmt, {**params, **scope.params(), "with_text": with_text})
    by_arm: dict[str, list[dict[str, Any]]] = {}
    for row in await cur.fetchall():
        by_arm.setdefault(row["arm"], []).append(row)
    read: SearchContext | None = None
    if context is not None:
        assert isinstance(scope, ProjectScope)  # checked above
        facts = by_arm["context"][0]["context"]
        read = context.read(json.loads(facts) if isinstance(facts, str) else facts, scope)
    found: list[dict[str, Any]] = []
    exact = True
    if postings is not None:
        if read is not None:
            repo_ids: Sequence[int] = [f.repository_id for f in read.scope]
            stats = read.stats
        else:
            assert isinstance(scope, GivenRepositories) and stats is not None, "the keyword arm needs its statistics"
            repo_ids = scope.repo_ids
        found, exact = await _keyword_top(conn, postings, by_arm, repo_ids, filters, stats)
    return read, Retrieved(
        keyword=tuple(_chunk(r, "score") for r in found[:limit]),
        dense=tuple(sorted((_chunk(r, "score") for r in by_arm.get("dense", [])), key=lambda c: c.score)),
        definitions=tuple(_chunk(r, "score") for r in by_arm.get("definition", [])),
        keyword_exact=exact,
    )


async def _keyword_top(
    conn: Conn,
    postings: PostingsBm25,
    by_arm: dict[str, list[dict[str, Any]]],
    repo_ids: Sequence[int],
    filters: SearchFilters,
    stats: Bm25Stats,
) -> tuple[list[dict[str, Any]], bool]:
    """The keyword arm's rows by score, and whether provably exact: the postings' rows, or the exact
    top over the GIN candidates when filters leave too few among the postings read; with the GIN
    candidates of repositories being bulk-loaded added."""
    limit = postings.limit
    present = sorted((lex for lex in postings.lexemes if stats.df.get(lex, 0) > 0), key=lambda x: (stats.df[x], x))
    if not present or not stats.chunks:
        return [], True
    ready = [r for r in repo_ids if r not in stats.loading]
    loading = [r for r in repo_ids if r in stats.loading]
    found = sorted(by_arm.get("keyword", []), key=lambda r: (-float(r["score"]), r["id"]))
    exact = True
    if ready:
        bound = postings.bound(by_arm.get("cut", []), found)
        if bound is None:  # filters leave too few chunks among the postings read: exact over the GIN
            found, exact = await gin_top(conn, ready, filters, present, stats, limit, MAX_ROWS)
        else:
            exact = bound == 0.0 or (len(found) >= limit and float(found[limit - 1]["score"]) >= bound)
    if loading:  # no postings yet: the GIN candidates, one bounded query
        gin, loading_exact = await gin_top(
            conn, loading, filters, present, stats, limit, LOADING_MAX_ROWS, from_text=True
        )
        found = sorted([*found, *gin], key=lambda r: (-float(r["score"]), r["id"]))
        exact = exact and loading_exact
    return found, exact


async def keyword_search(
    conn: Conn, repo_ids: list[int], filters: SearchFilters, lexes: list[str], limit: int
) -> tuple[list[RetrievedChunk], bool]:
    """The keyword arm alone (the bench's and the tests' entry): the ``limit`` best chunks by BM25, and
    whether that top is provably exact."""
    stats = await bm25_stats(conn, repo_ids, lexes)
    _, found = await retrieve(conn, GivenRepositories(repo_ids), filters, limit, keyword=lexes, stats=stats)
    return list(found.keyword), found.keyword_exact


async def keyword_candidates(
    conn: Conn, repo_ids: list[int], filters: SearchFilters, lexes: list[str], limit: int
) -> list[RetrievedChunk]:
    """The ``limit`` best chunks by BM25 for these lexemes."""
    found, _ = await keyword_search(conn, repo_ids, filters, lexes, limit)
    return found
