"""One indexing run per repository at a time inside a process: a job and a watcher's sync of the same
repository take turns (each run is incremental, so the second one only picks up what changed since)."""

from __future__ import annotations

import asyncio


class RepositoryLocks:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    def of(self, root_path: str) -> asyncio.Lock:
        return self._locks.setdefault(root_path, asyncio.Lock())

    def busy(self, root_path: str) -> bool:
        lock = self._locks.get(root_path)
        return lock is not None and lock.locked()
