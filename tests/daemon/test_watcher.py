"""The watcher keeps an index in step with its files: in-process, on the real database, with the fake
model (tests/daemon/test_daemon_processes.py drives the real daemon process)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from codebase_mcp.daemon.watcher import Watcher
from codebase_mcp.domain import Job, JobStatus, Progress, RunKind, SearchFilters
from codebase_mcp.indexing.indexer import Indexer
from codebase_mcp.indexing.run import BACKGROUND_NICE, RecordedRun, RunControl
from codebase_mcp.jobs.worker import Worker
from codebase_mcp.runtime import Runtime, open_runtime
from codebase_mcp.settings import Settings
from codebase_mcp.storage import index_store, job_store, repo_store
from tests.conftest import make_repo


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with open_runtime(settings.model_copy(update={"watch_debounce_ms": 50, "watch_rescan_seconds": 1.0})) as rt:
        yield rt


@contextlib.asynccontextmanager
async def watching(rt: Runtime) -> AsyncIterator[Watcher]:
    watcher = Watcher(rt)
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


async def sync_records(rt: Runtime) -> list[Job]:
    async with rt.db.connection() as conn:
        return [j for j in await job_store.list_jobs(conn, None, None, 50) if j.kind is RunKind.SYNC]


async def test_a_sync_that_writes_is_in_the_job_list_as_the_repositorys_last_sync(
    runtime: Runtime, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "billing.py").write_text("def charge_customer(card):\n    return card\n")
    repo_id = await index_once(runtime, repo)

    async with watching(runtime) as watcher:
        await until_watching(watcher, repo_id)
        assert await sync_records(runtime) == [], "the first sync found nothing to change: no row"

        recorded: list[Job] = []
        for name in ("refund_customer_charge", "void_customer_charge"):
            (repo / "billing.py").write_text(f"def {name}(card):\n    return -card\n")

            async def synced(name: str = name) -> bool:
                # one row once the last sync has finished (a sync is recorded at its first write, and
                # the repository's other finished syncs leave when it finishes: a late file event can
                # start one more in between)
                records = await sync_records(runtime)
                return (
                    await keyword_hits(runtime, name) == ["billing.py"]
                    and len(records) == 1
                    and not records[0].status.active
                )

            await until(synced, f"{name} is synced and recorded")
            [record] = await sync_records(runtime)
            assert (record.status, record.files_indexed, record.repo_path) == (
                JobStatus.COMPLETED,
                1,
                str(repo.resolve()),
            )
            assert record.chunks_embedded > 0 and record.worker_id is not None
            recorded.append(record)
    assert recorded[0].id != recorded[1].id, "each sync is its own run; the list keeps the last one"


@pytest.mark.skipif(sys.platform != "linux", reason="thread priorities are per thread on Linux only")
async def test_a_job_and_a_sync_of_one_repository_take_turns_on_lower_priority_threads(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one repository lock: a sync that starts while a job indexes the repository waits for it, and
    both read and chunk on the background threads (nice 10), as the daemon runs them."""
    repo = make_repo(tmp_path / "repo", 12)
    repo_id = await index_once(runtime, repo)

    spans: list[tuple[RunKind | None, float, float]] = []
    holding: list[RunKind | None] = []
    nices: list[int] = []
    real_index, real_prepare = Indexer._index, Indexer._prepare

    async def timed(self: Indexer, root: Path, rid: int, run: RunControl, force: bool, embed: bool) -> Progress:
        kind = run.kind if isinstance(run, RecordedRun) else None
        holding.append(kind)  # inside the repository lock
        began = time.monotonic()
        try:
            return await real_index(self, root, rid, run, force, embed)
        finally:
            spans.append((kind, began, time.monotonic()))
            holding.remove(kind)

    def slow(self: Indexer, *args: Any) -> Any:
        nices.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        time.sleep(0.4)  # a job of four batches holds the repository for about 2 s
        return real_prepare(self, *args)

    monkeypatch.setattr(Indexer, "_index", timed)
    monkeypatch.setattr(Indexer, "_prepare", slow)
    async with watching(runtime) as watcher:
        await until_watching(watcher, repo_id)
        worker = Worker(runtime, poll_seconds=0.1)
        working = asyncio.create_task(worker.run())
        try:
            async with runtime.db.connection() as conn:
                job, _ = await job_store.create_job(conn, "default", str(repo.resolve()), True)

            async def job_holds_the_repository() -> bool:
                return RunKind.INDEX in holding

            await until(job_holds_the_repository, "the job has the repository")
            # a new file: the job's scan is over, so only a sync can store it
            (repo / "pkg00" / "added_during_the_job.py").write_text("def written_during_the_job():\n    return 1\n")

            async def both_done() -> bool:
                async with runtime.db.connection() as conn:
                    ended = not (await job_store.get_job(conn, str(job.id))).status.active
                syncs = await sync_records(runtime)  # the edit's sync wrote: it has a record
                return ended and bool(syncs) and not syncs[0].status.active and not holding

            await until(both_done, "the job and the sync have run", timeout=60)
        finally:
            worker.stop()
            await asyncio.wait_for(working, 30)
    [(_, job_began, job_ended)] = [s for s in spans if s[0] is RunKind.INDEX]
    sync_spans = [s for s in spans if s[0] is RunKind.SYNC]
    assert all(ended <= job_began or began >= job_ended for _, began, ended in sync_spans), "never at once"
    assert any(began >= job_ended for _, began, _ in sync_spans), "the edit's sync waited for the job"
    async with runtime.db.connection() as conn:
        assert (await job_store.get_job(conn, str(job.id))).status is JobStatus.COMPLETED
    [record] = await sync_records(runtime)
    assert record.files_indexed == 1 and record.status is JobStatus.COMPLETED
    assert await keyword_hits(runtime, "written_during_the_job") == ["pkg00/added_during_the_job.py"]
    main_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert len(nices) >= 5 and set(nices) == {max(main_nice, BACKGROUND_NICE)}, nices
