"""Connecting to PostgreSQL: the embedded server by default, an external one with DATABASE_URL.

``open_database`` makes sure the database exists, that pgvector is installed, and that the schema is
migrated, then returns a connection pool whose connections know the ``vector`` type.

The transaction rule, the same everywhere: one ``async with db.connection() as conn:`` block is one
transaction, committed when the block ends normally and rolled back when it raises. The store
modules never commit or roll back; their callers decide how much work one transaction holds. Driver
errors leave the block translated into our error types (``translate``), so no other package needs to
know psycopg.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from codebase_mcp.core.identity import application_name
from codebase_mcp.domain import KEYWORD_ONLY
from codebase_mcp.errors import (
    CodebaseError,
    DatabaseFull,
    DatabaseMisconfigured,
    DatabaseReadOnly,
    DatabaseUnavailable,
)
from codebase_mcp.settings import Settings
from codebase_mcp.storage.embedded import DATABASE_NAME, database_uri, restart_if_stopped, start_embedded
from codebase_mcp.storage.migrate import migrate

log = logging.getLogger(__name__)

#: The chunks meant to have a vector: all but the keyword-only ones (``domain.KEYWORD_ONLY``), in SQL.
TO_EMBED = f"embed_priority < {KEYWORD_ONLY}"

Conn = psycopg.AsyncConnection[dict[str, Any]]


@dataclass
class Database:
    """A migrated database and a pool of connections to it."""

    url: str
    pool: AsyncConnectionPool[Conn]
    embedded: bool
    home: Path | None = None
    _recovering: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    _last_recovery: float = field(default=0.0, repr=False)
    _watchdog: asyncio.Task[None] | None = field(default=None, repr=False)

    def watch_embedded(self, every: float = 1.0) -> None:
        """Check every second that the embedded server still runs and start it again if not, so that
        requests waiting on the pool get a connection as soon as it is back."""
        if self.embedded and self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(self._watch(every))

    async def _watch(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            await self.recover()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        """A pooled connection whose block is one transaction (see the module's rule)."""
        try:
            async with self.pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise translate(exc) from exc

    @asynccontextmanager
    async def session_lock(
        self, space: int, key: int, *, give_up: Callable[[], bool] = lambda: False, poll: float = 0.2
    ) -> AsyncIterator[None]:
        """Hold PostgreSQL's advisory lock ``(space, key)`` for the block, across processes and
        machines: waits (polling, so ``give_up`` is honoured; it raises or returns True to stop
        waiting, which raises ``TimeoutError``) while another session holds it. The lock belongs to
        one pooled connection kept for the block, outside any transaction; it is released at the end,
        or by PostgreSQL if this process dies."""
        try:
            async with self.pool.connection() as conn:
                await conn.set_autocommit(True)
                try:
                    while True:
                        cur = await conn.execute("SELECT pg_try_advisory_lock(%s, %s) AS ok", (space, key))
                        row = await cur.fetchone()
                        if row is not None and row["ok"]:
                            break
                        if give_up():
                            raise TimeoutError(f"advisory lock ({space}, {key}) is held elsewhere")
                        await asyncio.sleep(poll)
                    try:
                        yield
                    finally:
                        with contextlib.suppress(psycopg.Error):  # a lost session has released it already
                            await conn.execute("SELECT pg_advisory_unlock(%s, %s)", (space, key))
                finally:
                    with contextlib.suppress(psycopg.Error):
                        await conn.set_autocommit(False)
        except psycopg.Error as exc:
            raise translate(exc) from exc

    async def recover(self) -> bool:
        """If the embedded server has stopped, start it again (checked at most twice a second: the
        watchdog calls this every second, a failed tool call at once). External servers are someone
        else's to restart; the pool reconnects by itself once they answer. Returns True when the
        embedded server was restarted."""
        if not self.embedded or self.home is None:
            return False
        async with self._recovering:
            if time.monotonic() - self._last_recovery < 0.5:
                return False
            self._last_recovery = time.monotonic()
            try:
                return await asyncio.to_thread(restart_if_stopped, self.home)
            except Exception as exc:  # reported by the caller's next failure; retried with backoff
                log.warning("could not restart the embedded PostgreSQL: %s", exc)
                return False

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        await self.pool.close()


_DISK_WORDS = ("could not extend file", "could not write", "no space left on device", "file too large")


def write_refused(exc: psycopg.Error) -> CodebaseError | None:
    """A clear error when the database refused to store data because its disk is full or it is
    read-only (PostgreSQL reports a full disk as SQLSTATE 53100, or as "could not extend file" with
    a generic code); None for anything else."""
    diag = exc.diag
    state = exc.sqlstate or ""
    primary = (diag.message_primary or str(exc).strip().splitlines()[0])[:300]
    if (state.startswith("53") and state != "53300") or any(w in primary.lower() for w in _DISK_WORDS):
        return DatabaseFull(
            f"The database could not store more data: {primary}. Free disk space where PostgreSQL keeps "
            "its data (the embedded one: under CODEBASE_MCP_HOME) and index again; what was indexed "
            "before is intact and still searchable, and the next run resumes where this one stopped."
        )
    if state == "25006":
        return DatabaseReadOnly(
            f"The database is read-only: {primary}. Point DATABASE_URL at a writable primary, or turn off "
            "default_transaction_read_only; searching the existing index still works."
        )
    return None


class StorageFailure(Exception):
    """A database error that is neither the user's nor the environment's doing (a bug, most likely):
    reported as an internal error."""


def translate(exc: psycopg.Error) -> Exception:
    """The one place where driver errors become ours: a full or read-only database and a lost
    connection get a message for people; anything else is an internal ``StorageFailure``."""
    refused = write_refused(exc)
    if refused is not None:
        return refused
    if isinstance(exc, psycopg.OperationalError):
        return DatabaseUnavailable(
            "The database is not answering right now (it may be restarting); nothing indexed is lost. "
            f"Retry in a few seconds. ({str(exc).strip()[:200]})"
        )
    return StorageFailure(f"{type(exc).__name__}: {str(exc).strip()[:500]}")


def _describe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the configured database"
    host = info.get("host") or "localhost"
    return f"{info.get('dbname') or '?'} on {host}:{info.get('port') or 5432}"


def _shared_buffers_mb() -> int:
    """A sixteenth of the machine's memory, between PostgreSQL's default 128 MB and 512 MB: a warm hybrid
    search on issue 10's corpus reads its HNSW and postings pages from shared buffers instead of the OS
    cache (p50 16.8-17.2 ms at 128 MB, 15.9-16.0 at 256, 14.0-14.4 at 512, 15.0-15.4 at 1 GB:
    docs/benchmarks/search-latency.md). Pages are only taken as the database is read."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 128
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:  # a container's memory limit, where one is set (cgroup v2, then v1)
            total = min(total, int(Path(limit_file).read_text().strip()))
        except (OSError, ValueError):  # absent, or "max"
            continue
    return max(128, min(512, total // (1 << 20) // 16))


def embedded_server_settings() -> dict[str, int]:
    """What the embedded server is set to (MB), with ALTER SYSTEM at each start. It serves one user's
    local index: its write-ahead log need not hold the 1 GB that PostgreSQL's defaults allow between
    checkpoints (a bulk load left ~600 MB behind in pg_wal for good); checkpoints come sooner during a
    load instead, and crash safety is unchanged (fsync and full-page writes stay on). Since postings
    are stored in blocks (migration 0014) a bulk load writes little WAL besides its chunks: 64 MB
    leaves django's data directory at 278 MB instead of 342 MB, indexed as fast (19.9 s against 20.5 s;
    32 MB: 246 MB, 20.5 s; docs/benchmarks/indexing.md). The WAL sizes apply at once (a reload);
    ``shared_buffers`` from the server's next start."""
    return {"max_wal_size": 64, "min_wal_size": 32, "shared_buffers": _shared_buffers_mb()}


