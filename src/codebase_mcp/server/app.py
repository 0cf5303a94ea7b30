"""The MCP server: tools over stdio (default) or streamable HTTP, a job worker in-process."""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import functools
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, ParamSpec, TypeVar, cast

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, InputRequiredResult, ToolAnnotations
from pydantic import Field, ValidationError

from codebase_mcp import package_version
from codebase_mcp.core import untrusted
from codebase_mcp.core.validation import check_project_id, validate_client_path
from codebase_mcp.daemon import client as daemon_client
from codebase_mcp.daemon.model import DaemonEmbedded
from codebase_mcp.daemon.model import warm_up as warm_up_model
from codebase_mcp.domain import Job, RepositoryFreshness, SearchFilters
from codebase_mcp.errors import CodebaseError, DatabaseUnavailable, InvalidInput, NotFound
from codebase_mcp.jobs.worker import Worker
from codebase_mcp.runtime import Runtime, open_runtime
from codebase_mcp.search import freshness, symbols
from codebase_mcp.server import render
from codebase_mcp.server.handover import Handovers
from codebase_mcp.server.schemas import (
    Detail,
    Forgotten,
    Freshness,
    JobList,
    JobRecord,
    ReferenceResult,
    RepositoryList,
    RepositoryRecord,
    SearchResult,
    StartedJob,
    SymbolResult,
    WorkingDirectory,
    lean_schema,
)
from codebase_mcp.server.tasks import IndexingTasks
from codebase_mcp.settings import Settings
from codebase_mcp.storage import index_store, job_store, repo_store, symbol_store

log = logging.getLogger(__name__)
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
WRITES = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True)
P = ParamSpec("P")


@dataclass
class SessionState:
    """What one MCP client chose for its own session."""

    working_project: str | None = None


MAX_SESSIONS = 4096  # sessions whose choices are remembered; the least recently used are forgotten
MAX_WAIT_SECONDS = 25  # get_indexing_status's longest wait: well inside the ~30 s clients give a call
STATUS_POLL_SECONDS = 0.1  # how often a waiting get_indexing_status reads its job again


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
    # jobs started here and handed to the daemon (None: jobs run in this server, or nowhere)
    handovers: Handovers | None = None
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

    async def repositories(self, project: str, filters: SearchFilters) -> list[RepositoryFreshness]:
        """The repositories a search covers, with their freshness (read before any content); an unknown
        language filter is an error naming the languages the project has."""
        async with self.runtime.db.connection() as conn:
            scope = await repo_store.search_scope(conn, project, filters.repository or None)
            repo_ids = [f.repository_id for f in scope]
            if filters.language and repo_ids:
                present = await symbol_store.languages(conn, repo_ids)
                if present and filters.language.strip().lower() not in present:
                    raise InvalidInput(
                        f"No {untrusted.clean(filters.language, 64)!r} files are indexed in project {project!r}. "
                        f"Languages present: {', '.join(present)}."
                    )
        return scope

    async def why_empty(self, project: str, repo_ids: list[int], filters: SearchFilters, tool: str) -> str:
        """Why a search found nothing, and what to do about it."""
        if not repo_ids:
            return (
                f"Nothing is indexed in project {project!r} yet. Index a repository with "
                "start_indexing_background(repo_path='/absolute/path'), call get_indexing_status(job_id, "
                f"wait_seconds=20) until 'completed', then call {tool} again."
            )
        async with self.runtime.db.connection() as conn:
            empty = await symbol_store.filters_matching_nothing(conn, repo_ids, filters)
        values = {"language": filters.language, "file_type": filters.file_type, "directory": filters.path_prefix}
        if empty:
            named = ", ".join(f"{k}={untrusted.clean(values[k], 100)!r}" for k in empty)
            return f"The filter {named} matches no indexed file: remove or change it."
        if any(values.values()):
            return "Nothing matched with these filters; try without them."
        return "Nothing matched."

    async def wait_for_change(self, ctx: Context, job: Job, seconds: float) -> Job:
        """``job`` read again every ``STATUS_POLL_SECONDS`` until its status or phase differs from
        ``job``'s or ``seconds`` have passed (never later: a read still in flight then is abandoned and
        the last one answers). Each read takes a pooled connection for itself only, and no search slot.
        A rise in progress is reported to a client that asked for progress (a no-op otherwise)."""
        deadline = asyncio.get_running_loop().time() + seconds
        seen, reported = (job.status, job.phase), job.progress_percent
        timeout = asyncio.timeout_at(deadline)
        try:
            async with timeout:
                while True:
                    await asyncio.sleep(STATUS_POLL_SECONDS)
                    async with self.runtime.db.connection() as conn:
                        job = await job_store.get_job(conn, str(job.id))
                    if (job.status, job.phase) != seen:
                        return job
                    if job.progress_percent > reported:
                        reported = job.progress_percent
                        await ctx.report_progress(reported, 100, job.status_message)
        except TimeoutError:
            if not timeout.expired():
                raise
        return job


