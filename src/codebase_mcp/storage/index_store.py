"""Index writes: projects, repositories, embedding models, files with their chunks, skipped files and
vectors. Every value travels as a parameter; callers own the transaction (storage/database.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import postgres, sql
from psycopg.abc import Buffer
from psycopg.adapt import Dumper
from psycopg.pq import Format

from codebase_mcp.core import analysis
from codebase_mcp.core.validation import check_project_id
from codebase_mcp.domain import BatchStats, ChunkRow, FileState, FileWrite, PendingChunk, SkippedFile
from codebase_mcp.errors import Conflict
from codebase_mcp.storage import locks, search_store
from codebase_mcp.storage.database import TO_EMBED, Conn

CHUNKS_PER_COPY = 1000  # chunks per COPY statement (the BM25 triggers' work per statement)
POSTINGS_PER_BLOCK = 128  # postings per row of bm25_blocks (migration 0014)
FILES_PER_DELETE = 25  # files per DELETE statement (their chunks' postings go with them)
TSVECTOR_OID = postgres.types["tsvector"].oid

# Chunks are copied straight into ``chunks`` with their tsvector and BM25 length, analysed in Python
# (core/analysis.py, the same as to_tsvector('english', search_text)): PostgreSQL parses no text. The
# tsvector travels in its binary format (``ChunkRow.tsv``). The columns are the values written for
# each ChunkRow below, in order.
_CHUNK_COLUMNS = (
    "file_id, repository_id, ordinal, start_line, end_line, kind, symbol, language, content, embed_hash, "
    "search_text, tsv, doc_len, embed_priority"
)
_CHUNK_COPY = f"COPY chunks ({_CHUNK_COLUMNS}) FROM STDIN WITH (FORMAT BINARY)"
#: A repository's postings as blocks (migration 0014): each lexeme's postings numbered in read order
#: (impact descending, then chunk id), cut every ``per_block``; a block's key is its last posting. The
#: lexeme is compared in the "C" collation here only to sort faster (grouping is the same).
_BUILD_BLOCKS = (
    "INSERT INTO bm25_blocks (repository_id, lexeme, last_impact, last_chunk, chunk_ids, tfs, doc_lens, impacts) "
    "SELECT %(repo)s, lexeme, min(impact), (array_agg(chunk_id ORDER BY n DESC))[1], "
    " array_agg(chunk_id ORDER BY n), array_agg(tf ORDER BY n), array_agg(doc_len ORDER BY n), "
    " array_agg(impact ORDER BY n) "
    "FROM (SELECT lexeme, chunk_id, tf, doc_len, impact, "
    "       row_number() OVER (PARTITION BY lexeme ORDER BY impact DESC, chunk_id) - 1 AS n "
    '      FROM (SELECT u.lexeme COLLATE "C" AS lexeme, c.id AS chunk_id, '
    "             cardinality(u.positions)::smallint AS tf, c.doc_len, "
    "             bm25_impact(cardinality(u.positions), c.doc_len) AS impact "
    "            FROM chunks c, unnest(c.tsv) u WHERE c.repository_id = %(repo)s "
    '             AND (%(start)s::text IS NULL OR u.lexeme COLLATE "C" >= %(start)s) '
    '             AND (%(stop)s::text IS NULL OR u.lexeme COLLATE "C" < %(stop)s)) p) x '
    "GROUP BY lexeme, n / %(per_block)s"
)
_CHUNK_TYPES = [
    "bigint",
    "bigint",
    "integer",
    "integer",
    "integer",
    "text",
    "text",
    "text",
    "text",
    "bytea",
    "text",
    "tsvector",
    "integer",
    "smallint",
]


class _EncodedTsvector:
    """Stands for the tsvector column's values (already encoded bytes) when registering the dumper."""


class _TsvectorDumper(Dumper):
    """A tsvector already in PostgreSQL's binary format (``analysis.tsvector_binary``), passed as is."""

    format = Format.BINARY
    oid = TSVECTOR_OID

    def dump(self, obj: Any) -> Buffer:
        return bytes(obj)


