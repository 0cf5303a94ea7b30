"""Freshness: the repositories indexed on this machine follow their files while the daemon runs.

Each watched repository has a file watcher (``watchfiles``: inotify, FSEvents, ReadDirectoryChangesW)
that only marks the repository dirty (in the database too: ``changes_pending_at``, which the searches of
every process report until a sync has stored the change), and a sync loop that turns "dirty" into one
incremental index run (``Indexer.index``: the same scan, hash comparison, deletion and embedding as any
index), so an edit, a new file, a deletion, a rename, an ignore-file change or a branch switch of
hundreds of files all take the same path, batched: whatever changes while a sync runs is picked up by
the next one. A sync is searchable by keyword as soon as its files are stored; embedding the changed
chunks follows and gives way to the next sync when more edits arrive. When the OS refuses more watches
(Linux's ``max_user_watches``), the repository is rescanned periodically instead, and status says so.

A sync is an index run like any other (``indexing/run.py``): recorded in the job table as kind ``sync``
from its first write, on the lower-priority threads, cancellable by id, and holding the repository lock,
so syncs of a repository and jobs or foreground runs on it take turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codebase_mcp.core.identity import host_name
from codebase_mcp.domain import JobPhase, JobStatus, Progress, Repository
from codebase_mcp.errors import CodebaseError
from codebase_mcp.indexing.run import RecordedRun
from codebase_mcp.indexing.scanner import SKIP_DIRS
from codebase_mcp.runtime import Runtime
from codebase_mcp.storage import repo_store

log = logging.getLogger(__name__)


@dataclass
class WatchedRepository:
    repository: Repository
    mode: str = "starting"  # starting (first sync pending), watching, rescanning (the OS refused watches)
    note: str | None = None
    dirty: asyncio.Event = field(default_factory=asyncio.Event)
    syncing: bool = False
    syncs: int = 0  # completed sync runs
    preempted: int = 0  # runs that yielded to newer edits while embedding (the next run covers them)
    last_synced_at: datetime | None = None
    last_error: str | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        repo = self.repository
        synced = self.last_synced_at or repo.last_indexed_at
        return {
            "id": repo.id,
            "project_id": repo.project_id,
            "root_path": repo.root_path,
            "mode": self.mode,
            "note": self.note,
            "syncing": self.syncing,
            "pending": self.dirty.is_set(),
            "syncs": self.syncs,
            "preempted": self.preempted,
            "last_synced_at": synced.isoformat() if synced else None,
            "last_error": self.last_error,
        }


def change_filter(root: Path) -> Callable[[Any, str], bool]:
    """Changes worth a sync: anything outside VCS, dependency and build folders."""

    def keep(_change: Any, path: str) -> bool:
        try:
            parts = Path(path).relative_to(root).parts
        except ValueError:
            return False
        return not any(part in SKIP_DIRS or part.endswith(".egg-info") for part in parts[:-1]) and (
            not parts or parts[-1] not in SKIP_DIRS
        )

    return keep


class Watcher:
    def __init__(self, runtime: Runtime, on_activity: Callable[[], None] = lambda: None) -> None:
        self.rt = runtime
        self.settings = runtime.settings
        self.on_activity = on_activity
        self.watched: dict[int, WatchedRepository] = {}
        self._look = asyncio.Event()

    @property
    def busy(self) -> bool:
        return any(w.syncing or w.dirty.is_set() for w in self.watched.values())

    def status(self) -> list[dict[str, Any]]:
        return [w.to_dict() for w in self.watched.values()]

    def look_now(self) -> None:
        """A repository may have just been indexed here (a job or an ``index`` run completed): read the
        list of repositories to watch now, not at the next periodic look."""
        self._look.set()

    async def run(self, stopping: asyncio.Event) -> None:
        try:
            while not stopping.is_set():
                self._look.clear()
                try:
                    await self.refresh()
                except CodebaseError as exc:
                    log.warning("could not read the repositories to watch: %s", exc.message[:300])
                # the periodic look finds repositories indexed by processes that do not tell us
                waiters = {asyncio.ensure_future(stopping.wait()), asyncio.ensure_future(self._look.wait())}
                try:
                    await asyncio.wait(
                        waiters, timeout=self.settings.watch_refresh_seconds, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    for waiter in waiters:
                        waiter.cancel()
        finally:
            for watched in list(self.watched.values()):
                await self._unwatch(watched)

    async def refresh(self) -> None:
        """Start watching repositories indexed on this machine since the last look; stop watching the
        ones forgotten, opted out, or whose folder is gone."""
        async with self.rt.db.connection() as conn:
            repos = await repo_store.watched_repositories(conn, host_name())
        wanted = {r.id: r for r in repos if Path(r.root_path).is_dir()}
        for repo_id, watched in list(self.watched.items()):
            if repo_id not in wanted:
                await self._unwatch(watched)
        for repo_id, repo in wanted.items():
            if repo_id not in self.watched:
                self._watch(repo)

    def _watch(self, repo: Repository) -> None:
        watched = WatchedRepository(repo)
        self.watched[repo.id] = watched
        loop = asyncio.get_running_loop()
        watched.tasks = [loop.create_task(self._follow(watched)), loop.create_task(self._sync_loop(watched))]
        log.info("watching %s", repo.root_path)

    async def _unwatch(self, watched: WatchedRepository) -> None:
        self.watched.pop(watched.repository.id, None)
        watched.stop.set()
        for task in watched.tasks:
            task.cancel()
        for task in watched.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        log.info("stopped watching %s", watched.repository.root_path)

    async def _follow(self, watched: WatchedRepository) -> None:
        """Mark the repository dirty on every batch of changes; the first sync, started once the OS
        watches are in place, catches up with what changed while nothing watched."""
        from watchfiles import awatch
        from watchfiles._rust_notify import WatchfilesRustInternalError

        root = Path(watched.repository.root_path)
        catch_up = asyncio.get_running_loop().call_later(0.3, watched.dirty.set)
        try:
            async for _changes in awatch(
                root,
                watch_filter=change_filter(root),
                debounce=self.settings.watch_debounce_ms,
                step=50,
                stop_event=watched.stop,
                recursive=True,
                ignore_permission_denied=True,
            ):
                # said in the database first, so that any process's searches see the index may be behind;
                # and before the sync starts, so that the sync reads this mark (or a newer one)
                await self._mark_pending(watched)
                watched.dirty.set()
        except (OSError, WatchfilesRustInternalError) as exc:  # the OS refused (limit reached, file system)
            why = f"the OS refused file watches ({exc})"
            log.warning("%s: %s", root, why)
        except Exception as exc:  # a defect, ours or the library's: say so, and keep the index fresh anyway
            why = f"file watching failed with an internal error ({type(exc).__name__}; see the log)"
            log.exception("%s: watching failed", root)
        else:
            return
        catch_up.cancel()
        every = self.settings.watch_rescan_seconds
        watched.note = f"{why}; rescanning every {every:g} s"
        watched.mode = "rescanning"
        while not watched.stop.is_set():
            watched.dirty.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watched.stop.wait(), every)

    async def _mark_pending(self, watched: WatchedRepository) -> None:
        try:
            async with self.rt.db.connection() as conn:
                await repo_store.mark_changes_pending(conn, watched.repository.id)
        except CodebaseError as exc:  # the sync still runs; only searches cannot say the index is behind
            log.warning("could not mark %s as changed: %s", watched.repository.root_path, exc.message[:300])

    async def _sync_loop(self, watched: WatchedRepository) -> None:
        while True:
            await watched.dirty.wait()
            watched.dirty.clear()
            watched.syncing = True
            try:
                await self._sync(watched)
            except CodebaseError as exc:  # its outcome could not be written (the database is away)
                watched.last_error = exc.message
                log.warning("sync of %s failed: %s", watched.repository.root_path, exc.message[:300])
            except Exception as exc:
                watched.last_error = f"internal error ({type(exc).__name__}); see the log"
                log.exception("sync of %s failed", watched.repository.root_path)
            finally:
                watched.syncing = False
                self.on_activity()

    async def _sync(self, watched: WatchedRepository) -> None:
        """One incremental run of the repository, recorded as a sync; it gives way (at a batch boundary)
        when more edits arrive while it embeds: store them first, embed after."""
        repo = watched.repository

        def newer_edits(progress: Progress) -> bool:
            return progress.phase == JobPhase.EMBEDDING and watched.dirty.is_set()

        run = RecordedRun.sync(self.rt.db, self.settings, repo.project_id, repo.root_path, preempt=newer_edits)
        outcome = await run.execute(lambda: self.rt.indexer.index(repo.root_path, run=run, project_id=repo.project_id))
        if run.preempted:  # the next round picks everything up
            watched.preempted += 1
        elif outcome.status is JobStatus.COMPLETED and outcome.progress is not None:
            watched.last_synced_at = datetime.now(UTC)
            watched.syncs += 1
            watched.last_error = None
            if watched.mode == "starting":
                watched.mode = "watching"
            state = outcome.progress
            if state.files_indexed or state.files_deleted:
                log.info(
                    "synced %s: %d files written, %d removed", repo.root_path, state.files_indexed, state.files_deleted
                )
        elif outcome.status is JobStatus.FAILED:
            watched.last_error = outcome.error or outcome.message
            log.warning("sync of %s failed: %s", repo.root_path, watched.last_error[:300])
