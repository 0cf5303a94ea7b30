"""Search reads: filters composed into SQL, BM25 keyword retrieval, dense retrieval over the per-model
HNSW index, and the stored text around a hit. Every value travels as a parameter; identifiers and
filter fragments are composed with ``psycopg.sql``.

BM25 keyword retrieval. Chunks are tokenised by ``core/tokens.py`` (identifiers whole and
split, file stem twice, last folder names) and analysed by ``core/analysis.py`` (stopwords, Snowball
stemming: exactly PostgreSQL's ``english`` configuration, computed in Python) into ``chunks.tsv``;
``chunks.doc_len`` is its token count. Queries' lexemes come from the same module. Migration 0004 keeps our
own statistics, per repository, in the transaction that writes or deletes chunks (statement triggers
over transition tables): ``bm25_docs`` (chunk count, total length) and ``bm25_terms`` (document
frequency per lexeme); migration 0008 adds the postings. Nothing read here comes from ``pg_stats``, so
ANALYZE or autoanalyze never changes a ranking.

Scoring is BM25 (Lucene's variant, as ``bm25s``: idf = ln(1 + (N - df + 0.5) / (df + 0.5)), tf part tf /
(tf + k1 (1 - b + b dl / avgdl))), read from **postings**: per (chunk, lexeme) the term frequency, the
chunk's length and an *impact* (the tf part at a fixed reference avgdl of 100), in read order (impact
descending, then chunk id), stored in blocks of 128 per lexeme by a bulk load (``bm25_blocks``,
migration 0014) and one row each for later writes (``bm25_postings``, migration 0008, the delta), kept
by the same triggers as the statistics. The postings retriever (``storage/retrieval.py``) reads, for
each query lexeme and repository, its ``POSTINGS_DEPTH`` (1,000) best postings in read order (its first
blocks merged with the delta's best rows), sums each chunk's parts over the lists it appears in (a lower
bound of its score: exact when no list was cut), joins the filters, and rescores the best ``4 x limit``
(at least 200) exactly from their tsvectors (``setweight`` + ``ts_filter`` keep the query's lexemes,
``unnest`` gives their positions).
When every lexeme has at most ``POSTINGS_DEPTH`` postings (rare words, identifiers, small projects) this
is exact BM25 over all matching chunks. Otherwise it is the top among the chunks that are among the
best of at least one lexeme (a WAND-like cut), and still provably exact when the ``limit``-th score is
at least what a chunk outside every list read could score (for each cut list, its idf times the tf part
the last impact read allows at the real avgdl, ``impact_bound``); the bench
(``bench/keyword_latency.py``) reports how often. The cost no longer grows with the number of chunks
holding a common word: at most depth x lexemes postings and a few hundred rescored chunks.

``gin_top`` scores the GIN candidates instead, for filters that leave fewer than ``limit`` chunks
among the postings read (then exact over every GIN candidate) and as the bench's reference. Candidates,
with a row budget and still exact (MaxScore): query lexemes are sorted rarest first by our ``df``; the
rarest ones whose document frequencies add up to at most ``ROW_BUDGET`` chunks select the candidates
(always at least one), all query lexemes score them. A chunk that has none of the selecting lexemes
scores below the sum of the other lexemes' idf (the tf part is below 1), so when the ``limit``-th
candidate scores at least that much the top ``limit`` is exact; otherwise the next rarest lexeme joins
and the query runs again, up to ``MAX_ROWS`` estimated candidates. Ties: lower chunk id first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from codebase_mcp.core import analysis
from codebase_mcp.domain import (
    Bm25Stats,
    ChunkContext,
    RetrievedChunk,
    SearchFilters,
)
from codebase_mcp.errors import InvalidInput
from codebase_mcp.storage.database import Conn

K1 = 1.2
B = 0.75
ROW_BUDGET = 5000  # estimated candidate chunks scored by the first query
MAX_ROWS = 40000  # estimated candidate chunks beyond which the top is no longer made exact
#: the same, for a repository being bulk-loaded (no postings yet): its files are not all there, so its
#: top need not be exact, but the search must stay fast beside the load: one query of at most this many
LOADING_MAX_ROWS = 1000
IMPACT_AVGDL = 100.0  # the reference length of bm25_impact() (migration 0008)


async def bm25_stats(conn: Conn, repo_ids: list[int], lexes: list[str]) -> Bm25Stats:
    cur = await conn.execute(
        "SELECT (SELECT coalesce(sum(chunks), 0)::bigint FROM bm25_docs WHERE repository_id = ANY(%(repos)s)) AS n, "
        " (SELECT coalesce(sum(total_len), 0)::bigint FROM bm25_docs WHERE repository_id = ANY(%(repos)s)) AS total, "
        " (SELECT coalesce(json_object_agg(lexeme, df), '{}'::json) FROM ("
        "   SELECT lexeme, sum(df)::bigint AS df FROM bm25_terms "
        "   WHERE repository_id = ANY(%(repos)s) AND lexeme = ANY(%(lexes)s) GROUP BY lexeme) t) AS df, "
        " array(SELECT repository_id FROM bm25_bulk WHERE repository_id = ANY(%(repos)s)) AS loading",
        {"repos": repo_ids, "lexes": lexes},
    )
    row = await cur.fetchone()
    n = int(row["n"]) if row else 0
    total = int(row["total"]) if row else 0
    df = {str(k): int(v) for k, v in (row["df"] if row else {}).items()}
    loading = frozenset(int(r) for r in row["loading"]) if row else frozenset()
    return Bm25Stats(chunks=n, avgdl=total / n if n else 1.0, df=df, loading=loading)


async def check_stems(conn: Conn) -> bool:
    """Have the server check the stems of the words this process stemmed and did not have checked yet
    (``core/analysis.py``): one statement, none when every word was checked. Returns whether it
    corrected one (texts analysed before must be analysed again)."""
    words = analysis.unchecked_words()
    if not words:
        return False
    cur = await conn.execute(
        "SELECT coalesce(ts_lexize('english_stem', t.w)::text[], '{}') AS lex "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS t(w, n) ORDER BY t.n",
        (words,),
    )
    rows = await cur.fetchall()
    stems = {w: (r["lex"][0] if r["lex"] else "") for w, r in zip(words, rows, strict=True)}
    return bool(analysis.record_server_stems(stems))


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


def retrieved_chunks(rows: Sequence[dict[str, Any]], score: str) -> list[RetrievedChunk]:
    return [
        RetrievedChunk(
            r["id"], r["file_id"], r["path"], r["symbol"], r["kind"], r["language"], float(r[score]), int(r["lines"])
        )
        for r in rows
    ]


def impact_bound(impact: float, avgdl: float) -> float:
    """The most BM25's tf part can be, at the real ``avgdl``, for a posting whose impact (its tf part at
    ``IMPACT_AVGDL``, migration 0008) is at most ``impact``. With c = k1 (1 - b), d = k1 b and
    r = IMPACT_AVGDL / avgdl, the tf part is 1 / ((1 - r)(1 + c / tf) + r / impact): increasing in the
    impact, and largest at tf 1 when r > 1."""
    if impact <= 0.0:
        return 0.0
    r = IMPACT_AVGDL / avgdl
    c = K1 * (1 - B)
    denominator = (1 - r) * (1 + c if r > 1 else 1.0) + r / impact
    return 1.0 if denominator <= 1.0 else 1.0 / denominator


async def keyword_candidates_gin(
    conn: Conn, repo_ids: list[int], filters: SearchFilters, lexes: list[str], limit: int
) -> list[RetrievedChunk]:
    """The exact ``limit`` best chunks by BM25, scoring GIN candidates from their tsvectors (the module's
    docstring: rarest lexemes first, MaxScore). Slower on large indexes; used when filters leave too few
    chunks among the postings read, and as the reference of ``bench/keyword_latency.py``."""
    stats = await bm25_stats(conn, repo_ids, lexes)
    present = sorted((lex for lex in lexes if stats.df.get(lex, 0) > 0), key=lambda x: (stats.df[x], x))
    if not present or not stats.chunks:
        return []
    rows, _ = await gin_top(conn, repo_ids, filters, present, stats, limit, MAX_ROWS)
    return retrieved_chunks(rows, "score")


async def gin_top(
    conn: Conn,
    repo_ids: list[int],
    filters: SearchFilters,
    present: list[str],
    stats: Bm25Stats,
    limit: int,
    max_rows: int,
    *,
    from_text: bool = False,
    with_text: bool = False,
) -> tuple[list[dict[str, Any]], bool]:
    """The best rows over the GIN candidates (MaxScore, ``keyword_candidates_gin``), and whether exact:
    more lexemes select candidates until the top is exact or they would select over ``max_rows``.
    ``from_text``: the candidates are found by the GIN index only, never by reading the repositories'
    rows, and at most ``max_rows`` of them are scored (a query of common words only, such as "return
    value", would otherwise score every chunk holding its rarer word). A repository that grew from
    nothing during a bulk load is planned from statistics that predate it, and a plan that reads its
    rows to test each tsvector (priced as one cheap operator) costs a pass over all its chunks: 30 ms
    for 10,000 chunks instead of 1-3 ms (docs/benchmarks/search-latency.md)."""
    idf = [stats.idf(lex) for lex in present]
    conds, params = conditions(filters)
    where = sql.SQL(" AND ").join(
        [
            sql.SQL("c.repository_id + 0 = ANY(%(repos)s)" if from_text else "c.repository_id = ANY(%(repos)s)"),
            sql.SQL("c.tsv @@ %(tsq)s::tsquery"),
            *conds,
        ]
    )
    stmt = sql.SQL(
        "SELECT c.id, c.file_id, f.path, c.symbol, c.kind, c.language, c.end_line - c.start_line + 1 AS lines, "
        " (SELECT sum(bm25(q.idf, cardinality(u.positions), c.doc_len, %(avgdl)s)) "
        "  FROM unnest(ts_filter(setweight(c.tsv, 'A', %(lex)s), '{{a}}')) AS u "
        "  JOIN unnest(%(lex)s::text[], %(idf)s::float8[]) AS q(lexeme, idf) ON q.lexeme = u.lexeme"
        " ) AS score, CASE WHEN %(with_text)s THEN c.content END AS content "
        "FROM {source} ORDER BY score DESC, c.id LIMIT %(k)s"
    ).format(
        source=(
            # at most max_rows candidates are scored, even when the rarest lexeme alone is in more chunks
            sql.SQL(
                "(SELECT c.id FROM chunks c JOIN files f ON f.id = c.file_id WHERE {} LIMIT %(cap)s) cand "
                "JOIN chunks c ON c.id = cand.id JOIN files f ON f.id = c.file_id"
            ).format(where)
            if from_text
            else sql.SQL("chunks c JOIN files f ON f.id = c.file_id WHERE {}").format(where)
        )
    )
    params.update(repos=repo_ids, k=limit, avgdl=stats.avgdl, lex=present, idf=idf, cap=max_rows, with_text=with_text)
    n = selecting_prefix(present, stats, min(ROW_BUDGET, max_rows))
    if from_text:  # until the end of the statements below (an error ends the transaction, and it)
        await conn.execute("SET LOCAL enable_seqscan = off")
    while True:
        cur = await conn.execute(stmt, {**params, "tsq": tsquery_any(present[:n])})
        rows = await cur.fetchall()
        rest_bound = sum(idf[n:])  # best score of a chunk holding none of the selecting lexemes
        capped = from_text and sum(stats.df[lex] for lex in present[:n]) > max_rows
        if capped:
            exact = False
            break
        if n == len(present) or (len(rows) >= limit and float(rows[-1]["score"]) >= rest_bound):
            exact = True
            break
        if sum(stats.df[lex] for lex in present[: n + 1]) > max_rows:
            exact = False
            break
        n += 1
    if from_text:
        await conn.execute("RESET enable_seqscan")
    return rows, exact


async def chunk_contexts(conn: Conn, chunk_ids: list[int], lines: int) -> dict[int, ChunkContext]:
    """Stored text of these chunks and up to ``lines`` lines of the file around each. The lines around
    come from the neighbouring chunks (every non-blank line of a file is in exactly one chunk, in
    ``ordinal`` order), so the file's whole text is never read: a line in no chunk is blank."""
    cur = await conn.execute(
        "SELECT c.id, c.start_line, c.end_line, c.content, r.id AS repository_id, r.name AS repository, "
        " f.line_count, "
        " (SELECT coalesce(json_agg(json_build_array(a.start_line, a.content)), '[]'::json) FROM chunks a "
        "  WHERE a.file_id = c.file_id AND a.ordinal BETWEEN c.ordinal - %(n)s AND c.ordinal + %(n)s "
        "   AND a.id <> c.id) AS near "
        "FROM chunks c JOIN files f ON f.id = c.file_id JOIN repositories r ON r.id = c.repository_id "
        "WHERE c.id = ANY(%(ids)s)",
        {"ids": chunk_ids, "n": lines},
    )
    out = {}
    for r in await cur.fetchall():
        text: dict[int, str] = {}
        for first, content in r["near"]:
            for offset, line in enumerate(content.split("\n")):
                text[first + offset] = line
        start, end = r["start_line"], r["end_line"]
        last = min(end + lines, r["line_count"])
        out[r["id"]] = ChunkContext(
            chunk_id=r["id"],
            repository_id=r["repository_id"],
            repository=r["repository"],
            start_line=start,
            end_line=end,
            content=r["content"],
            before="\n".join(text.get(n, "") for n in range(max(start - lines, 1), start)),
            after="\n".join(text.get(n, "") for n in range(end + 1, last + 1)),
        )
    return out
