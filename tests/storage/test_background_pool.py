"""A job's writes go through a pool whose PostgreSQL sessions run at a lower CPU priority."""

from __future__ import annotations

import os

from codebase_mcp.settings import Settings
from codebase_mcp.storage.database import BACKGROUND_NICE, Database, background_database


async def _backend_pid(db: Database) -> int:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT pg_backend_pid() AS pid")
        row = await cur.fetchone()
    assert row is not None
    return int(row["pid"])


async def test_background_sessions_are_reniced_and_the_main_pool_is_not(db: Database, settings: Settings) -> None:
    background = await background_database(db, settings)
    try:
        pid = await _backend_pid(background)
        assert os.getpriority(os.PRIO_PROCESS, pid) == BACKGROUND_NICE
        # the same database, written through either pool
        async with background.connection() as conn:
            cur = await conn.execute("SELECT count(*) AS n FROM schema_migrations")
            row = await cur.fetchone()
        assert row is not None and row["n"] >= 9
    finally:
        await background.close()
    assert os.getpriority(os.PRIO_PROCESS, await _backend_pid(db)) < BACKGROUND_NICE