async def ensure_project(conn: Conn, project_id: str) -> None:
    check_project_id(project_id)
    await conn.execute("INSERT INTO projects (id) VALUES (%s) ON CONFLICT DO NOTHING", (project_id,))


async def ensure_repository(conn: Conn, project_id: str, root_path: str, name: str, host: str) -> int:
    """The repository's id, created on first use; ``host`` is the machine whose files are indexed (the
    one whose daemon watches them)."""
    cur = await conn.execute(
        "INSERT INTO repositories (project_id, root_path, name, host) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (project_id, root_path) DO UPDATE SET name = EXCLUDED.name, host = EXCLUDED.host "
        "RETURNING id",
        (project_id, root_path, name, host),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["id"])


async def ensure_model(conn: Conn, name: str, dimension: int) -> int:
    """The id of an embedding model, registering it (and its HNSW index) the first time."""
    await conn.execute(
        "INSERT INTO embedding_models (name, dimension) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
        (name, dimension),
    )
    cur = await conn.execute("SELECT id, dimension FROM embedding_models WHERE name = %s", (name,))
    row = await cur.fetchone()
    assert row is not None
    if row["dimension"] != dimension:
        raise Conflict(
            f"The model {name!r} was recorded with dimension {row['dimension']}, but now gives "
            f"{dimension}. Use another model name for the new model."
        )
    model_id = int(row["id"])
    index = sql.Identifier(f"chunks_hnsw_m{model_id}")
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (locks.VECTOR_INDEX,))
    await conn.execute(
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS {} ON chunks USING hnsw ((embedding::vector({})) vector_cosine_ops) "
            "WHERE embedding_model_id = {}"
        ).format(index, sql.Literal(dimension), sql.Literal(model_id))
    )
    return model_id


async def model_id(conn: Conn, name: str) -> int | None:
    cur = await conn.execute("SELECT id FROM embedding_models WHERE name = %s", (name,))
    row = await cur.fetchone()
    return int(row["id"]) if row else None


async def begin_bulk_postings(conn: Conn, repo_id: int) -> None:
    """From now on the repository's postings are not kept per statement; its keyword searches take the
    GIN path until :func:`end_bulk_postings` (migration 0009). Its postings are dropped at once."""
    await conn.execute(
        "INSERT INTO bm25_bulk (repository_id) VALUES (%s) ON CONFLICT (repository_id) DO NOTHING", (repo_id,)
    )
    await drop_postings(conn, repo_id)


async def bulk_postings_pending(conn: Conn, repo_id: int) -> bool:
    """Whether a bulk load of the repository began and its postings were not built yet."""
    cur = await conn.execute("SELECT EXISTS (SELECT 1 FROM bm25_bulk WHERE repository_id = %s) AS pending", (repo_id,))
    row = await cur.fetchone()
    return bool(row and row["pending"])


async def drop_postings(conn: Conn, repo_id: int) -> None:
    """Delete the repository's postings, blocks and delta, if it is on the bulk list (a run that lost
    its job to another, which built them and took the repository off the list, deletes nothing)."""
    for table in ("bm25_postings", "bm25_blocks"):
        await conn.execute(
            sql.SQL(
                "DELETE FROM {} WHERE repository_id = %(repo)s "
                "AND EXISTS (SELECT 1 FROM bm25_bulk WHERE repository_id = %(repo)s)"
            ).format(sql.Identifier(table)),
            {"repo": repo_id},
        )


async def lexeme_splits(conn: Conn, repo_id: int, parts: int) -> list[str]:
    """The first lexeme of each but the first of ``parts`` runs of the repository's lexemes holding
    about as many postings each (in the "C" collation, as :func:`build_blocks` compares them); fewer
    when a lexeme holds more than a run's share."""
    cur = await conn.execute(
        'SELECT DISTINCT ON (part) lexeme COLLATE "C" AS lexeme FROM ('
        ' SELECT lexeme, floor(%(parts)s * (sum(df) OVER (ORDER BY lexeme COLLATE "C") - df)'
        "  / sum(df) OVER ())::int AS part FROM bm25_terms WHERE repository_id = %(repo)s) x "
        'WHERE part > 0 ORDER BY part, lexeme COLLATE "C"',
        {"repo": repo_id, "parts": parts},
    )
    return [str(r["lexeme"]) for r in await cur.fetchall()]