async def _configure_embedded(conn: psycopg.AsyncConnection[Any]) -> None:
    wanted = {name: f"{mb}MB" for name, mb in embedded_server_settings().items()}
    # what the configuration files say (the last line for a name wins), running or awaiting a restart
    cur = await conn.execute(
        "SELECT DISTINCT ON (name) name, setting FROM pg_file_settings WHERE name = ANY(%s) ORDER BY name, seqno DESC",
        (list(wanted),),
    )
    configured = dict(await cur.fetchall())
    changed = [name for name, value in wanted.items() if configured.get(name) != value]
    for name in changed:
        await conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(wanted[name])))
    if changed:
        await conn.execute("SELECT pg_reload_conf()")
        log.info("embedded server settings applied: %s", ", ".join(changed))


async def _ensure_database(server_uri: str, name: str) -> None:
    async with await psycopg.AsyncConnection.connect(server_uri, autocommit=True) as conn:
        await _configure_embedded(conn)
        cur = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if await cur.fetchone() is None:
            # another process may create it first: caught either by the name check (DuplicateDatabase)
            # or, when both commands race, by the catalog's unique index (UniqueViolation)
            with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


VECTOR_EXTENSION = "vector"  # pgvector, as PostgreSQL names it


async def _check_pgvector(conn: psycopg.AsyncConnection[Any], where: str) -> None:
    cur = await conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = %s", (VECTOR_EXTENSION,))
    if await cur.fetchone() is None:
        raise DatabaseMisconfigured(
            f"The PostgreSQL server at {where} does not have the pgvector extension. Install pgvector "
            "on that server (https://github.com/pgvector/pgvector#installation), or unset DATABASE_URL "
            "to use the embedded PostgreSQL that ships with codebase-mcp."
        )


