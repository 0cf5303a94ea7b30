"""SQL and LIKE metacharacters in queries, filters, project and repository ids are data, never SQL:
searches return normally (or refuse clearly) and every table is intact afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from codebase_mcp.domain import SearchFilters
from codebase_mcp.embeddings.fake import FakeEmbeddingModel
from codebase_mcp.errors import InvalidInput, NotFound
from codebase_mcp.indexing.indexer import Indexer
from codebase_mcp.search.engine import SearchEngine
from codebase_mcp.settings import Settings
from codebase_mcp.storage.database import Database

NASTY = ["' OR '1'='1", "%", "_", "\\", "; DROP TABLE chunks; --", "%%", "a%b_c\\d", "$$", "*/", "(?i).*", "[a-"]


async def table_counts(db: Database) -> dict[str, int]:
    out = {}
    async with db.connection() as conn:
        for table in ("projects", "repositories", "files", "chunks", "indexing_jobs", "embedding_cache"):
            cur = await conn.execute(f"SELECT count(*) AS n FROM {table}")
            row = await cur.fetchone()
            assert row is not None
            out[table] = int(row["n"])
        await conn.commit()
    return out


async def test_metacharacters_are_literal(db: Database, settings: Settings, polyglot: Path) -> None:
    model = FakeEmbeddingModel()
    await Indexer(db, model, settings).index(polyglot)
    before = await table_counts(db)
    engine = SearchEngine(db, model)
    everything = await engine.search("function", limit=50, mode="keyword")
    assert everything.hits
    for value in NASTY:
        res = await engine.search(value + " parse", limit=10)
        assert all(h.repository == "polyglot" for h in res.hits)
        with pytest.raises(InvalidInput, match="Languages present"):  # a language filter names one indexed
            await engine.search("parse", filters=SearchFilters(language=value), limit=10)
        for filters in (
            SearchFilters(file_type=value),
            SearchFilters(path_prefix=value),
            SearchFilters(path_glob=value),
        ):
            if filters.path_prefix is not None and not value.replace("\\", "/").strip("./"):
                continue  # "\\" is a path separator: the repository root, which holds everything
            res = await engine.search("parse", filters=filters, limit=10)
            assert res.hits == (), f"{filters} matched as a pattern"
        with pytest.raises((InvalidInput, NotFound)):
            await engine.search("parse", project_id=value)
        with pytest.raises((InvalidInput, NotFound)):
            await engine.search("parse", filters=SearchFilters(repository=value))
    assert await table_counts(db) == before
