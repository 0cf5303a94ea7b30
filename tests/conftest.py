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

import psycopg
import pytest
from psycopg import sql

from codebase_mcp.embeddings.fake import FakeEmbeddingModel
from codebase_mcp.settings import Settings
from codebase_mcp.storage.database import Database, open_database
from codebase_mcp.storage.embedded import database_uri, start_embedded
from codebase_mcp.storage.migrate import migrate

FIXTURES = Path(__file__).parent / "fixtures"
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
    )
    return env


def cli_command() -> list[str]:
    exe = Path(sys.executable).with_name("codebase-mcp")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "codebase_mcp.cli.main"]
