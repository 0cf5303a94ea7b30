"""Reads and removals of whole repositories and projects, their freshness (the watcher's mark of changes
not yet indexed, and what searches read of it), and the database's own status.
Rows become domain types here; callers own the transaction (storage/database.py)."""

from __future__ import annotations

from typing import Any

from codebase_mcp.core.untrusted import clean
from codebase_mcp.domain import DatabaseStatus, Repository, RepositoryFreshness, RepositoryStats, SkippedFile
from codebase_mcp.errors import InvalidInput, NotFound
from codebase_mcp.storage.database import TO_EMBED, Conn


def _repository(row: dict[str, Any]) -> Repository:
    return Repository(
        id=int(row["id"]),
        project_id=row["project_id"],
        name=row["name"],
        root_path=row["root_path"],
        last_indexed_at=row["last_indexed_at"],
        host=row["host"],
        watch=bool(row["watch"]),
    )


async def project_exists(conn: Conn, project_id: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM projects WHERE id = %s", (project_id,))
    return await cur.fetchone() is not None


async def repository_ids(conn: Conn, project_id: str) -> list[int]:
    cur = await conn.execute("SELECT id FROM repositories WHERE project_id = %s ORDER BY id", (project_id,))
    return [int(r["id"]) for r in await cur.fetchall()]


async def find_repository(conn: Conn, project_id: str, ref: str) -> Repository:
    """A repository of a project by id, path or name."""
    cur = await conn.execute(
        "SELECT id, project_id, name, root_path, last_indexed_at, host, watch FROM repositories "
        "WHERE project_id = %s AND (id::text = %s OR root_path = %s OR name = %s) ORDER BY id",
        (project_id, ref, ref, ref),
    )
    return _repository(one_repository(await cur.fetchall(), project_id, ref))


def one_repository(rows: list[dict[str, Any]], project_id: str, ref: str) -> dict[str, Any]:
    if not rows:
        raise NotFound(f"No repository {ref!r} in project {project_id!r}. List them with `codebase-mcp repos`.")
    if len(rows) > 1:
        raise InvalidInput(f"{ref!r} names several repositories; use the id or the full path.")
    return rows[0]


#: The repositories a search covers (the project's, or the one ``ref`` names: id, path or name), each
#: with its freshness: when it was last indexed, how long ago the watcher saw a file change not stored yet
#: (``changes_pending_at``, migration 0010) and the status of its active job (a queued or running
#: ``index`` job: a running sync says nothing the pending mark does not, and a foreground run is its
#: caller's own). Parameters ``sc_project`` and ``sc_ref``; the search's first statement reads it too
#: (storage/retrieval.py).
SCOPE_ROWS = (
    "SELECT r.id, r.name, r.last_indexed_at, "
    " extract(epoch FROM now() - r.changes_pending_at)::float8 AS changed_ago, j.status::text AS job "
    "FROM repositories r LEFT JOIN LATERAL ("
    " SELECT j.status FROM indexing_jobs j WHERE j.project_id = r.project_id AND j.repo_path = r.root_path "
    " AND j.status IN ('pending', 'running') AND j.kind = 'index' LIMIT 1) j ON true "
    "WHERE r.project_id = %(sc_project)s "
    " AND (%(sc_ref)s::text IS NULL OR r.id::text = %(sc_ref)s OR r.root_path = %(sc_ref)s OR r.name = %(sc_ref)s)"
)


def scope_freshness(rows: list[dict[str, Any]], project_id: str, ref: str | None) -> list[RepositoryFreshness]:
    """``SCOPE_ROWS``' rows as freshness records, in id order; with ``ref``, the one repository it names
    (an error when it names none or several)."""
    rows = sorted(rows, key=lambda r: int(r["id"]))
    if ref is not None:
        rows = [one_repository(rows, project_id, ref)]
    return [
        RepositoryFreshness.read(int(r["id"]), clean(r["name"], 200), r["last_indexed_at"], r["changed_ago"], r["job"])
        for r in rows
    ]


async def search_scope(conn: Conn, project_id: str, ref: str | None) -> list[RepositoryFreshness]:
    """The repositories a search covers, with their freshness (``SCOPE_ROWS``), in one statement."""
    cur = await conn.execute(SCOPE_ROWS, {"sc_project": project_id, "sc_ref": ref})
    return scope_freshness(await cur.fetchall(), project_id, ref)


async def mark_changes_pending(conn: Conn, repo_id: int) -> None:
    """The watcher saw files of the repository change: its index may be behind them until a run that
    starts after this stores its files (``index_store.changes_stored``). Every call writes a new value, so
    a run that read the former one does not clear this one."""
    await conn.execute(
        "UPDATE repositories SET changes_pending_at = "
        " greatest(now(), changes_pending_at + interval '1 microsecond') WHERE id = %s",
        (repo_id,),
    )


async def list_repositories(conn: Conn, project_id: str | None) -> list[RepositoryStats]:
    cur = await conn.execute(
        "SELECT r.id, r.project_id, r.name, r.root_path, r.last_indexed_at, r.host, r.watch, "
        " (SELECT count(*) FROM files f WHERE f.repository_id = r.id) AS files, "
        " (SELECT count(*) FROM chunks c WHERE c.repository_id = r.id) AS chunks, "
        " (SELECT count(*) FROM chunks c WHERE c.repository_id = r.id AND c.embedding IS NOT NULL) AS embedded, "
        f" (SELECT count(*) FROM chunks c WHERE c.repository_id = r.id AND NOT c.{TO_EMBED}) AS keyword_only, "
        " (SELECT count(*) FROM skipped_files s WHERE s.repository_id = r.id) AS skipped "
        "FROM repositories r WHERE (%(p)s::text IS NULL OR r.project_id = %(p)s) ORDER BY r.project_id, r.id",
        {"p": project_id},
    )
    return [
        RepositoryStats(
            _repository(r),
            int(r["files"]),
            int(r["chunks"]),
            int(r["embedded"]),
            int(r["skipped"]),
            int(r["keyword_only"]),
        )
        for r in await cur.fetchall()
    ]


async def watched_repositories(conn: Conn, host: str) -> list[Repository]:
    """Repositories whose files live on ``host`` (or whose host is unknown) and that have not opted out
    of watching, once they have been indexed completely at least once."""
    cur = await conn.execute(
        "SELECT id, project_id, name, root_path, last_indexed_at, host, watch FROM repositories "
        "WHERE watch AND (host IS NULL OR host = %s) AND last_indexed_at IS NOT NULL ORDER BY id",
        (host,),
    )
    return [_repository(r) for r in await cur.fetchall()]


async def set_watch(conn: Conn, repo_id: int, watch: bool) -> None:
    await conn.execute("UPDATE repositories SET watch = %s WHERE id = %s", (watch, repo_id))


async def forget_repository(conn: Conn, repo_id: int) -> None:
    await conn.execute("DELETE FROM repositories WHERE id = %s", (repo_id,))


async def skipped_files(conn: Conn, repo_id: int) -> list[SkippedFile]:
    cur = await conn.execute(
        "SELECT path, reason FROM skipped_files WHERE repository_id = %s ORDER BY reason, path", (repo_id,)
    )
    return [SkippedFile(r["path"], r["reason"]) for r in await cur.fetchall()]


async def database_status(conn: Conn) -> DatabaseStatus:
    cur = await conn.execute(
        "SELECT current_setting('server_version') AS server, "
        " (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector, "
        " (SELECT max(version) FROM schema_migrations) AS schema_version, "
        " (SELECT count(*) FROM projects) AS projects, (SELECT count(*) FROM repositories) AS repositories, "
        " (SELECT count(*) FROM files) AS files, (SELECT count(*) FROM chunks) AS chunks, "
        " (SELECT count(*) FROM chunks WHERE embedding IS NOT NULL) AS embedded, "
        " (SELECT count(*) FROM embedding_cache) AS cached_vectors, "
        " pg_size_pretty(pg_database_size(current_database())) AS size"
    )
    row = await cur.fetchone()
    assert row is not None
    return DatabaseStatus(**row)
