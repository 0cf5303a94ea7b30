"""What every entry point (CLI, MCP server, worker) opens: the database, the embedding model, the
indexer and the search engine."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from codebase_mcp.embeddings.base import EmbeddingModel, create_model
from codebase_mcp.search.engine import SearchEngine
from codebase_mcp.settings import Settings
from codebase_mcp.storage.database import Database, open_database

if TYPE_CHECKING:
    from codebase_mcp.indexing.indexer import Indexer


@dataclass
class Runtime:
    settings: Settings
    db: Database
    model: EmbeddingModel

    @property
    def indexer(self) -> Indexer:
        # imported here: the scanner, chunker and tree-sitter grammars are not needed to search
        from codebase_mcp.indexing.indexer import Indexer

        return Indexer(self.db, self.model, self.settings)

    @cached_property
    def search(self) -> SearchEngine:
        """One engine per runtime: it caches the model id."""
        return SearchEngine(self.db, self.model, self.settings.search_candidates)


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    max_connections: int = 8,
    load_model: bool = False,
    wrap_model: Callable[[EmbeddingModel], EmbeddingModel] | None = None,
) -> AsyncIterator[Runtime]:
    """``load_model``: load the embedding model in a thread while the database opens (a CLI search
    needs both, and neither waits for the other). ``wrap_model``: what the caller puts around the
    configured model (an MCP server: ``daemon.model.DaemonEmbedded``, one model per machine)."""
    model = create_model(settings)
    if wrap_model is not None:
        model = wrap_model(model)
    loading = asyncio.create_task(asyncio.to_thread(model.load)) if load_model else None
    await asyncio.sleep(0)  # the thread starts before the embedded server is checked (blocking)
    try:
        db = await open_database(settings, max_size=max_connections)
        try:
            yield Runtime(settings, db, model)
        finally:
            await db.close()
    finally:
        if loading is not None:
            # a failed load fails the first embedding call too, which reports it
            with contextlib.suppress(Exception):
                await loading
