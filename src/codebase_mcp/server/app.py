"""The MCP server: tools over stdio (default) or streamable HTTP, a job worker in-process."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, ParamSpec

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from codebase_mcp.core import untrusted
from codebase_mcp.core.validation import check_project_id, validate_client_path
from codebase_mcp.domain import SearchFilters
from codebase_mcp.errors import CodebaseError, DatabaseUnavailable, InvalidInput, NotFound
from codebase_mcp.jobs.worker import Worker
from codebase_mcp.runtime import Runtime, open_runtime
from codebase_mcp.settings import Settings
from codebase_mcp.storage import index_store, job_store, repo_store

log = logging.getLogger(__name__)
RESPONSE_BUDGET_CHARS = 60_000  # well under Claude Code's 25,000-token tool output limit
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
WRITES = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True)
P = ParamSpec("P")


@dataclass
class SessionState:
    """What one MCP client chose for its own session."""

    working_project: str | None = None


MAX_SESSIONS = 4096  # sessions whose choices are remembered; the least recently used are forgotten


def session_key(ctx: Context) -> str:
    """Which MCP session a request belongs to: the streamable-HTTP session id, or the one client of a
    stdio server."""
    request = ctx.request_context.request
    headers = getattr(request, "headers", None)
    session_id = headers.get("mcp-session-id") if headers is not None else None
    return f"http:{session_id}" if session_id else "stdio"


@dataclass
class App:
    """What one server opened (the lifespan context): shared by its sessions, never by two servers."""

    runtime: Runtime
    # searches are CPU-bound: running more at once than there are cores only lengthens every one of
    # them and the queue in front of quick calls (status polls); the rest wait their turn here
    search_slots: asyncio.Semaphore
    sessions: OrderedDict[str, SessionState] = field(default_factory=OrderedDict)

    def session(self, ctx: Context) -> SessionState:
        """This client's own state, kept for the least recently used ``MAX_SESSIONS`` sessions."""
        key = session_key(ctx)
        state = self.sessions.pop(key, None) or SessionState()
        self.sessions[key] = state
        while len(self.sessions) > MAX_SESSIONS:
            self.sessions.popitem(last=False)
        return state

    async def project(self, ctx: Context, project_id: str | None, *, must_exist: bool) -> str:
        project = check_project_id(project_id or self.session(ctx).working_project or "default")
        if must_exist:
            async with self.runtime.db.connection() as conn:
                exists = await repo_store.project_exists(conn, project)
            if not exists:
                raise NotFound(f"Unknown project {project!r}. Index a repository into it first.")
        return project


def app_of(ctx: Context) -> App:
    app = ctx.request_context.lifespan_context
    assert isinstance(app, App)
    return app


