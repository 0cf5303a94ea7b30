"""Search reads: filters composed into SQL, keyword retrieval over the chunks' full-text index, dense
retrieval over the per-model HNSW index, and the stored text around a hit. Every value travels as a
parameter; identifiers and filter fragments are composed with ``psycopg.sql``.

Keyword term selection: ranking every chunk that contains a very common term (``self``, ``return``, a
file extension) costs about 10 µs per row: a 300,000-chunk index would spend seconds on terms that
barely change the ranking, as BM25's inverse document frequency would tell. PostgreSQL's statistics on
the ``tsv`` column already know each common lexeme's frequency, so the query keeps its rarest terms up
to a row budget, and falls back to requiring all terms (an intersection) when every term is common.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import sql

from codebase_mcp.domain import ChunkContext, RetrievedChunk, SearchFilters
from codebase_mcp.errors import InvalidInput
from codebase_mcp.storage.database import Conn

ROW_BUDGET = 4000  # estimated matching rows ranked per query
STATS_TTL_SECONDS = 300.0


@dataclass
class TermStats:
    """Frequencies of the most common lexemes (share of chunks containing each) and the chunk count."""

    freqs: dict[str, float] = field(default_factory=dict)
    rows: float = 0.0
    loaded_at: float = 0.0

    @property
    def floor(self) -> float:
        """Upper bound of the frequency of a lexeme not in the list."""
        return min(self.freqs.values()) if self.freqs else 0.0

    def estimate(self, lexeme: str) -> float:
        return self.rows * self.freqs.get(lexeme, self.floor / 2)


async def load_stats(conn: Conn) -> TermStats:
    cur = await conn.execute(
        "SELECT most_common_elems::text::text[] AS elems, most_common_elem_freqs AS freqs, "
        " (SELECT reltuples FROM pg_class WHERE oid = 'chunks'::regclass) AS rows "
        "FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'chunks' AND attname = 'tsv'"
    )
    row = await cur.fetchone()
    stats = TermStats(loaded_at=time.monotonic())
    if row and row["elems"] and row["freqs"]:
        stats.freqs = dict(zip(row["elems"], row["freqs"], strict=False))
        stats.rows = max(float(row["rows"] or 0), 0.0)
    return stats


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


def build_tsquery(lexes: list[str], stats: TermStats) -> str:
    """A tsquery (in ``simple`` syntax over already normalised lexemes) that is selective enough."""
    quoted = {lex: "'" + lex.replace("'", "''").replace("\\", "\\\\") + "'" for lex in lexes}
    if not stats.freqs or len(lexes) == 1:
        return " | ".join(quoted.values())
    ordered = sorted(lexes, key=stats.estimate)
    if stats.estimate(ordered[0]) > ROW_BUDGET:
        return " & ".join(quoted[lex] for lex in ordered)  # every term is common: intersect them
    chosen: list[str] = []
    total = 0.0
    for lex in ordered:
        total += stats.estimate(lex)
        if chosen and total > ROW_BUDGET:
            break
        chosen.append(lex)
    return " | ".join(quoted[lex] for lex in chosen)


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


def _retrieved(rows: Sequence[dict[str, Any]], score: str) -> list[RetrievedChunk]:
    return [
        RetrievedChunk(r["id"], r["file_id"], r["path"], r["symbol"], r["kind"], r["language"], float(r[score]))
        for r in rows
    ]


async def keyword_candidates(
    conn: Conn, repo_ids: list[int], filters: SearchFilters, tsquery: str, limit: int
) -> list[RetrievedChunk]:
    """Chunks matching ``tsquery`` (see ``build_tsquery``), best ``ts_rank_cd`` first."""
    conds, params = conditions(filters)
    where = sql.SQL(" AND ").join([sql.SQL("c.repository_id = ANY(%(repos)s)"), sql.SQL("c.tsv @@ q"), *conds])
    stmt = sql.SQL(
        "SELECT c.id, c.file_id, f.path, c.symbol, c.kind, c.language, ts_rank_cd(c.tsv, q, 1) AS rank "
        "FROM chunks c JOIN files f ON f.id = c.file_id, to_tsquery('simple', %(tsq)s) AS q "
        "WHERE {} ORDER BY rank DESC, c.id LIMIT %(k)s"
    ).format(where)
    cur = await conn.execute(stmt, {**params, "repos": repo_ids, "k": limit, "tsq": tsquery})
    return _retrieved(await cur.fetchall(), "rank")


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
        "SELECT c.id, c.file_id, f.path, c.symbol, c.kind, c.language, "
        "(c.embedding::vector({dim})) <=> %(qv)s::vector({dim}) AS distance "
        "FROM chunks c JOIN files f ON f.id = c.file_id WHERE {where} ORDER BY distance LIMIT %(k)s"
    ).format(dim=dim, where=where)
    await conn.execute("SET LOCAL hnsw.ef_search = 100")
    await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
    cur = await conn.execute(stmt, {**params, "repos": repo_ids, "k": limit, "qv": vector, "model_id": model_id})
    rows = sorted(await cur.fetchall(), key=lambda r: r["distance"])
    return _retrieved(rows, "distance")


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
