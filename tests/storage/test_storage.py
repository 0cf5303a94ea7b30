from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from codebase_mcp.errors import DatabaseMisconfigured, DatabaseUnavailable
from codebase_mcp.settings import Settings
from codebase_mcp.storage import database
from codebase_mcp.storage.database import open_database
from codebase_mcp.storage.migrate import available_migrations, migrate
from tests.conftest import cli_command


def test_migrations_are_numbered_and_ordered() -> None:
    versions = [v for v, _, _ in available_migrations()]
    assert versions == sorted(versions) and versions[0] == 1 and len(set(versions)) == len(versions)


async def test_migrate_is_idempotent(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        assert await migrate(conn) == []  # the template is already migrated
        cur = await conn.execute("SELECT count(*) FROM schema_migrations")
        row = await cur.fetchone()
        assert row is not None and row[0] == len(available_migrations())


def test_embedded_server_is_shared_by_concurrent_processes(tmp_path: Path) -> None:
    """Several CLI processes on one data directory at once: one server, all succeed, and the server
    is stopped when the last one leaves."""
    home = tmp_path / "shared-home"
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "app.py").write_text("def handle_request(req):\n    return req\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEBASE_MCP_") and k != "DATABASE_URL"}
    # no daemon: a search would start one, which would hold the server after the last CLI process left
    env.update(CODEBASE_MCP_HOME=str(home), CODEBASE_MCP_EMBEDDING_PROVIDER="fake", CODEBASE_MCP_DAEMON="false")
    first = subprocess.run([*cli_command(), "index", str(repo)], env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    procs = [
        subprocess.Popen(
            [*cli_command(), "search", "handle request", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        assert '"app.py"' in stdout
    assert not (home / "pgdata" / "postmaster.pid").exists(), "the last process out stops the server"
    # a holder killed with SIGKILL does not keep the server forever
    killer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; from pathlib import Path; from codebase_mcp.storage.embedded import start_embedded;"
            f"start_embedded(Path({str(home)!r})); print('up', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert killer.stdout is not None and killer.stdout.readline().strip() == "up"
    killer.kill()
    killer.wait()
    again = subprocess.run([*cli_command(), "status", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert not (home / "pgdata" / "postmaster.pid").exists()


async def test_an_embedded_server_gone_before_the_database_is_created_is_unavailable(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embedded server started, then stopped before its database was checked: a database error
    that says so, not an internal error."""
    nobody = tmp_path / "no-server-here"
    nobody.mkdir()
    monkeypatch.setattr(database, "start_embedded", lambda _home: f"postgresql://postgres:@/postgres?host={nobody}")
    with pytest.raises(DatabaseUnavailable, match="Cannot connect to PostgreSQL \\(the embedded server\\)"):
        await open_database(settings.model_copy(update={"database_url": None}))


async def test_a_server_without_pgvector_is_a_permanent_error_with_the_install_hint(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "VECTOR_EXTENSION", "vector_not_installed_here")
    with pytest.raises(DatabaseMisconfigured, match="does not have the pgvector extension") as raised:
        await open_database(settings)
    assert "pgvector#installation" in raised.value.message
    assert not isinstance(raised.value, DatabaseUnavailable), "nothing retries it: it does not heal by itself"
    assert raised.value.for_client().startswith("database_misconfigured: ")


async def test_the_embedded_server_keeps_its_write_ahead_log_small(server_uri: str) -> None:
    """PostgreSQL's defaults let pg_wal grow to 1 GB and keep it; the embedded server is set to keep
    little (``embedded_server_settings``), on every start, whatever was there before; and larger shared
    buffers from its next start."""

    async def show(conn: psycopg.AsyncConnection[Any], name: str, want: str) -> None:
        deadline = time.monotonic() + 30  # a reload reaches each session at its next command
        while (got := (await (await conn.execute(f"SHOW {name}")).fetchone() or [None])[0]) != want:
            assert time.monotonic() < deadline, f"{name} is {got}, not {want}"
            await asyncio.sleep(0.05)

    async with await psycopg.AsyncConnection.connect(server_uri, autocommit=True) as conn:
        await conn.execute("ALTER SYSTEM RESET ALL")
        await conn.execute("SELECT pg_reload_conf()")
        await show(conn, "max_wal_size", "1GB")
        await database._ensure_database(server_uri, "postgres")
        await show(conn, "max_wal_size", "64MB")
        await show(conn, "min_wal_size", "32MB")
        # shared_buffers takes effect at the server's next start: the configuration file holds it
        cur = await conn.execute("SELECT setting FROM pg_file_settings WHERE name = 'shared_buffers' ORDER BY seqno")
        configured = [r[0] for r in await cur.fetchall()]
        assert configured[-1] == f"{database.embedded_server_settings()['shared_buffers']}MB"
        assert 128 <= database.embedded_server_settings()["shared_buffers"] <= 512
        written = (await (await conn.execute("SELECT pg_conf_load_time()")).fetchone() or [None])[0]
        await database._ensure_database(server_uri, "postgres")  # set already: nothing is written again
        assert (await (await conn.execute("SELECT pg_conf_load_time()")).fetchone() or [None])[0] == written