def app_of(ctx: Context) -> App:
    app = ctx.request_context.lifespan_context
    assert isinstance(app, App)
    return app


T = TypeVar("T")


def guarded(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Every tool runs through this: a dropped database connection is retried once on a fresh one
    (restarting the embedded server if it stopped), our errors reach the client as their code and
    message, anything else is logged and reported as an internal error."""

    @functools.wraps(fn)
    async def tool(*args: P.args, **kwargs: P.kwargs) -> T:
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


def _report_detached(task: asyncio.Task[None]) -> None:
    """Staying attached to the daemon only ends when the server stops; say so at once if it dies."""
    if not task.cancelled() and task.exception() is not None:
        log.error("stopped following the background daemon", exc_info=task.exception())


class CodebaseServer(MCPServer[Any]):
    """The SDK's server with argument errors an agent can act on: an unknown argument is named with the
    valid ones, and a wrong value names the argument and what it must be (instead of pydantic's raw
    report, which also echoes the value back)."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context | None = None
    ) -> CallToolResult | InputRequiredResult:
        tool = self._tool_manager.get_tool(name)
        if tool is not None:
            valid = list(tool.parameters.get("properties", {}))
            unknown = [key for key in arguments if key not in valid]
            if unknown:
                names = ", ".join(repr(untrusted.clean(k, 60)) for k in unknown[:5])
                hint = "".join(
                    f" Did you mean {close[0]!r} instead of {untrusted.clean(k, 60)!r}?"
                    for k in unknown[:5]
                    if (close := difflib.get_close_matches(k, valid, n=1))
                )
                raise ToolError(
                    f"invalid_input: {name} has no argument {names}.{hint} Its arguments are: {', '.join(valid)}."
                )
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError) and tool is not None:
                raise ToolError(_argument_errors(name, exc.__cause__, tool.parameters)) from None
            raise


FIRST_SENTENCE = re.compile(r"(?<!e\.g)\. ")  # the end of a description's first sentence ("e.g. x" goes on)


def _argument_errors(tool: str, error: ValidationError, schema: dict[str, Any]) -> str:
    problems = []
    for err in error.errors()[:5]:
        loc = ".".join(str(part) for part in err["loc"]) or "arguments"
        top = str(err["loc"][0]) if err["loc"] else ""
        described = schema.get("properties", {}).get(top, {}).get("description", "")
        example = f" ({FIRST_SENTENCE.split(described)[0][:160]})" if described else ""
        problems.append(f"{loc}: {err['msg']}{example}")
    return f"invalid_input: bad arguments for {tool}: " + "; ".join(problems)


# --- parameter descriptions ------------------------------------------------------------------------

