"""What one server opened (``App``, the SDK's lifespan context) and what each of its sessions chose."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

from mcp.server.mcpserver import Context

from codebase_mcp.core import untrusted
from codebase_mcp.core.validation import check_project_id
from codebase_mcp.domain import Job, RepositoryFreshness, SearchFilters
from codebase_mcp.errors import InvalidInput, NotFound
from codebase_mcp.runtime import Runtime
from codebase_mcp.server.handover import Handovers
from codebase_mcp.storage import job_store, repo_store, symbol_store

MAX_SESSIONS = 4096  # sessions whose choices are remembered; the least recently used are forgotten
MAX_WAIT_SECONDS = 25  # get_indexing_status's longest wait: well inside the ~30 s clients give a call
STATUS_POLL_SECONDS = 0.1  # how often a waiting get_indexing_status reads its job again


@dataclass
class SessionState:
    """What one MCP client chose for its own session."""

    working_project: str | None = None


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
