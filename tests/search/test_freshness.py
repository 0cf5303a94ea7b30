"""Freshness in every answer (issue 22, item 3): a search says, per repository, when it was last synced
and whether it may be behind its files; an index run clears only the changes seen before its scan."""

from __future__ import annotations

from pathlib import Path

from codebase_mcp.domain import BatchStats, SearchFilters
from codebase_mcp.embeddings.fake import FakeEmbeddingModel
from codebase_mcp.indexing.indexer import Indexer
from codebase_mcp.indexing.run import RunControl
from codebase_mcp.search.engine import SearchEngine
from codebase_mcp.settings import Settings
from codebase_mcp.storage import job_store, repo_store
from codebase_mcp.storage.database import Conn, Database


async def freshness_of(db: Database, project: str = "default") -> dict[str, str | None]:
    async with db.connection() as conn:
        return {f.repository: f.why for f in await repo_store.search_scope(conn, project, None)}


async def mark(db: Database, repo_id: int) -> None:
    async with db.connection() as conn:
        await repo_store.mark_changes_pending(conn, repo_id)


async def test_a_run_clears_only_the_changes_seen_before_its_scan(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, polyglot: Path
) -> None:
    indexer = Indexer(db, fake_model, settings)
    await indexer.index(polyglot)
    async with db.connection() as conn:
        repo_id = (await repo_store.search_scope(conn, "default", None))[0].repository_id
    assert await freshness_of(db) == {"polyglot": None}

    await mark(db, repo_id)  # the watcher saw a change
    why = (await freshness_of(db))["polyglot"]
    assert why is not None and why.startswith("files changed ") and why.endswith(" s ago"), why
    billing = polyglot / "src" / "billing.py"
    billing.write_text(billing.read_text() + "\n\ndef first_late_edit():\n    return 1\n")
    await indexer.index(polyglot)
    assert await freshness_of(db) == {"polyglot": None}, "a run that began after the change cleared it"

    # a change seen while a run stores its files: that run does not clear it, the next one does
    await mark(db, repo_id)
    billing.write_text(billing.read_text() + "\n\ndef second_late_edit():\n    return 2\n")
    seen_during: list[bool] = []

    class ChangeDuringTheRun(RunControl):
        async def fence(self, conn: Conn, stats: BatchStats) -> None:
            if not seen_during:
                await mark(db, repo_id)  # on another connection, while the run's batch is open
                seen_during.append(True)

    await indexer.index(polyglot, run=ChangeDuringTheRun())
    assert seen_during
    assert (await freshness_of(db))["polyglot"] is not None, "the change seen during the run is still pending"
    await indexer.index(polyglot)
    assert await freshness_of(db) == {"polyglot": None}


async def test_search_reports_freshness_per_repository(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, polyglot: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.py").write_text("def unrelated_helper():\n    return 0\n")
    indexer = Indexer(db, fake_model, settings)
    await indexer.index(polyglot)
    await indexer.index(other)
    engine = SearchEngine(db, fake_model)

    fresh = await engine.search("createSessionToken")
    assert [(f.repository, f.pending) for f in fresh.freshness] == [("polyglot", False)], "hits' repositories only"
    assert fresh.freshness[0].synced_at is not None
    record = fresh.to_dict()["freshness"][0]
    assert record["pending"] is False and "why" not in record

    # a repository asked for by name is reported even when fresh and without hits
    asked = await engine.search("nothing_matches_this", filters=SearchFilters(repository="other"), mode="keyword")
    assert not asked.hits
    assert [(f.repository, f.pending) for f in asked.freshness] == [("other", False)]

    async with db.connection() as conn:
        scope = {f.repository: f.repository_id for f in await repo_store.search_scope(conn, "default", None)}
        # an active job counts as pending, reported though the repository produced no hit
        await job_store.create_job(conn, "default", str(other.resolve()), False)
    await mark(db, scope["polyglot"])
    behind = await engine.search("createSessionToken")
    whys = {f.repository: f.why for f in behind.freshness}
    assert whys["other"] == "indexing job queued", whys
    assert whys["polyglot"] is not None and whys["polyglot"].startswith("files changed "), whys
    assert {h.repository for h in behind.hits} == {"polyglot"}
