"""Queueing an indexing job for the background daemon: what ``index --background`` and ``init`` share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from codebase_mcp.daemon import client as daemon_client
from codebase_mcp.domain import Job
from codebase_mcp.settings import Settings


@dataclass(frozen=True)
class QueuedJob:
    job: Job
    created: bool  # False: the repository already had an active job, and this is that job
    daemon: dict[str, Any]  # the status of the daemon that runs it


async def queue_job(settings: Settings, path: str, project: str, force: bool) -> QueuedJob:
    """Create the repository's job (or find its active one), start the daemon if none runs, and wake it."""
    from codebase_mcp.core.validation import validate_root
    from codebase_mcp.storage import index_store, job_store
    from codebase_mcp.storage.database import open_database

    root = str(validate_root(path))
    db = await open_database(settings, max_size=2)
    try:
        async with db.connection() as conn:
            await index_store.ensure_project(conn, project)
            job, created = await job_store.create_job(conn, project, root, force)
    finally:
        await db.close()
    return QueuedJob(job, created, await daemon_client.hand_over(settings.home))