async def build_blocks(conn: Conn, repo_id: int, start: str | None, stop: str | None) -> None:
    """Build the blocks of the repository's lexemes from ``start`` to before ``stop`` ("C" collation;
    None: no bound) from its chunks, in one statement (no statement timeout)."""
    await conn.execute("SELECT set_config('statement_timeout', '0', true), set_config('work_mem', '64MB', true)")
    await conn.execute(
        _BUILD_BLOCKS,
        {"repo": repo_id, "per_block": POSTINGS_PER_BLOCK, "start": start, "stop": stop},
    )


async def end_bulk_postings(conn: Conn, repo_id: int) -> int:
    """Take the repository off the bulk list (its postings built); returns its number of postings."""
    cur = await conn.execute("SELECT coalesce(sum(df), 0) AS n FROM bm25_terms WHERE repository_id = %s", (repo_id,))
    row = await cur.fetchone()
    await conn.execute("DELETE FROM bm25_bulk WHERE repository_id = %s", (repo_id,))
    return int(row["n"]) if row else 0


async def clear_repository(conn: Conn, repo_id: int) -> None:
    await conn.execute("DELETE FROM files WHERE repository_id = %s", (repo_id,))
    await conn.execute("DELETE FROM skipped_files WHERE repository_id = %s", (repo_id,))


async def drop_foreign_embeddings(conn: Conn, repo_id: int, model_id: int) -> int:
    """Forget vectors of other models in this repository: they are re-embedded, never mixed."""
    cur = await conn.execute(
        "UPDATE chunks SET embedding = NULL, embedding_model_id = NULL "
        "WHERE repository_id = %s AND embedding_model_id <> %s",
        (repo_id, model_id),
    )
    return cur.rowcount


async def file_states(conn: Conn, repo_id: int) -> dict[str, FileState]:
    cur = await conn.execute(
        "SELECT path, size_bytes, mtime_ns, content_hash FROM files WHERE repository_id = %s", (repo_id,)
    )
    return {
        r["path"]: FileState(r["size_bytes"], r["mtime_ns"], bytes(r["content_hash"])) for r in await cur.fetchall()
    }


async def delete_files(conn: Conn, repo_id: int, paths: Sequence[str]) -> int:
    cur = await conn.execute("DELETE FROM files WHERE repository_id = %s AND path = ANY(%s)", (repo_id, list(paths)))
    return cur.rowcount


async def bound_statements(conn: Conn, timeout_ms: int) -> None:
    """Inside a batch transaction: no statement may run longer than ``timeout_ms``. A writer paused in
    the middle of a COPY (SIGSTOP) then loses its transaction and its row locks instead of blocking the
    worker that took its job over."""
    if timeout_ms > 0:
        await conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(timeout_ms),))


