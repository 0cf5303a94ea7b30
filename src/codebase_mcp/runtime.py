"""What every entry point (CLI, MCP server, worker) opens: the database, the embedding model, the
indexer and the search engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cached_property

from codebase_mcp.embeddings.base import EmbeddingModel, create_model
from codebase_mcp.indexing.indexer import Indexer
from codebase_mcp.search.engine import SearchEngine
from codebase_mcp.settings import Settings
from codebase_mcp.storage.database import Database, open_database


@dataclass
class Runtime:
    settings: Settings
    db: Database
    model: EmbeddingModel

    @property
    def indexer(self) -> Indexer:
        return Indexer(self.db, self.model, self.settings)

    @cached_property
    def search(self) -> SearchEngine:
        """One engine per runtime: it caches the model id."""
        return SearchEngine(self.db, self.model, self.settings.search_candidates)


@asynccontextmanager
async def open_runtime(settings: Settings, *, max_connections: int = 8) -> AsyncIterator[Runtime]:
    model = create_model(settings)
    db = await open_database(settings, max_size=max_connections)
    try:
        yield Runtime(settings, db, model)
    finally:
        await db.close()