ProjectArg = Annotated[
    str | None,
    Field(
        max_length=64,
        description="Project, e.g. 'acme-backend'. Omitted: the session's or 'default'.",
    ),
]
RepositoryArg = Annotated[
    str | None,
    Field(
        max_length=4096,
        description="Only this repository (id, root path or name), e.g. 'payments'.",
    ),
]
LanguageArg = Annotated[
    str | None,
    Field(max_length=64, description="Only this language, e.g. 'python' or 'typescript'."),
]
FileTypeArg = Annotated[str | None, Field(max_length=32, description="Only this file extension, e.g. 'py' or '.tsx'.")]
DirectoryArg = Annotated[
    str | None,
    Field(
        max_length=500,
        description="Only files under this repository-relative folder, e.g. 'src/api'.",
    ),
]
DetailArg = Annotated[
    Detail,
    Field(
        description="'locations' (cheapest: paths, lines, symbols), 'snippets' (lines around the match) or "
        "'full' (whole chunks, with context).",
    ),
]
JobIdArg = Annotated[
    str,
    Field(
        max_length=100,
        description="Job id from start_indexing_background, e.g. '0b9e4c1e-5d7a-4f43-9a51-2f0c3d1e8a77'.",
    ),
]
SymbolNameArg = Annotated[
    str,
    Field(
        min_length=1,
        max_length=300,
        description="Identifier or qualified name, e.g. 'parse_config', 'Invoice.total' or 'linalg::Matrix'.",
    ),
]


