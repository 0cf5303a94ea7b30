from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

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
    env.update(CODEBASE_MCP_HOME=str(home), CODEBASE_MCP_EMBEDDING_PROVIDER="fake")
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