def _groups(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def current_analysis(write: FileWrite) -> FileWrite:
    """``write`` with its chunks analysed again where they hold a word whose stem the server corrected
    after they were analysed (core/analysis.py; rare)."""
    if all(c.lexicon == analysis.generation() for c in write.chunks):
        return write
    chunks = []
    for c in write.chunks:
        if analysis.holds_any(c.search_text, analysis.corrected_since(c.lexicon)):
            analysed = analysis.analyse(c.search_text)
            c = replace(c, tsv=analysis.tsvector_binary(analysed), doc_len=analysed.doc_len)
        chunks.append(c)
    return replace(write, chunks=tuple(chunks))


def _copy_values(file_id: int, repo_id: int, c: ChunkRow) -> tuple[Any, ...]:
    return (
        file_id,
        repo_id,
        c.ordinal,
        c.start_line,
        c.end_line,
        c.kind,
        c.symbol,
        c.language,
        c.content,
        c.embed_hash,
        c.search_text,
        c.tsv,
        c.doc_len,
        c.embed_priority,
    )


async def store_batch(conn: Conn, repo_id: int, writes: Sequence[FileWrite], timeout_ms: int = 0) -> BatchStats:
    """Write one batch of read files (chunk rows were built before, off the event loop)."""
    dropped = [w.path for w in writes if w.skip_reason]
    touched = [w for w in writes if w.unchanged]
    changed = [w for w in writes if w.changed]
    files_dropped = chunks_written = 0
    await bound_statements(conn, timeout_ms)
    for group in _groups(dropped, FILES_PER_DELETE):
        cur = await conn.execute("DELETE FROM files WHERE repository_id = %s AND path = ANY(%s)", (repo_id, group))
        files_dropped += cur.rowcount
    if touched:
        async with conn.cursor() as cur:
            await cur.executemany(
                "UPDATE files SET size_bytes = %s, mtime_ns = %s WHERE repository_id = %s AND path = %s",
                [(w.size, w.mtime_ns, repo_id, w.path) for w in touched],
            )
    if changed:
        for group in _groups([w.path for w in changed], FILES_PER_DELETE):
            await conn.execute("DELETE FROM files WHERE repository_id = %s AND path = ANY(%s)", (repo_id, group))
        cur = await conn.execute(
            "INSERT INTO files (repository_id, path, language, size_bytes, mtime_ns, content_hash, content, "
            "line_count) SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[], "
            "%s::bytea[], %s::text[], %s::integer[]) RETURNING id, path",
            (
                repo_id,
                [w.path for w in changed],
                [w.language for w in changed],
                [w.size for w in changed],
                [w.mtime_ns for w in changed],
                [w.content_hash for w in changed],
                [w.text for w in changed],
                [(w.text or "").count("\n") + 1 for w in changed],
            ),
        )
        ids = {r["path"]: int(r["id"]) for r in await cur.fetchall()}
        # the server checks the stems of words new to this process; a chunk analysed before it corrected
        # one is analysed again (core/analysis.py)
        await search_store.check_stems(conn)
        pending = [current_analysis(w) for w in changed if w.chunks]
        # one COPY per group of files of at most CHUNKS_PER_COPY chunks: the BM25 triggers run once per
        # statement, and each statement stays well inside the batch's statement timeout
        while pending:
            statement: list[FileWrite] = []
            size = 0
            while pending and (not statement or size + len(pending[0].chunks) <= CHUNKS_PER_COPY):
                size += len(pending[0].chunks)
                statement.append(pending.pop(0))
            async with conn.cursor() as copy_cur:
                copy_cur.adapters.register_dumper(_EncodedTsvector, _TsvectorDumper)
                async with copy_cur.copy(_CHUNK_COPY) as copy:
                    copy.set_types(_CHUNK_TYPES)
                    for w in statement:
                        file_id = ids[w.path]
                        for chunk in w.chunks:
                            await copy.write_row(_copy_values(file_id, repo_id, chunk))
                            chunks_written += 1
    return BatchStats(
        files_written=len(changed),
        files_touched=len(touched),
        files_dropped=files_dropped,
        chunks_written=chunks_written,
    )


async def replace_skipped(conn: Conn, repo_id: int, skipped: Sequence[SkippedFile]) -> None:
    await conn.execute("DELETE FROM skipped_files WHERE repository_id = %s", (repo_id,))
    async with (
        conn.cursor() as cur,
        cur.copy("COPY skipped_files (repository_id, path, reason) FROM STDIN WITH (FORMAT BINARY)") as copy,
    ):
        copy.set_types(["bigint", "text", "text"])
        seen: set[str] = set()
        for item in skipped:
            if item.path not in seen:
                seen.add(item.path)
                await copy.write_row((repo_id, item.path, item.reason))


async def analyze_chunks(conn: Conn, *, rows_only: bool = False) -> None:
    """Fresh planner statistics for ``chunks``; skipped when another session is analysing it.
    ``rows_only``: the row count and the columns that say which rows a repository, file or model has,
    not the costly statistics of the texts (a third of the time on a large table)."""
    if rows_only:
        await conn.execute("ANALYZE (SKIP_LOCKED) chunks (repository_id, file_id, embedding_model_id)")
    else:
        await conn.execute("ANALYZE (SKIP_LOCKED) chunks")


async def changes_pending_at(conn: Conn, repo_id: int) -> datetime | None:
    """The latest file change the watcher saw and no run stored yet (migration 0010); a run reads it
    before its scan, so every change seen up to then is on disk when the scan looks."""
    cur = await conn.execute("SELECT changes_pending_at FROM repositories WHERE id = %s", (repo_id,))
    row = await cur.fetchone()
    return row["changes_pending_at"] if row else None


async def changes_stored(conn: Conn, repo_id: int, seen: datetime) -> None:
    """A run that read ``seen`` before its scan has stored its files: the repository is no longer behind,
    unless the watcher saw a change since (a new value, kept for the next run)."""
    await conn.execute(
        "UPDATE repositories SET changes_pending_at = NULL WHERE id = %s AND changes_pending_at = %s",
        (repo_id, seen),
    )


async def mark_indexed(conn: Conn, repo_id: int) -> None:
    await conn.execute("UPDATE repositories SET last_indexed_at = now() WHERE id = %s", (repo_id,))


async def coverage(conn: Conn, repo_id: int) -> tuple[int, int]:
    """``(chunks with a vector, chunks to embed)`` of a repository (keyword-only chunks count in neither)."""
    cur = await conn.execute(
        "SELECT count(*) FILTER (WHERE embedding IS NOT NULL) AS embedded, count(*) AS total "
        f"FROM chunks WHERE repository_id = %s AND {TO_EMBED}",
        (repo_id,),
    )
    row = await cur.fetchone()
    return (int(row["embedded"]), int(row["total"])) if row else (0, 0)


async def count_unembedded(conn: Conn, repo_id: int) -> int:
    cur = await conn.execute(
        f"SELECT count(*) AS n FROM chunks WHERE repository_id = %s AND embedding IS NULL AND {TO_EMBED}", (repo_id,)
    )
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def fill_from_cache(conn: Conn, repo_id: int, model_id: int, chunk_ids: list[int] | None) -> int:
    """Give chunks that lack a vector the cached vector of their text; return how many got one."""
    query = (
        "UPDATE chunks c SET embedding = ec.embedding, embedding_model_id = ec.model_id "
        "FROM embedding_cache ec WHERE c.repository_id = %s AND c.embedding IS NULL "
        "AND ec.model_id = %s AND ec.embed_hash = c.embed_hash"
    )
    params: tuple[Any, ...] = (repo_id, model_id)
    if chunk_ids is not None:
        query += " AND c.id = ANY(%s)"
        params += (chunk_ids,)
    cur = await conn.execute(query, params)
    return cur.rowcount


async def unembedded_batch(conn: Conn, repo_id: int, limit: int, exclude: Sequence[int] = ()) -> list[PendingChunk]:
    """The next chunks to embed, most useful first (``ChunkRow.embed_priority``; partial index
    ``chunks_embed_queue``), leaving out ``exclude`` (the batch being embedded now)."""
    cur = await conn.execute(
        "SELECT c.id, c.embed_hash, f.path, c.symbol, c.content FROM chunks c JOIN files f ON f.id = c.file_id "
        f"WHERE c.repository_id = %s AND c.embedding IS NULL AND c.{TO_EMBED} AND NOT (c.id = ANY(%s)) "
        "ORDER BY c.embed_priority, c.id LIMIT %s",
        (repo_id, list(exclude), limit),
    )
    return [
        PendingChunk(int(r["id"]), bytes(r["embed_hash"]), r["path"], r["symbol"], r["content"])
        for r in await cur.fetchall()
    ]


async def add_to_cache(conn: Conn, model_id: int, hashes: Sequence[bytes], vectors: npt.NDArray[np.float32]) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO embedding_cache (model_id, embed_hash, embedding) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            [(model_id, h, v) for h, v in zip(hashes, vectors, strict=True)],
        )
