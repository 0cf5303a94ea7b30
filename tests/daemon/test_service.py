"""The daemon in-process (its socket, worker and watcher on the real database, the fake model): a
repository is watched from the moment it is indexed, not from the watcher's next periodic look."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from codebase_mcp.daemon import client as daemon_client
from codebase_mcp.daemon.paths import DaemonPaths
from codebase_mcp.daemon.service import Daemon
from codebase_mcp.domain import JobStatus, SearchFilters
from codebase_mcp.runtime import Runtime, open_runtime
from codebase_mcp.settings import Settings
from codebase_mcp.storage import job_store


@pytest.fixture
async def daemon(settings: Settings) -> AsyncIterator[Daemon]:
    # the periodic look is an hour away: only being told can make the daemon watch a repository
    settings = settings.model_copy(update={"watch_refresh_seconds": 3600.0, "watch_debounce_ms": 50})
    async with open_runtime(settings) as rt:
        service = Daemon(rt, DaemonPaths.of(settings.home))
        service.paths.directory.mkdir(parents=True, exist_ok=True)
        task = asyncio.create_task(service.run())
        while not await daemon_client.listening(settings.home):
            await asyncio.sleep(0.05)
        try:
            yield service
        finally:
            service.stop("test over")
            await asyncio.wait_for(task, 60)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.05)


async def keyword_paths(rt: Runtime, query: str) -> list[str]:
    response = await rt.search.search(query, project_id="default", filters=SearchFilters(), limit=5, mode="keyword")
    return [hit.path for hit in response.hits if hit.symbol == query]


def watched_roots(service: Daemon) -> set[str]:
    assert service.watcher is not None
    return {w.repository.root_path for w in service.watcher.watched.values()}


def watches(service: Daemon, root: Path) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return str(root.resolve()) in watched_roots(service)

    return check


async def test_a_repository_is_watched_when_its_job_completes(daemon: Daemon, polyglot: Path) -> None:
    rt = daemon.rt
    async with rt.db.connection() as conn:
        job, _ = await job_store.create_job(conn, "default", str(polyglot.resolve()), False)
    await daemon_client.request(rt.settings.home, "wake")

    async def completed() -> bool:
        async with rt.db.connection() as conn:
            return (await job_store.get_job(conn, str(job.id))).status is JobStatus.COMPLETED

    await until(completed, "the job completes")
    await until(watches(daemon, polyglot), "watched on completion")
    (polyglot / "added_after_the_job.py").write_text("def settle_overdue_invoices(ledger):\n    return ledger\n")

    async def found() -> bool:
        return await keyword_paths(rt, "settle_overdue_invoices") == ["added_after_the_job.py"]

    await until(found, "a file added right after the job is searchable")


async def test_a_repository_indexed_beside_the_daemon_is_watched_once_told(daemon: Daemon, polyglot: Path) -> None:
    """`codebase-mcp index` in the foreground tells the running daemon (a wake) when it finishes."""
    rt = daemon.rt
    await rt.indexer.index(polyglot)
    await asyncio.sleep(0.5)
    assert not await watches(daemon, polyglot)(), "not before it is told"
    await daemon_client.request(rt.settings.home, "wake")
    await until(watches(daemon, polyglot), "watched once told")