def build_server(settings: Settings, *, http: tuple[AuthSettings, TokenVerifier] | None = None) -> MCPServer[Any]:
    """The MCP server with its tools; ``http`` adds bearer-token auth for the HTTP transport."""

    @contextlib.asynccontextmanager
    async def lifespan(_server: MCPServer[Any]) -> AsyncIterator[App]:
        in_daemon = settings.run_worker and settings.daemon
        shared = (lambda own: DaemonEmbedded(own, settings.home)) if in_daemon else None
        async with open_runtime(settings, max_connections=24, wrap_model=shared) as rt:
            app = App(rt, asyncio.Semaphore(settings.max_concurrent_searches))
            # load the embedding model now, in a thread, so the first search does not pay for it (with
            # jobs in the daemon: the daemon's model, which embeds this server's queries)
            warm_up = asyncio.create_task(warm_up_model(rt.model))
            warm_up.add_done_callback(_report_warm_up)
            worker_task = None
            worker = None
            detached = asyncio.Event()
            if in_daemon:
                # jobs run in the data directory's daemon, which outlives this server; staying attached
                # keeps it (and its watches) alive while this server lives, and replaces it if it dies
                app.handovers = Handovers(rt)
                worker_task = asyncio.create_task(daemon_client.stay_attached(settings.home, detached))
                worker_task.add_done_callback(_report_detached)
            elif settings.run_worker:
                worker = Worker(rt)
                worker_task = asyncio.create_task(worker.run())
            try:
                yield app
            finally:
                detached.set()
                warm_up.cancel()  # still waiting for a daemon: no longer needed
                if app.handovers is not None:
                    await app.handovers.close()
                if worker is not None:
                    worker.stop()  # hands its job back at the next batch boundary: wait for that
                elif worker_task is not None:
                    worker_task.cancel()  # the daemon's link holds nothing but a connection
                if worker_task is not None:
                    with contextlib.suppress(Exception, asyncio.CancelledError):
                        await asyncio.wait_for(worker_task, 30)

    server = CodebaseServer(
        "codebase-mcp",
        version=package_version(),
        instructions="Code search over indexed repositories, by meaning and by identifier. First index: "
        "start_indexing_background(repo_path=...), then call get_indexing_status(job_id, wait_seconds=20) until "
        "'completed'. Then search_code for code by description or identifier, find_symbol for where a name is "
        "defined, find_references for where it is used. Use grep for exact strings. An omitted project_id means "
        "the session's project (set_working_directory) or 'default'.",
        lifespan=lifespan,
        auth=http[0] if http else None,
        token_verifier=http[1] if http else None,
        log_level="WARNING",
        extensions=[IndexingTasks(settings.job_retention_days)],
    )

    def tool(annotations: ToolAnnotations) -> Callable[[Callable[..., Awaitable[Any]]], None]:
        def register(fn: Callable[..., Awaitable[Any]]) -> None:
            # one line per paragraph: the docstring's indentation is noise in an agent's context
            description = " ".join((fn.__doc__ or "").split())
            server.add_tool(guarded(fn), description=description, annotations=annotations)

        return register

    @tool(WRITES)
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

    @tool(READ_ONLY)
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

    @tool(READ_ONLY)
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
        """Recent indexing jobs, newest first, with get_indexing_status's fields."""
        async with app_of(ctx).runtime.db.connection() as conn:
            jobs = await job_store.list_jobs(conn, project_id, status, limit)
        return {"jobs": [cast(JobRecord, j.to_dict()) for j in jobs]}

    @tool(WRITES)
    async def cancel_indexing_job(ctx: Context, job_id: JobIdArg) -> JobRecord:
        """Cancel an indexing job: a pending one at once, a running one at its next batch boundary. What was
        already stored stays searchable."""
        async with app_of(ctx).runtime.db.connection() as conn:
            return cast(JobRecord, (await job_store.request_cancel(conn, job_id)).to_dict())

    @tool(READ_ONLY)
    async def search_code(
        ctx: Context,
        query: Annotated[
            str,
            Field(
                min_length=1,
                max_length=2000,
                description="What the code does, a question or an identifier, e.g. 'retry an HTTP request with "
                "backoff' or 'parse_config'.",
            ),
        ],
        project_id: ProjectArg = None,
        repository_id: RepositoryArg = None,
        language: LanguageArg = None,
        file_type: FileTypeArg = None,
        directory: DirectoryArg = None,
        limit: Annotated[int, Field(ge=1, le=50, description="How many results at most, e.g. 5.")] = 10,
        detail: DetailArg = "snippets",
    ) -> Annotated[CallToolResult, SearchResult]:
        """Find code by meaning or identifier (hybrid semantic + keyword search, ranked). Use grep for exact
        strings or regexes, find_symbol for definitions, find_references for uses. Each result:
        path:start-end, symbol, kind, snippet."""
        app = app_of(ctx)
        project = await app.project(ctx, project_id, must_exist=True)
        filters = SearchFilters(repository_id, language, file_type, directory)
        repo_ids = [f.repository_id for f in await app.repositories(project, filters)]
        async with app.search_slots:
            result = await app.runtime.search.search(
                query, project_id=project, filters=filters, limit=limit, max_chars=render.FULL_STEPS[0]
            )
        base: SearchResult = {
            "results": [],
            "total_count": result.total_count,
            "latency_ms": result.latency_ms,
            "project_id": project,
            "detail": detail,
            "notice": untrusted.NOTICE,
        }
        if result.warning:
            base["warning"] = result.warning
        if result.freshness:
            base["freshness"] = [cast(Freshness, f.to_dict()) for f in result.freshness]
        if not result.hits:
            base["message"] = await app.why_empty(project, repo_ids, filters, "search_code")
        return render.search(base, result, detail)

    @tool(READ_ONLY)
    async def find_symbol(
        ctx: Context,
        name: SymbolNameArg,
        kind: Annotated[
            str | None,
            Field(max_length=32, description="Only this kind: 'class', 'function', 'method', 'type' or 'module'."),
        ] = None,
        language: LanguageArg = None,
        repository_id: RepositoryArg = None,
        project_id: ProjectArg = None,
        directory: DirectoryArg = None,
        limit: Annotated[int, Field(ge=1, le=50, description="How many definitions at most, e.g. 5.")] = 10,
        detail: DetailArg = "snippets",
    ) -> Annotated[CallToolResult, SymbolResult]:
        """Where a class, function, method, type or module is defined, by exact or qualified name; non-test
        code first. Use search_code when you know what the code does but not its name."""
        app = app_of(ctx)
        project = await app.project(ctx, project_id, must_exist=True)
        filters = SearchFilters(repository_id, language, None, directory)
        scope = await app.repositories(project, filters)
        repo_ids = [f.repository_id for f in scope]
        started = time.perf_counter()
        async with app.search_slots, app.runtime.db.connection() as conn:
            defs = await symbols.find_definitions(conn, repo_ids, filters, name, kind, limit)
        base: SymbolResult = {
            "definitions": [],
            "latency_ms": symbols.elapsed_ms(started),
            "project_id": project,
            "detail": detail,
            "notice": untrusted.NOTICE,
        }
        if fresh := freshness.reported(scope, (d.repository_id for d in defs), asked=bool(repository_id)):
            base["freshness"] = [cast(Freshness, f.to_dict()) for f in fresh]
        if not defs:
            base["message"] = await app.why_empty(project, repo_ids, filters, "find_symbol") + (
                f" No definition named {untrusted.clean(name, 100)!r}"
                + (f" of kind {kind!r}" if kind else "")
                + ": try search_code with a description, or find_references."
            )
        return render.symbols(base, defs, untrusted.clean(name, 300), detail)

    @tool(READ_ONLY)
    async def find_references(
        ctx: Context,
        name: SymbolNameArg,
        language: LanguageArg = None,
        repository_id: RepositoryArg = None,
        project_id: ProjectArg = None,
        directory: DirectoryArg = None,
        limit: Annotated[int, Field(ge=1, le=200, description="How many lines at most, e.g. 100.")] = 30,
    ) -> Annotated[CallToolResult, ReferenceResult]:
        """Where an identifier occurs (calls, imports, uses, definition): lines with their text, by file,
        from the index (reindex to see recent edits). 'Parser.parse' is looked for as the word 'parse'."""
        app = app_of(ctx)
        project = await app.project(ctx, project_id, must_exist=True)
        filters = SearchFilters(repository_id, language, None, directory)
        scope = await app.repositories(project, filters)
        repo_ids = [f.repository_id for f in scope]
        started = time.perf_counter()
        async with app.search_slots, app.runtime.db.connection() as conn:
            refs, total = await symbols.find_references(conn, repo_ids, filters, name, limit)
        base: ReferenceResult = {
            "files": [],
            "total_count": total,
            "shown": 0,
            "latency_ms": symbols.elapsed_ms(started),
            "project_id": project,
            "notice": untrusted.NOTICE,
        }
        if fresh := freshness.reported(scope, (r.repository_id for r in refs), asked=bool(repository_id)):
            base["freshness"] = [cast(Freshness, f.to_dict()) for f in fresh]
        if not refs:
            base["message"] = await app.why_empty(project, repo_ids, filters, "find_references") + (
                f" {untrusted.clean(name, 100)!r} occurs nowhere in the indexed text."
            )
        return render.references(base, refs, untrusted.clean(name, 300))

    @tool(READ_ONLY)
    async def list_repositories(ctx: Context, project_id: ProjectArg = None) -> RepositoryList:
        """Indexed repositories of a project: id, name, root path, file and chunk counts, embedding coverage
        and when each was last indexed."""
        app = app_of(ctx)
        project = await app.project(ctx, project_id, must_exist=True)
        async with app.runtime.db.connection() as conn:
            repos = await repo_store.list_repositories(conn, project)
        return {"repositories": [cast(RepositoryRecord, r.to_dict()) for r in repos]}

    @tool(DESTRUCTIVE)
    async def forget_repository(
        ctx: Context,
        repository: Annotated[
            str,
            Field(
                min_length=1,
                max_length=4096,
                description="Its id, root path or name, e.g. 'payments'.",
            ),
        ],
        project_id: ProjectArg = None,
    ) -> Forgotten:
        """Remove a repository and everything indexed from it (files on disk are not touched)."""
        app = app_of(ctx)
        project = await app.project(ctx, project_id, must_exist=True)
        async with app.runtime.db.connection() as conn:
            repo = await repo_store.find_repository(conn, project, repository)
            await repo_store.forget_repository(conn, repo.id)
        return {"forgotten": repo.root_path, "repository_id": repo.id}

    @tool(WRITES)
    async def set_working_directory(
        ctx: Context,
        directory: Annotated[
            str,
            Field(
                min_length=1,
                max_length=4096,
                description="Absolute path of the folder you work in, e.g. '/home/me/src/api'.",
            ),
        ],
    ) -> WorkingDirectory:
        """Use the project named in .codebase-mcp/config.json ({"project_id": "..."}) of this directory or a
        parent, for this session only; 'default' when there is none."""
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
    no option for this; its argument models are read live, so tightening them here takes effect.)
    Both published schemas are written shortly (``schemas.lean_schema``): tools/list is read into every
    agent's context."""
    for tool in server._tool_manager.list_tools():
        model = tool.fn_metadata.arg_model
        model.model_config["extra"] = "forbid"
        model.model_rebuild(force=True)
        tool.parameters = lean_schema(model.model_json_schema(by_alias=True), nullable=False)
        if tool.fn_metadata.output_schema is not None:
            tool.fn_metadata.output_schema = lean_schema(tool.fn_metadata.output_schema, nullable=True)