def _configurer(idle_tx_timeout_ms: int) -> Callable[[Conn], Awaitable[None]]:
    async def configure(conn: Conn) -> None:
        await register_vector_async(conn)
        # A process paused or hung inside a transaction (SIGSTOP, a debugger, a frozen VM) must not hold
        # its row locks forever: the server ends such a session, rolling its transaction back.
        # Nearest-vector searches (storage/retrieval.py) read 100 candidates per HNSW layer and keep
        # scanning while filters drop rows, set once per session so that a search's statement needs no
        # SET of its own (the placeholders take effect when pgvector's library loads).
        await conn.execute(
            "SELECT set_config('idle_in_transaction_session_timeout', %s, false), "
            " set_config('hnsw.ef_search', '100', false), set_config('hnsw.iterative_scan', 'relaxed_order', false)",
            (str(idle_tx_timeout_ms),),
        )
        await conn.commit()

    return configure


async def check_idle_connection(conn: Conn) -> None:
    """The pool's check of a connection it hands out. A connection idle in the pool has nothing to read
    unless the server closed it (restarted, or ended the session) or sent it something unasked (a
    notice): its socket is looked at without a round trip, and the server is asked only then; a
    connection found broken is replaced, so a restarted embedded server costs no caller an error."""
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        await AsyncConnectionPool.check_connection(conn)


async def open_database(settings: Settings, *, min_size: int = 1, max_size: int = 8) -> Database:
    if settings.database_url:
        url = settings.database_url
        server_uri = None
    else:
        server_uri = start_embedded(settings.home)
        url = database_uri(server_uri, DATABASE_NAME)
    embedded = server_uri is not None
    where = "the embedded server" if embedded else _describe(url)
    try:
        if server_uri is not None:
            await _ensure_database(server_uri, DATABASE_NAME)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await _check_pgvector(conn, where)
            applied = await migrate(conn)
            if applied:
                log.info("schema migrated: %s", ", ".join(applied))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise DatabaseMisconfigured(
            f"The database user may not set up the schema at {where}: {str(exc).strip().splitlines()[0]}. "
            f"Run `CREATE EXTENSION IF NOT EXISTS {VECTOR_EXTENSION};` once as a superuser in that database, "
            "or connect as its owner."
        ) from exc
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"Cannot connect to PostgreSQL ({where}): {str(exc).strip().splitlines()[0]}. Check "
            + ("DATABASE_URL, or unset it to use the embedded server." if not embedded else "that it runs.")
        ) from exc
    except psycopg.Error as exc:
        raise translate(exc) from exc
    pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "application_name": application_name()},
        configure=_configurer(int(settings.job_heartbeat_timeout_seconds * 1000)),
        open=False,
        check=check_idle_connection,
    )
    try:
        await pool.open(wait=True, timeout=30)
    except psycopg.Error as exc:  # the server went away right after the checks
        await pool.close()
        raise translate(exc) from exc
    database = Database(url=url, pool=pool, embedded=embedded, home=settings.home if embedded else None)
    database.watch_embedded()
    return database
