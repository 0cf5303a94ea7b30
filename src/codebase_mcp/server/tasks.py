"""Indexing as a durable MCP task: the ``io.modelcontextprotocol/tasks`` extension (SEP-2663, protocol
2026-07-28).

A client that declares the extension on its ``tools/call`` of ``start_indexing_background`` gets a task
handle (``resultType: "task"``) instead of the job record, and follows it with ``tasks/get`` and
``tasks/cancel``. The task *is* the indexing job: its id is the job id and its state is the job's row in
PostgreSQL, so a task outlives the server that created it, and any server on the same database answers
for it. Clients without the extension get the job record, as before.

How a job maps onto a task: pending and running are ``working`` (the status message carries phase and
progress); completed is ``completed`` with the start tool's result, its message the job's summary; a failed
job is ``completed`` too, with ``isError: true`` (the spec keeps ``failed`` for JSON-RPC errors, and a
synchronous call would have reported an indexing failure as a tool error); cancelled is ``cancelled``.
A job never needs input, so ``input_required`` never occurs and ``tasks/update`` only acknowledges.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.shared.exceptions import MCPError
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    CallToolRequestParams,
    CallToolResult,
    RequestParams,
    TextContent,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from codebase_mcp.domain import Job, JobStatus, RunKind
from codebase_mcp.errors import CodebaseError, InvalidInput, NotFound
from codebase_mcp.runtime import Runtime
from codebase_mcp.storage import job_store

log = logging.getLogger(__name__)

EXTENSION = "io.modelcontextprotocol/tasks"
TASK_TOOLS = frozenset({"start_indexing_background"})  # the tools a task-capable client gets a task from
POLL_PENDING_MS = 1000  # a queued job starts within about a second when the daemon runs
POLL_RUNNING_MS = 2000  # progress is published per batch: a few seconds apart


class TaskParams(RequestParams):
    task_id: str = Field(max_length=100)


class UpdateTaskParams(TaskParams):
    input_responses: dict[str, Any] = Field(default_factory=dict)


class HasRuntime(Protocol):
    """The server's lifespan context (``app.App``), as far as tasks need it."""

    runtime: Runtime


