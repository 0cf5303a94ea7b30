"""The watcher keeps an index in step with its files: in-process, on the real database, with the fake
model (tests/daemon/test_daemon_processes.py drives the real daemon process)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from codebase_mcp.daemon.watcher import Watcher
from codebase_mcp.domain import SearchFilters
from codebase_mcp.indexing.locks import RepositoryLocks
from codebase_mcp.runtime import Runtime, open_runtime
from codebase_mcp.settings import Settings
from codebase_mcp.storage import index_store, repo_store


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with open_runtime(settings.model_copy(update={"watch_debounce_ms": 50, "watch_rescan_seconds": 1.0})) as rt:
        yield rt


@contextlib.asynccontextmanager
async def watching(rt: Runtime) -> AsyncIterator[Watcher]:
    watcher = Watcher(rt, RepositoryLocks())
    stopping = asyncio.Event()
    task = asyncio.create_task(watcher.run(stopping))
    try:
        yield watcher
    finally:
        stopping.set()
        await asyncio.wait_for(task, 30)
    assert not watcher.watched, "stopping the watcher stops every repository's watch"


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> float:
    """Seconds until ``check`` holds; fails after ``timeout``."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < timeout, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def indexed_paths(rt: Runtime, repo_id: int) -> set[str]:
    async with rt.db.connection() as conn:
        return set(await index_store.file_states(conn, repo_id))


async def keyword_hits(rt: Runtime, query: str) -> list[str]:
    response = await rt.search.search(query, project_id="default", filters=SearchFilters(), limit=5, mode="keyword")
    return [hit.path for hit in response.hits if hit.symbol == query]


def watched_mode(watcher: Watcher, repo_id: int) -> str | None:
    entry = watcher.watched.get(repo_id)
    return entry.mode if entry else None


async def index_once(rt: Runtime, root: Path) -> int:
    """Index ``root`` (as a first `codebase-mcp index` does) and return its repository id."""
    await rt.indexer.index(root)
    async with rt.db.connection() as conn:
        return (await repo_store.find_repository(conn, "default", str(root.resolve()))).id


async def until_watching(watcher: Watcher, repo_id: int) -> None:
    """Pick up the repositories to watch and wait for this one's first sync."""
    await watcher.refresh()

    async def is_watching() -> bool:
        return watched_mode(watcher, repo_id) == "watching"

    await until(is_watching, "the first sync after the watch starts")


async def test_edits_deletions_renames_and_ignore_files_reach_the_index(runtime: Runtime, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "billing.py").write_text("def charge_customer(card):\n    return card\n")
    (repo / "pkg" / "legacy.py").write_text("def old_refund_path(order):\n    return order\n")
    (repo / ".gitignore").write_text("*.log\n")
    repo_id = await index_once(runtime, repo)

    async with watching(runtime) as watcher:
        await until_watching(watcher, repo_id)

        (repo / "pkg" / "shipping.py").write_text("def schedule_parcel_pickup(parcel):\n    return parcel\n")

        async def added() -> bool:
            return await keyword_hits(runtime, "schedule_parcel_pickup") == ["pkg/shipping.py"]

        await until(added, "a new file is searchable")

        (repo / "pkg" / "billing.py").write_text("def refund_customer_charge(card):\n    return -card\n")

        async def edited() -> bool:
            return await keyword_hits(runtime, "refund_customer_charge") == ["pkg/billing.py"] and not (
                await keyword_hits(runtime, "charge_customer")
            )

        await until(edited, "an edit replaces the old definition")

        (repo / "pkg" / "legacy.py").unlink()

        async def deleted() -> bool:
            return "pkg/legacy.py" not in await indexed_paths(runtime, repo_id)

        await until(deleted, "a deleted file leaves the index")
        assert await keyword_hits(runtime, "old_refund_path") == []

        (repo / "pkg" / "shipping.py").rename(repo / "pkg" / "logistics.py")

        async def renamed() -> bool:
            return await keyword_hits(runtime, "schedule_parcel_pickup") == ["pkg/logistics.py"]

        await until(renamed, "a renamed file moves")

        (repo / ".gitignore").write_text("*.log\npkg/logistics.py\n")

        async def ignored() -> bool:
            return "pkg/logistics.py" not in await indexed_paths(runtime, repo_id)

        await until(ignored, "a path newly ignored leaves the index")
        (repo / "debug.log").write_text("def not_source():\n    pass\n")
        (repo / "pkg" / "tax.py").write_text("def compute_sales_tax(amount):\n    return amount\n")

        async def after_ignored_write() -> bool:
            return "pkg/tax.py" in await indexed_paths(runtime, repo_id)

        await until(after_ignored_write, "a file written with an ignored one is indexed")
        assert "debug.log" not in await indexed_paths(runtime, repo_id)
        status: dict[str, Any] = watcher.status()[0]
        assert status["mode"] == "watching" and status["last_error"] is None
        # one run per change, except that a change arriving while the last one is being embedded makes
        # that run yield (preempted) and the next run store both
        assert status["syncs"] + status["preempted"] >= 6 and status["syncs"] >= 1
        assert status["last_synced_at"] is not None


