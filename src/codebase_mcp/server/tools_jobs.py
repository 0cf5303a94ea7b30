"""The indexing-job tools: start one, follow it, list them, cancel one."""

from __future__ import annotations

from typing import Annotated, Literal, cast

from mcp.server.mcpserver import Context
from pydantic import Field

from codebase_mcp.core.validation import validate_client_path
from codebase_mcp.errors import InvalidInput
from codebase_mcp.server.params import JobIdArg, ProjectArg
from codebase_mcp.server.schemas import JobList, JobRecord, StartedJob
from codebase_mcp.server.state import MAX_WAIT_SECONDS, app_of
from codebase_mcp.server.tooling import READ_ONLY, WRITES, ToolSpec
from codebase_mcp.storage import index_store, job_store


async def start_indexing_background(
    ctx: Context,
    repo_path: Annotated[
        str,
        Field(
            min_length=1,
            max_length=4096,
            description="Absolute path of its root folder, e.g. '/home/me/src/payments'.",
        ),
    ],
    project_id: ProjectArg = None,
    force_reindex: Annotated[
        bool,
        Field(description="Re-read and re-embed every file, e.g. true after changing the embedding model."),
    ] = False,
) -> StartedJob:
    """Index (or refresh: only changed files are read) a repository in the background and return its job
    id at once; a repository with an active job gets that job's id. Follow it with get_indexing_status."""
    app = app_of(ctx)
    project = await app.project(ctx, project_id, must_exist=False)
    async with app.runtime.db.connection() as conn:
        await index_store.ensure_project(conn, project)
        try:
            root = str(validate_client_path(repo_path))
        except InvalidInput as exc:
            job = await job_store.create_failed_job(conn, project, repo_path, exc.message)
            return {"job_id": str(job.id), "status": str(job.status), "project_id": project, "message": exc.message}
        job, created = await job_store.create_job(conn, project, root, force_reindex)
    if app.handovers is not None:
        # the daemon runs the job, which finishes even if this server stops right after this call;
        # the answer does not wait for it (a first start spawns it: seconds)
        await app.handovers.hand_over(job.id)
    message = (
        "indexing job queued: poll get_indexing_status(job_id, wait_seconds=20) until it is done"
        if created
        else "a job for this repository is already active: this is that job; poll get_indexing_status"
    )
    return {"job_id": str(job.id), "status": str(job.status), "project_id": project, "message": message}


async def get_indexing_status(
    ctx: Context,
    job_id: JobIdArg,
    project_id: ProjectArg = None,
    wait_seconds: Annotated[
        float,
        Field(
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="Answer as soon as status or phase changes, or after this many seconds, e.g. 20.",
        ),
    ] = 0,
) -> JobRecord:
    """Status, phase and progress (percent, files, chunks, ETA) of an indexing job. Use wait_seconds=20
    instead of polling every few seconds. Statuses: 'pending', 'running' (phase: scanning, chunking,
    embedding, finalizing; keyword search works on stored files), 'completed', 'failed' (see
    error_message), 'cancelled'."""
    app = app_of(ctx)
    async with app.runtime.db.connection() as conn:
        job = await job_store.get_job(conn, job_id, project_id)
    if wait_seconds > 0 and job.status.active:
        job = await app.wait_for_change(ctx, job, wait_seconds)
    return cast(JobRecord, job.to_dict())


async def list_indexing_jobs(
    ctx: Context,
    project_id: Annotated[
        str | None, Field(max_length=64, description="Only this project's jobs, e.g. 'default'. Omitted: all.")
    ] = None,
    status: Annotated[
        Literal["pending", "running", "completed", "failed", "cancelled"] | None,
        Field(description="Only jobs in this status, e.g. 'running'."),
    ] = None,
    limit: Annotated[int, Field(ge=1, le=100, description="How many jobs at most, e.g. 5.")] = 20,
) -> JobList:
    """Recent indexing runs, newest first, with get_indexing_status's fields; kind: 'index' (a started
    job), 'foreground' (a CLI index run), 'sync' (the daemon following edits: the last one per repository)."""
    async with app_of(ctx).runtime.db.connection() as conn:
        jobs = await job_store.list_jobs(conn, project_id, status, limit)
    return {"jobs": [cast(JobRecord, j.to_dict()) for j in jobs]}


async def cancel_indexing_job(ctx: Context, job_id: JobIdArg) -> JobRecord:
    """Cancel an indexing job: a pending one at once, a running one at its next batch boundary. What was
    already stored stays searchable."""
    async with app_of(ctx).runtime.db.connection() as conn:
        return cast(JobRecord, (await job_store.request_cancel(conn, job_id)).to_dict())


# registered in this order (tools/list lists them so), each with what it does to the index
TOOLS: list[ToolSpec] = [
    (start_indexing_background, WRITES),
    (get_indexing_status, READ_ONLY),
    (list_indexing_jobs, READ_ONLY),
    (cancel_indexing_job, WRITES),
]