class IndexingTasks(Extension):
    """The tasks extension over indexing jobs; ``retention_days`` is how long finished jobs are kept."""

    identifier = EXTENSION

    def __init__(self, retention_days: float) -> None:
        self.retention = timedelta(days=retention_days)

    def methods(self) -> list[MethodBinding]:
        versions = frozenset(MODERN_PROTOCOL_VERSIONS)
        return [
            MethodBinding(method="tasks/get", params_type=TaskParams, handler=self.get, protocol_versions=versions),
            MethodBinding(
                method="tasks/update", params_type=UpdateTaskParams, handler=self.update, protocol_versions=versions
            ),
            MethodBinding(
                method="tasks/cancel", params_type=TaskParams, handler=self.cancel, protocol_versions=versions
            ),
        ]

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        result = await call_next(ctx)
        if params.name not in TASK_TOOLS or not declared(ctx) or ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            return result
        started = result if isinstance(result, CallToolResult) else None
        job_id = (started.structured_content or {}).get("job_id") if started and not started.is_error else None
        if not isinstance(job_id, str):
            return result
        job = await self._job(ctx, job_id)
        if not job.status.active:
            return result  # rejected at once (a bad path): the plain answer says why, no task to follow
        # the job's row is committed before this answer, so tasks/get resolves the task at once
        return {"resultType": "task", **self.task(job)}

    async def get(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> HandlerResult:
        require_declared(ctx)
        job = await self._job(ctx, params.task_id)
        return {"resultType": "complete", **self.task(job), **outcome(job)}

    async def update(self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskParams) -> HandlerResult:
        require_declared(ctx)
        await self._job(ctx, params.task_id)  # an indexing job never asks for input: nothing is outstanding
        return {"resultType": "complete"}

    async def cancel(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> HandlerResult:
        require_declared(ctx)
        job = await self._job(ctx, params.task_id)
        try:
            async with _runtime(ctx).db.connection() as conn:
                await job_store.request_cancel(conn, str(job.id))
        except (NotFound, InvalidInput):
            raise unknown_task(params.task_id) from None
        except CodebaseError as exc:
            raise MCPError(code=INTERNAL_ERROR, message=exc.for_client()) from None
        return {"resultType": "complete"}

    async def _job(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> Job:
        """The job a task id names: only a queued job (kind ``index``) was ever a task; a foreground run
        or a sync is not one (``list_indexing_jobs`` shows them)."""
        try:
            async with _runtime(ctx).db.connection() as conn:
                job = await job_store.get_job(conn, task_id)
        except (NotFound, InvalidInput):
            raise unknown_task(task_id) from None
        except CodebaseError as exc:
            raise MCPError(code=INTERNAL_ERROR, message=exc.for_client()) from None
        if job.kind is not RunKind.INDEX:
            raise unknown_task(task_id)
        return job

    def task(self, job: Job) -> dict[str, Any]:
        """The extension's ``Task`` for a job: id, status, message, times, TTL and poll interval."""
        out: dict[str, Any] = {
            "taskId": str(job.id),
            "status": task_status(job.status),
            "statusMessage": status_message(job),
            "createdAt": _iso(job.created_at),
            "lastUpdatedAt": _iso(job.updated_at),
            # kept until pruned: retention after the job ends; unknown (unlimited so far) while it runs
            "ttlMs": None
            if job.completed_at is None
            else int(((job.completed_at - job.created_at) + self.retention).total_seconds() * 1000),
        }
        if job.status.active:
            out["pollIntervalMs"] = POLL_PENDING_MS if job.status is JobStatus.PENDING else POLL_RUNNING_MS
        return out


def task_status(status: JobStatus) -> str:
    if status.active:
        return "working"
    return "cancelled" if status is JobStatus.CANCELLED else "completed"


def status_message(job: Job) -> str:
    if job.status is JobStatus.PENDING:
        said = job.status_message  # e.g. why no daemon has claimed it yet
        return f"queued: {said}" if said and said != "queued" else "queued"
    if job.status is JobStatus.RUNNING:
        eta = f", about {job.eta_seconds:.0f} s left" if job.eta_seconds is not None else ""
        return f"{job.progress_percent:.0f}% ({job.status_message or job.phase}){eta}"
    return summary(job)


def summary(job: Job) -> str:
    """One line on how the job ended."""
    if job.status is JobStatus.FAILED:
        return f"indexing failed: {job.error_message or 'no reason recorded'}"
    if job.status is JobStatus.CANCELLED:
        return f"indexing cancelled after {job.files_indexed} files; what was stored stays searchable"
    took = (
        f" in {(job.completed_at - job.started_at).total_seconds():.1f} s"
        if job.completed_at is not None and job.started_at is not None
        else ""
    )
    skipped = f" ({job.files_skipped} skipped)" if job.files_skipped else ""
    return (
        f"indexed {job.repo_path}: {job.files_indexed:,} files{skipped}, {job.chunks_created:,} chunks, "
        f"{job.chunks_embedded:,} embedded{took}"
    )


def outcome(job: Job) -> dict[str, Any]:
    """The payload a finished task carries: the start tool's result, as the call would have returned it."""
    if job.status.active or job.status is JobStatus.CANCELLED:
        return {}
    text = summary(job)
    started = {"job_id": str(job.id), "status": str(job.status), "project_id": job.project_id, "message": text}
    result = CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=started,
        is_error=job.status is JobStatus.FAILED,
    )
    return {"result": result.model_dump(by_alias=True, mode="json", exclude_none=True)}


def declared(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether this request's client declared the tasks extension (per request on 2026-07-28)."""
    meta = ctx.meta or {}
    raw = meta.get(CLIENT_CAPABILITIES_META_KEY) if isinstance(meta, dict) else None
    if isinstance(raw, dict):
        extensions = raw.get("extensions")
        return isinstance(extensions, dict) and EXTENSION in extensions
    capabilities = ctx.session.client_capabilities
    return bool(capabilities and capabilities.extensions and EXTENSION in capabilities.extensions)


def require_declared(ctx: ServerRequestContext[Any, Any]) -> None:
    if not declared(ctx):
        raise MCPError(
            code=MISSING_REQUIRED_CLIENT_CAPABILITY,
            message="Missing required client capability",
            data={"requiredCapabilities": {"extensions": {EXTENSION: {}}}},
        )


def unknown_task(task_id: str) -> MCPError:
    return MCPError(code=INVALID_PARAMS, message=f"Failed to retrieve task: Task not found ({task_id[:100]!r})")


def _runtime(ctx: ServerRequestContext[Any, Any]) -> Runtime:
    app: HasRuntime = ctx.lifespan_context
    return app.runtime


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")