async def test_a_burst_of_changes_is_synced_in_few_runs(runtime: Runtime, tmp_path: Path) -> None:
    """A branch switch writes hundreds of files at once: a handful of incremental runs, not one each."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "seed.py").write_text("def seed():\n    pass\n")
    repo_id = await index_once(runtime, repo)
    async with watching(runtime) as watcher:
        await until_watching(watcher, repo_id)
        before = watcher.watched[repo_id].syncs
        for i in range(300):
            (repo / f"switched_{i:03d}.py").write_text(f"def branch_function_{i}():\n    return {i}\n")

        async def all_in() -> bool:
            return len(await indexed_paths(runtime, repo_id)) == 301

        await until(all_in, "all 300 files are indexed", timeout=30)

        async def settled() -> bool:
            return not watcher.busy

        await until(settled, "the watcher settles")
        runs = watcher.watched[repo_id].syncs - before
        assert 1 <= runs <= 10, f"{runs} sync runs for one burst of 300 files"


async def test_only_this_machines_opted_in_existing_repositories_are_watched(runtime: Runtime, tmp_path: Path) -> None:
    kept, opted_out, removed = (tmp_path / name for name in ("kept", "opted-out", "removed"))
    ids = {}
    for root in (kept, opted_out, removed):
        root.mkdir()
        (root / "main.py").write_text("def main():\n    pass\n")
        ids[root.name] = await index_once(runtime, root)
    async with runtime.db.connection() as conn:
        await repo_store.set_watch(conn, ids["opted-out"], False)
        await conn.execute("UPDATE repositories SET host = 'another-machine' WHERE id = %s", (ids["kept"],))
    shutil.rmtree(removed)
    async with watching(runtime) as watcher:
        await watcher.refresh()
        assert set(watcher.watched) == set(), "another machine's, opted-out and missing repositories"
        async with runtime.db.connection() as conn:
            await conn.execute("UPDATE repositories SET host = NULL WHERE id = %s", (ids["kept"],))
            await repo_store.set_watch(conn, ids["opted-out"], True)
        await watcher.refresh()
        assert set(watcher.watched) == {ids["kept"], ids["opted-out"]}
        async with runtime.db.connection() as conn:
            await repo_store.set_watch(conn, ids["opted-out"], False)
        await watcher.refresh()
        assert set(watcher.watched) == {ids["kept"]}


async def test_repositories_are_rescanned_when_the_os_refuses_watches(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import watchfiles

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise OSError(28, "OS file watch limit reached")

    monkeypatch.setattr(watchfiles, "awatch", refuse)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("def first_function():\n    pass\n")
    repo_id = await index_once(runtime, repo)
    async with watching(runtime) as watcher:
        await watcher.refresh()
        (repo / "b.py").write_text("def rescanned_function():\n    pass\n")

        async def found() -> bool:
            return await keyword_hits(runtime, "rescanned_function") == ["b.py"]

        await until(found, "a periodic rescan picks the file up")
        status = watcher.status()[0]
        assert status["mode"] == "rescanning"
        assert "watch limit" in status["note"] and "rescanning every 1 s" in status["note"]
        assert repo_id in watcher.watched


async def test_a_defect_in_watching_is_reported_as_one_and_the_repository_is_rescanned(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import watchfiles

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise TypeError("unexpected keyword argument 'step'")

    monkeypatch.setattr(watchfiles, "awatch", broken)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("def first_function():\n    pass\n")
    await index_once(runtime, repo)
    async with watching(runtime) as watcher:
        await watcher.refresh()

        async def rescanning() -> bool:
            return bool(watcher.status()[0]["mode"] == "rescanning")

        await until(rescanning, "the repository falls back to rescans")
        note = watcher.status()[0]["note"]
        assert "internal error (TypeError" in note and "OS refused" not in note, note
