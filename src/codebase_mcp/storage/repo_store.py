"""SQL for repositories, files, chunks and embeddings. Every value travels as a parameter."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from psycopg import sql

from codebase_mcp.errors import CodebaseError, InvalidInput, NotFound
from codebase_mcp.indexing.languages import language_for
from codebase_mcp.storage.database import Conn

if TYPE_CHECKING:
    from codebase_mcp.indexing.indexer import _Prepared

PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_INDEX_LOCK = 0x686E7377  # advisory lock while creating a model's vector index


def check_project_id(project_id: str) -> str:
    if not PROJECT_ID.match(project_id):
        raise InvalidInput(
            f"Invalid project id {project_id[:80]!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return project_id


async def ensure_project(conn: Conn, project_id: str) -> None:
    check_project_id(project_id)
    await conn.execute("INSERT INTO projects (id) VALUES (%s) ON CONFLICT DO NOTHING", (project_id,))
    await conn.commit()


async def project_exists(conn: Conn, project_id: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM projects WHERE id = %s", (project_id,))
    return await cur.fetchone() is not None


async def ensure_repository(conn: Conn, project_id: str, root_path: str, name: str) -> int:
    cur = await conn.execute(
        "INSERT INTO repositories (project_id, root_path, name) VALUES (%s, %s, %s) "
        "ON CONFLICT (project_id, root_path) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        (project_id, root_path, name),
    )
    row = await cur.fetchone()
    await conn.commit()
    assert row is not None
    return int(row["id"])


async def ensure_model(conn: Conn, name: str, dimension: int) -> int:
    """The id of an embedding model, registering it (and its HNSW index) the first time."""
    cur = await conn.execute(
        "INSERT INTO embedding_models (name, dimension) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
        (name, dimension),
    )
    cur = await conn.execute("SELECT id, dimension FROM embedding_models WHERE name = %s", (name,))
    row = await cur.fetchone()
    assert row is not None
    if row["dimension"] != dimension:
        await conn.rollback()
        raise CodebaseError(
            f"The model {name!r} was recorded with dimension {row['dimension']}, but now gives "
            f"{dimension}. Use another model name for the new model."
        )
    model_id = int(row["id"])
    index = sql.Identifier(f"chunks_hnsw_m{model_id}")
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_INDEX_LOCK,))
    await conn.execute(
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS {} ON chunks USING hnsw ((embedding::vector({})) vector_cosine_ops) "
            "WHERE embedding_model_id = {}"
        ).format(index, sql.Literal(dimension), sql.Literal(model_id))
    )
    await conn.commit()
    return model_id


async def clear_repository(conn: Conn, repo_id: int) -> None:
    await conn.execute("DELETE FROM files WHERE repository_id = %s", (repo_id,))
    await conn.execute("DELETE FROM skipped_files WHERE repository_id = %s", (repo_id,))
    await conn.commit()


async def drop_foreign_embeddings(conn: Conn, repo_id: int, model_id: int) -> int:
    """Forget vectors of other models in this repository: they are re-embedded, never mixed."""
    cur = await conn.execute(
        "UPDATE chunks SET embedding = NULL, embedding_model_id = NULL "
        "WHERE repository_id = %s AND embedding_model_id <> %s",
        (repo_id, model_id),
    )
    await conn.commit()
    return cur.rowcount


async def file_states(conn: Conn, repo_id: int) -> dict[str, tuple[int, int, bytes]]:
    cur = await conn.execute(
        "SELECT path, size_bytes, mtime_ns, content_hash FROM files WHERE repository_id = %s", (repo_id,)
    )
    return {r["path"]: (r["size_bytes"], r["mtime_ns"], bytes(r["content_hash"])) for r in await cur.fetchall()}


async def delete_files(conn: Conn, repo_id: int, paths: Sequence[str]) -> int:
    cur = await conn.execute("DELETE FROM files WHERE repository_id = %s AND path = ANY(%s)", (repo_id, list(paths)))
    await conn.commit()
    return cur.rowcount


@dataclass
class BatchStats:
    files_written: int = 0
    files_touched: int = 0
    files_dropped: int = 0
    chunks_written: int = 0


# Called inside each write transaction with the counts it commits; raises to roll it back (job fencing).
Fence = Callable[[Conn, "BatchStats", int], Awaitable[None]]

_CHUNK_COPY = (
    "COPY chunks (file_id, repository_id, ordinal, start_line, end_line, kind, symbol, language, content, "
    "embed_hash, search_text) FROM STDIN WITH (FORMAT BINARY)"
)
_CHUNK_TYPES = ["bigint", "bigint", "integer", "integer", "integer", "text", "text", "text", "text", "bytea", "text"]


async def bound_statements(conn: Conn, timeout_ms: int) -> None:
    """Inside a batch transaction: no statement may run longer than ``timeout_ms``. A writer paused in
    the middle of a COPY (SIGSTOP) then loses its transaction and its row locks instead of blocking the
    worker that took its job over."""
    if timeout_ms > 0:
        await conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(timeout_ms),))


async def store_batch(
    conn: Conn, repo_id: int, prepared: Sequence[_Prepared], fence: Fence | None = None, timeout_ms: int = 0
) -> BatchStats:
    """Write one batch of read files in one transaction (chunk rows were built before, off the loop)."""
    stats = BatchStats()
    dropped = [p.entry.rel_path for p in prepared if p.skip_reason]
    touched = [p for p in prepared if p.unchanged]
    changed = [p for p in prepared if p.text is not None and not p.unchanged]
    async with conn.transaction():
        await bound_statements(conn, timeout_ms)
        if dropped:
            cur = await conn.execute(
                "DELETE FROM files WHERE repository_id = %s AND path = ANY(%s)", (repo_id, dropped)
            )
            stats.files_dropped = cur.rowcount
        if touched:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "UPDATE files SET size_bytes = %s, mtime_ns = %s WHERE repository_id = %s AND path = %s",
                    [(p.entry.size, p.entry.mtime_ns, repo_id, p.entry.rel_path) for p in touched],
                )
            stats.files_touched = len(touched)
        if changed:
            await conn.execute(
                "DELETE FROM files WHERE repository_id = %s AND path = ANY(%s)",
                (repo_id, [p.entry.rel_path for p in changed]),
            )
            languages = [language_for(p.entry.rel_path) for p in changed]
            cur = await conn.execute(
                "INSERT INTO files (repository_id, path, language, size_bytes, mtime_ns, content_hash, content, "
                "line_count) SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[], "
                "%s::bytea[], %s::text[], %s::integer[]) RETURNING id, path",
                (
                    repo_id,
                    [p.entry.rel_path for p in changed],
                    languages,
                    [p.entry.size for p in changed],
                    [p.entry.mtime_ns for p in changed],
                    [p.content_hash for p in changed],
                    [p.text for p in changed],
                    [(p.text or "").count("\n") + 1 for p in changed],
                ),
            )
            ids = {r["path"]: int(r["id"]) for r in await cur.fetchall()}
            async with conn.cursor() as copy_cur, copy_cur.copy(_CHUNK_COPY) as copy:
                copy.set_types(_CHUNK_TYPES)
                for p in changed:
                    file_id = ids[p.entry.rel_path]
                    for row in p.rows:
                        await copy.write_row((file_id, repo_id, *row))
                        stats.chunks_written += 1
            stats.files_written = len(changed)
        if fence is not None:
            await fence(conn, stats, 0)
    return stats


async def replace_skipped(conn: Conn, repo_id: int, skipped: Sequence[tuple[str, str]]) -> None:
    async with conn.transaction():
        await conn.execute("DELETE FROM skipped_files WHERE repository_id = %s", (repo_id,))
        async with (
            conn.cursor() as cur,
            cur.copy("COPY skipped_files (repository_id, path, reason) FROM STDIN WITH (FORMAT BINARY)") as copy,
        ):
            copy.set_types(["bigint", "text", "text"])
            seen: set[str] = set()
            for path, reason in skipped:
                if path not in seen:
                    seen.add(path)
                    await copy.write_row((repo_id, path, reason))


async def mark_indexed(conn: Conn, repo_id: int) -> None:
    await conn.execute("UPDATE repositories SET last_indexed_at = now() WHERE id = %s", (repo_id,))
    await conn.commit()


async def count_unembedded(conn: Conn, repo_id: int) -> int:
    cur = await conn.execute(
        "SELECT count(*) AS n FROM chunks WHERE repository_id = %s AND embedding IS NULL", (repo_id,)
    )
    row = await cur.fetchone()
    await conn.commit()
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


async def unembedded_batch(conn: Conn, repo_id: int, limit: int) -> list[tuple[int, bytes, str, str | None, str]]:
    cur = await conn.execute(
        "SELECT c.id, c.embed_hash, f.path, c.symbol, c.content FROM chunks c JOIN files f ON f.id = c.file_id "
        "WHERE c.repository_id = %s AND c.embedding IS NULL ORDER BY c.id LIMIT %s",
        (repo_id, limit),
    )
    rows = await cur.fetchall()
    await conn.commit()
    return [(int(r["id"]), bytes(r["embed_hash"]), r["path"], r["symbol"], r["content"]) for r in rows]


async def add_to_cache(conn: Conn, model_id: int, hashes: Sequence[bytes], vectors: npt.NDArray[np.float32]) -> None:
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO embedding_cache (model_id, embed_hash, embedding) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            [(model_id, h, v) for h, v in zip(hashes, vectors, strict=True)],
        )


async def find_repository(conn: Conn, project_id: str, ref: str) -> dict[str, Any]:
    """A repository of a project by id, path or name."""
    cur = await conn.execute(
        "SELECT * FROM repositories WHERE project_id = %s AND (id::text = %s OR root_path = %s OR name = %s) "
        "ORDER BY id",
        (project_id, ref, ref, ref),
    )
    rows = await cur.fetchall()
    if not rows:
        raise NotFound(f"No repository {ref!r} in project {project_id!r}. List them with `codebase-mcp repos`.")
    if len(rows) > 1:
        raise InvalidInput(f"{ref!r} names several repositories; use the id or the full path.")
    return dict(rows[0])


async def list_repositories(conn: Conn, project_id: str | None) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT r.id, r.project_id, r.name, r.root_path, r.last_indexed_at, "
        " (SELECT count(*) FROM files f WHERE f.repository_id = r.id) AS files, "
        " (SELECT count(*) FROM chunks c WHERE c.repository_id = r.id) AS chunks, "
        " (SELECT count(*) FROM chunks c WHERE c.repository_id = r.id AND c.embedding IS NOT NULL) AS embedded, "
        " (SELECT count(*) FROM skipped_files s WHERE s.repository_id = r.id) AS skipped "
        "FROM repositories r WHERE (%(p)s::text IS NULL OR r.project_id = %(p)s) ORDER BY r.project_id, r.id",
        {"p": project_id},
    )
    return [dict(r) for r in await cur.fetchall()]


async def forget_repository(conn: Conn, repo_id: int) -> None:
    await conn.execute("DELETE FROM repositories WHERE id = %s", (repo_id,))
    await conn.commit()


async def skipped_files(conn: Conn, repo_id: int) -> list[tuple[str, str]]:
    cur = await conn.execute(
        "SELECT path, reason FROM skipped_files WHERE repository_id = %s ORDER BY reason, path", (repo_id,)
    )
    return [(r["path"], r["reason"]) for r in await cur.fetchall()]
