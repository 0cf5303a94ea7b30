"""Search reads: filters composed into SQL, BM25 keyword retrieval, dense retrieval over the per-model
HNSW index, and the stored text around a hit. Every value travels as a parameter; identifiers and
filter fragments are composed with ``psycopg.sql``.

BM25 keyword retrieval (issue 11). Chunks are tokenised by ``core/tokens.py`` (identifiers whole and
split, file stem twice, last folder names) and by PostgreSQL's ``english`` configuration (stopwords,
Snowball stemming) into ``chunks.tsv``; ``chunks.doc_len`` is its token count. Migration 0004 keeps our
own statistics, per repository, in the transaction that writes or deletes chunks (statement triggers
over transition tables): ``bm25_docs`` (chunk count, total length) and ``bm25_terms`` (document
frequency per lexeme). Nothing read here comes from ``pg_stats``, so ANALYZE or autoanalyze never
changes a ranking.

Scoring is exact BM25 (Lucene's variant, as ``bm25s``: idf = ln(1 + (N - df + 0.5) / (df + 0.5)),
tf part tf / (tf + k1 (1 - b + b dl / avgdl))) over candidates from the GIN index. Term frequencies
come from the candidate's own tsvector: ``setweight`` marks the query's lexemes, ``ts_filter`` keeps
only them (both in C, binary search), and ``unnest`` of that small vector gives each one's positions.
Unnesting a whole tsvector instead (~100-500 lexemes per chunk) costs several times more per candidate.

Candidates, with a row budget and still exact (MaxScore): query lexemes are sorted rarest first by our
``df``; the rarest ones whose document frequencies add up to at most ``ROW_BUDGET`` chunks select the
candidates (always at least one), all query lexemes score them. A chunk that has none of the selecting
lexemes scores below the sum of the other lexemes' idf (the tf part is below 1), so when the
``limit``-th candidate scores at least that much the top ``limit`` is exact; otherwise the next rarest
lexeme joins and the query runs again, up to ``MAX_ROWS`` estimated candidates (past that, the answer
is the best among the chunks holding the rarer terms: a query made of words that nearly every chunk
holds). Ties: lower chunk id first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import sql

from codebase_mcp.domain import ChunkContext, RetrievedChunk, SearchFilters
from codebase_mcp.errors import InvalidInput
from codebase_mcp.storage.database import Conn

K1 = 1.2
B = 0.75
ROW_BUDGET = 5000  # estimated candidate chunks scored by the first query
MAX_ROWS = 40000  # estimated candidate chunks beyond which the top is no longer made exact


@dataclass(frozen=True)
class Bm25Stats:
    """Statistics of the searched repositories: chunk count, average length, document frequencies."""

    chunks: int
    avgdl: float
    df: dict[str, int]

    def idf(self, lexeme: str) -> float:
        df = self.df.get(lexeme, 0)
        return math.log(1.0 + (self.chunks - df + 0.5) / (df + 0.5))


async def bm25_stats(conn: Conn, repo_ids: list[int], lexes: list[str]) -> Bm25Stats:
    cur = await conn.execute(
        "SELECT coalesce(sum(chunks), 0)::bigint AS n, coalesce(sum(total_len), 0)::bigint AS total "
        "FROM bm25_docs WHERE repository_id = ANY(%s)",
        (repo_ids,),
    )
    row = await cur.fetchone()
    n = int(row["n"]) if row else 0
    total = int(row["total"]) if row else 0
    cur = await conn.execute(
        "SELECT lexeme, sum(df)::bigint AS df FROM bm25_terms "
        "WHERE repository_id = ANY(%s) AND lexeme = ANY(%s) GROUP BY lexeme",
        (repo_ids, lexes),
    )
    df = {r["lexeme"]: int(r["df"]) for r in await cur.fetchall()}
    return Bm25Stats(chunks=n, avgdl=total / n if n else 1.0, df=df)


async def lexemes(conn: Conn, terms: list[str]) -> list[str]:
    """The query terms as the index stores them (stemmed, stopwords gone), in order, distinct."""
    cur = await conn.execute(
        "SELECT t.ord, array(SELECT lexeme FROM unnest(to_tsvector('english', t.term))) AS lex "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS t(term, ord) ORDER BY t.ord",
        (terms,),
    )
    out: dict[str, None] = {}
    for row in await cur.fetchall():
        for lex in row["lex"]:
            out.setdefault(lex, None)
    return list(out)


def tsquery_any(lexes: Sequence[str]) -> str:
    """A tsquery (``simple`` syntax, over already normalised lexemes) matching any of them; every
    lexeme is quoted, so operators and quotes in it stay literal."""
    return " | ".join("'" + lex.replace("\\", "\\\\").replace("'", "''") + "'" for lex in lexes)


def selecting_prefix(ordered: Sequence[str], stats: Bm25Stats, budget: int) -> int:
    """How many of the rarest-first lexemes select the candidates within ``budget`` rows (at least 1)."""
    total = 0
    for i, lex in enumerate(ordered):
        total += stats.df.get(lex, 0)
        if total > budget:
            return max(i, 1)
    return len(ordered)


def glob_to_regex(glob: str) -> str:
    """A POSIX regular expression (PostgreSQL ``~``) for a path glob: ``**`` crosses folders, ``*`` and
    ``?`` do not; everything else is literal."""
    out = ["^"]
    i = 0
    while i < len(glob):
        ch = glob[i]
        if glob.startswith("**/", i):
            out.append("(.*/)?")
            i += 3
            continue
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch.isalnum() or ch in "/_-":
            out.append(ch)
        else:
            out.append("\\" + ch)
        i += 1
    out.append("$")
    return "".join(out)


def _clean(value: str | None, what: str, max_len: int = 500) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > max_len or "\x00" in value:
        raise InvalidInput(f"The {what} filter is too long or contains a NUL character.")
    return value


def conditions(filters: SearchFilters) -> tuple[list[sql.Composable], dict[str, Any]]:
    """SQL conditions on ``c`` (chunks) and ``f`` (files), and their parameters."""
    conds: list[sql.Composable] = []
    params: dict[str, Any] = {}
    language = _clean(filters.language, "language", 64)
    if language:
        conds.append(sql.SQL("c.language = %(f_language)s"))
        params["f_language"] = language.lower()
    ext = _clean(filters.file_type, "file type", 32)
    if ext:
        suffix = "." + ext.lstrip(".").lower()
        conds.append(sql.SQL("lower(right(f.path, %(f_ext_len)s)) = %(f_ext)s"))
        params.update(f_ext=suffix, f_ext_len=len(suffix))
    prefix = _clean(filters.path_prefix, "directory")
    if prefix:
        prefix = prefix.replace("\\", "/").lstrip("./") if prefix not in {".", "./"} else ""
        if prefix:
            conds.append(sql.SQL("starts_with(f.path, %(f_prefix)s)"))
            params["f_prefix"] = prefix
    glob = _clean(filters.path_glob, "path glob")
    if glob:
        conds.append(sql.SQL("f.path ~ %(f_glob)s"))
        params["f_glob"] = glob_to_regex(glob.replace("\\", "/"))
    return conds, params


async def any_unembedded(conn: Conn, repo_ids: list[int]) -> bool:
    """Whether some chunk of these repositories still lacks a vector (partial index: cheap)."""
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM chunks WHERE repository_id = ANY(%s) AND embedding IS NULL) AS pending",
        (repo_ids,),
    )
    row = await cur.fetchone()
    return bool(row and row["pending"])


def retrieved_chunks(rows: Sequence[dict[str, Any]], score: str) -> list[RetrievedChunk]:
    return [
        RetrievedChunk(
            r["id"], r["file_id"], r["path"], r["symbol"], r["kind"], r["language"], float(r[score]), int(r["lines"])
        )
        for r in rows
    ]


async def keyword_candidates(
    conn: Conn, repo_ids: list[int], filters: SearchFilters, lexes: list[str], limit: int
) -> list[RetrievedChunk]:
    """The ``limit`` best chunks by BM25 for these lexemes (see the module's docstring)."""
    stats = await bm25_stats(conn, repo_ids, lexes)
    present = sorted((lex for lex in lexes if stats.df.get(lex, 0) > 0), key=lambda x: (stats.df[x], x))
    if not present or not stats.chunks:
        return []
    idf = [stats.idf(lex) for lex in present]
    conds, params = conditions(filters)
    where = sql.SQL(" AND ").join(
        [sql.SQL("c.repository_id = ANY(%(repos)s)"), sql.SQL("c.tsv @@ %(tsq)s::tsquery"), *conds]
    )
    stmt = sql.SQL(
        "SELECT c.id, c.file_id, f.path, c.symbol, c.kind, c.language, c.end_line - c.start_line + 1 AS lines, "
        " (SELECT sum(q.idf * cardinality(u.positions) / (cardinality(u.positions) + %(k1)s * "
        "    (1 - %(b)s + %(b)s * c.doc_len / %(avgdl)s))) "
        "  FROM unnest(ts_filter(setweight(c.tsv, 'A', %(lex)s), '{{a}}')) AS u "
        "  JOIN unnest(%(lex)s::text[], %(idf)s::float8[]) AS q(lexeme, idf) ON q.lexeme = u.lexeme"
        " ) AS score "
        "FROM chunks c JOIN files f ON f.id = c.file_id WHERE {} ORDER BY score DESC, c.id LIMIT %(k)s"
    ).format(where)
    params.update(repos=repo_ids, k=limit, k1=K1, b=B, avgdl=stats.avgdl, lex=present, idf=idf)
    n = selecting_prefix(present, stats, ROW_BUDGET)
    while True:
        cur = await conn.execute(stmt, {**params, "tsq": tsquery_any(present[:n])})
        rows = await cur.fetchall()
        if n == len(present):
            break
        rest_bound = sum(idf[n:])  # best score of a chunk holding none of the selecting lexemes
        if len(rows) >= limit and float(rows[-1]["score"]) >= rest_bound:
            break
        if sum(stats.df[lex] for lex in present[: n + 1]) > MAX_ROWS:
            break
        n += 1
    return retrieved_chunks(rows, "score")


async def dense_candidates(
    conn: Conn,
    repo_ids: list[int],
    filters: SearchFilters,
    vector: npt.NDArray[np.float32],
    model_id: int,
    dimension: int,
    limit: int,
) -> list[RetrievedChunk]:
    """The nearest chunks embedded by ``model_id``, nearest first (score = cosine distance). The HNSW
    scan is iterative so that filters keep recall."""
    conds, params = conditions(filters)
    dim = sql.Literal(dimension)
    where = sql.SQL(" AND ").join(
        [sql.SQL("c.embedding_model_id = %(model_id)s"), sql.SQL("c.repository_id = ANY(%(repos)s)"), *conds]
    )
    stmt = sql.SQL(
        "SELECT c.id, c.file_id, f.path, c.symbol, c.kind, c.language, c.end_line - c.start_line + 1 AS lines, "
        "(c.embedding::vector({dim})) <=> %(qv)s::vector({dim}) AS distance "
        "FROM chunks c JOIN files f ON f.id = c.file_id WHERE {where} ORDER BY distance LIMIT %(k)s"
    ).format(dim=dim, where=where)
    await conn.execute("SET LOCAL hnsw.ef_search = 100")
    await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
    cur = await conn.execute(stmt, {**params, "repos": repo_ids, "k": limit, "qv": vector, "model_id": model_id})
    rows = sorted(await cur.fetchall(), key=lambda r: r["distance"])
    return retrieved_chunks(rows, "distance")


async def chunk_contexts(conn: Conn, chunk_ids: list[int], lines: int) -> dict[int, ChunkContext]:
    """Stored text of these chunks and up to ``lines`` lines of the stored file around each."""
    cur = await conn.execute(
        "SELECT c.id, c.start_line, c.end_line, c.content, r.id AS repository_id, r.name AS repository, "
        " array_to_string((string_to_array(f.content, E'\\n'))"
        "   [greatest(c.start_line - %(n)s, 1):c.start_line - 1], E'\\n') AS before, "
        " array_to_string((string_to_array(f.content, E'\\n'))"
        "   [c.end_line + 1:c.end_line + %(n)s], E'\\n') AS after "
        "FROM chunks c JOIN files f ON f.id = c.file_id JOIN repositories r ON r.id = c.repository_id "
        "WHERE c.id = ANY(%(ids)s)",
        {"ids": chunk_ids, "n": lines},
    )
    return {
        r["id"]: ChunkContext(
            chunk_id=r["id"],
            repository_id=r["repository_id"],
            repository=r["repository"],
            start_line=r["start_line"],
            end_line=r["end_line"],
            content=r["content"],
            before=r["before"],
            after=r["after"],
        )
        for r in await cur.fetchall()
    }