def guarded(fn: Callable[P, Awaitable[dict[str, Any]]]) -> Callable[P, Awaitable[dict[str, Any]]]:
    """Every tool runs through this: a dropped database connection is retried once on a fresh one
    (restarting the embedded server if it stopped), our errors reach the client as their code and
    message, anything else is logged and reported as an internal error."""

    @functools.wraps(fn)
    async def tool(*args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        ctx = kwargs["ctx"]
        assert isinstance(ctx, Context)
        try:
            try:
                return await fn(*args, **kwargs)
            except DatabaseUnavailable:
                await app_of(ctx).runtime.db.recover()
                return await fn(*args, **kwargs)
        except DatabaseUnavailable as exc:
            log.warning("database unavailable: %s", exc.message[:300])
            raise ToolError(exc.for_client()) from None
        except CodebaseError as exc:
            raise ToolError(exc.for_client()) from None
        except Exception as exc:
            log.exception("tool failed")
            raise ToolError(
                f"internal_error: Internal error ({type(exc).__name__}); details are in the server log."
            ) from None

    return tool


def _report_warm_up(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("could not load the embedding model: %s", task.exception())


def build_server(settings: Settings, *, http: tuple[AuthSettings, TokenVerifier] | None = None) -> MCPServer[Any]:
    """The MCP server with its tools; ``http`` adds bearer-token auth for the HTTP transport."""

    @contextlib.asynccontextmanager
    async def lifespan(_server: MCPServer[Any]) -> AsyncIterator[App]:
        async with open_runtime(settings, max_connections=24) as rt:
            app = App(rt, asyncio.Semaphore(settings.max_concurrent_searches))
            # load the embedding model now, in a thread, so the first search does not pay for it
            warm_up = asyncio.create_task(asyncio.to_thread(rt.model.embed_query, "warm up"))
            warm_up.add_done_callback(_report_warm_up)
            worker_task = None
            worker = None
            if settings.run_worker:
                worker = Worker(rt)
                worker_task = asyncio.create_task(worker.run())
            try:
                yield app
            finally:
                if worker is not None and worker_task is not None:
                    worker.stop()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(worker_task, 30)

    server: MCPServer[Any] = MCPServer(
        "codebase-mcp",
        instructions="Semantic code search. Index with start_indexing_background, poll get_indexing_status, "
        "then search_code.",
        lifespan=lifespan,
        auth=http[0] if http else None,
        token_verifier=http[1] if http else None,
        log_level="WARNING",
    )

    def tool(annotations: ToolAnnotations) -> Callable[[Callable[..., Awaitable[dict[str, Any]]]], None]:
        def register(fn: Callable[..., Awaitable[dict[str, Any]]]) -> None:
            server.add_tool(guarded(fn), annotations=annotations)

        return register

    @tool(WRITES)
    async def start_indexing_background(
        ctx: Context,
        repo_path: Annotated[str, Field(min_length=1, max_length=4096, description="Absolute repository path")],
        project_id: Annotated[str | None, Field(max_length=64)] = None,
        force_reindex: bool = False,
    ) -> dict[str, Any]:
        """Start indexing a repository in the background; returns a job id at once."""
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
        message = "indexing job queued" if created else "a job for this repository is already active"
        return {"job_id": str(job.id), "status": str(job.status), "project_id": project, "message": message}

    @tool(READ_ONLY)
    async def get_indexing_status(
        ctx: Context,
        job_id: Annotated[str, Field(max_length=100)],
        project_id: Annotated[str | None, Field(max_length=64)] = None,
    ) -> dict[str, Any]:
        """Status, phase, progress counters and timestamps of an indexing job."""
        async with app_of(ctx).runtime.db.connection() as conn:
            return (await job_store.get_job(conn, job_id, project_id)).to_dict()

    @tool(READ_ONLY)
    async def list_indexing_jobs(
        ctx: Context,
        project_id: Annotated[str | None, Field(max_length=64)] = None,
        status: Literal["pending", "running", "completed", "failed", "cancelled"] | None = None,
        limit: Annotated[int, Field(ge=1, le=100)] = 20,
    ) -> dict[str, Any]:
        """Recent indexing jobs, newest first."""
        async with app_of(ctx).runtime.db.connection() as conn:
            jobs = await job_store.list_jobs(conn, project_id, status, limit)
        return {"jobs": [j.to_dict() for j in jobs]}

    @tool(WRITES)
    async def cancel_indexing_job(ctx: Context, job_id: Annotated[str, Field(max_length=100)]) -> dict[str, Any]:
        """Cancel a job: pending ones at once, running ones at their next batch boundary."""
        async with app_of(ctx).runtime.db.connection() as conn:
            return (await job_store.request_cancel(conn, job_id)).to_dict()

    @tool(READ_ONLY)
    async def search_code(
        ctx: Context,
        query: Annotated[str, Field(min_length=1, max_length=2000)],
        project_id: Annotated[str | None, Field(max_length=64)] = None,
        repository_id: Annotated[str | None, Field(max_length=4096)] = None,
        language: Annotated[str | None, Field(max_length=64)] = None,
        file_type: Annotated[str | None, Field(max_length=32)] = None,
        directory: Annotated[str | None, Field(max_length=500)] = None,
        limit: Annotated[int, Field(ge=1, le=50)] = 10,
    ) -> dict[str, Any]:
        """Hybrid semantic + keyword code search. Returns ranked chunks with file, lines, symbol, snippet."""
        app = app_of(ctx)
        project = await app.project(ctx, project_id, must_exist=True)
        filters = SearchFilters(repository_id, language, file_type, directory)
        budget = max(400, RESPONSE_BUDGET_CHARS // limit - 600)
        async with app.search_slots:
            result = await app.runtime.search.search(
                query, project_id=project, filters=filters, limit=limit, max_chars=budget
            )
        return {
            "results": [h.to_dict() for h in result.hits],
            "total_count": result.total_count,
            "latency_ms": result.latency_ms,
            "project_id": project,
            "notice": untrusted.NOTICE,
        } | ({"warning": result.warning} if result.warning else {})

    @tool(READ_ONLY)
    async def list_repositories(
        ctx: Context, project_id: Annotated[str | None, Field(max_length=64)] = None
    ) -> dict[str, Any]:
        """Indexed repositories with file and chunk counts, last indexed time and embedding coverage."""
        app = app_of(ctx)
        project = await app.project(ctx, project_id, must_exist=True)
        async with app.runtime.db.connection() as conn:
            repos = await repo_store.list_repositories(conn, project)
        return {"repositories": [r.to_dict() for r in repos]}

    @tool(DESTRUCTIVE)
    async def forget_repository(
        ctx: Context,
        repository: Annotated[str, Field(min_length=1, max_length=4096, description="id, path or name")],
        project_id: Annotated[str | None, Field(max_length=64)] = None,
    ) -> dict[str, Any]:
        """Remove a repository and everything indexed from it."""
        app = app_of(ctx)
        project = await app.project(ctx, project_id, must_exist=True)
        async with app.runtime.db.connection() as conn:
            repo = await repo_store.find_repository(conn, project, repository)
            await repo_store.forget_repository(conn, repo.id)
        return {"forgotten": repo.root_path, "repository_id": repo.id}

    @tool(WRITES)
    async def set_working_directory(
        ctx: Context, directory: Annotated[str, Field(min_length=1, max_length=4096)]
    ) -> dict[str, Any]:
        """Use the project named in .codebase-mcp/config.json of this directory or a parent (for this
        session only)."""
        session = app_of(ctx).session(ctx)
        path = Path(directory)
        if not path.is_absolute() or not path.is_dir():
            raise InvalidInput(f"{directory[:200]!r} is not an absolute path to a directory.")
        for candidate in [path, *path.parents]:
            config = candidate / ".codebase-mcp" / "config.json"
            if config.is_file():
                try:
                    data = json.loads(config.read_text(encoding="utf-8"))
                    project = check_project_id(str(data["project_id"]))
                except (ValueError, KeyError, TypeError, OSError) as exc:
                    raise InvalidInput(f'{config} is not valid: it needs {{"project_id": "..."}}.') from exc
                session.working_project = project
                return {"project_id": project, "config": str(config)}
        session.working_project = None
        return {"project_id": "default", "config": None}

    _forbid_unknown_arguments(server)
    return server


def _forbid_unknown_arguments(server: MCPServer[Any]) -> None:
    """A misspelt argument (``limt=5``) is an error, not silently ignored: every tool's argument model
    forbids extra fields, and its published schema says ``additionalProperties: false``. (The SDK has
    no option for this; its argument models are read live, so tightening them here takes effect.)"""
    for tool in server._tool_manager.list_tools():
        model = tool.fn_metadata.arg_model
        model.model_config["extra"] = "forbid"
        model.model_rebuild(force=True)
        tool.parameters = model.model_json_schema(by_alias=True)
