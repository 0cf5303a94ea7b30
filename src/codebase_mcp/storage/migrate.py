"""Versioned schema migrations: numbered SQL files in ``migrations/``, applied in order, each in its
own transaction, under an advisory lock so that concurrent processes apply each file once."""

from __future__ import annotations

import logging
import re
from importlib import resources

import psycopg

from codebase_mcp.storage import locks

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def available_migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for each migration shipped with the package, in order."""
    found = []
    for entry in resources.files("codebase_mcp.storage.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def _missing(conn: psycopg.AsyncConnection[object]) -> list[int]:
    cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
    row = await cur.fetchone()
    wanted = [version for version, _, _ in available_migrations()]
    if not row or not row[0]:  # type: ignore[index]
        return wanted
    cur = await conn.execute("SELECT version FROM schema_migrations")
    done = {r[0] for r in await cur.fetchall()}  # type: ignore[index]
    return [v for v in wanted if v not in done]


async def migrate(conn: psycopg.AsyncConnection[object]) -> list[str]:
    """Apply the migrations this database lacks; return the names applied. ``conn`` must be in
    autocommit mode (each migration gets its own transaction)."""
    applied: list[str] = []
    if not await _missing(conn):
        return applied  # up to date: no lock, no write (so a read-only database still opens)
    await conn.execute("SELECT pg_advisory_lock(%s)", (locks.MIGRATIONS,))
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT version FROM schema_migrations")
        done = {row[0] for row in await cur.fetchall()}  # type: ignore[index]
        for version, name, sql in available_migrations():
            if version in done:
                continue
            log.info("applying migration %s", name)
            async with conn.transaction():
                await conn.execute(sql.encode())
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            applied.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (locks.MIGRATIONS,))
    return applied
