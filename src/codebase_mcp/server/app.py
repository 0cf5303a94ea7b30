"""The MCP server: tools over stdio (default) or streamable HTTP, a job worker in-process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

from codebase_mcp import package_version
from codebase_mcp.daemon import client as daemon_client
from codebase_mcp.daemon.model import DaemonEmbedded
from codebase_mcp.daemon.model import warm_up as warm_up_model
from codebase_mcp.jobs.worker import Worker
from codebase_mcp.runtime import open_runtime
from codebase_mcp.server import tools_jobs, tools_repos, tools_search
from codebase_mcp.server.handover import Handovers
from codebase_mcp.server.state import App
from codebase_mcp.server.tasks import IndexingTasks
from codebase_mcp.server.tooling import CodebaseServer, ToolSpec, make_tool
from codebase_mcp.settings import Settings

log = logging.getLogger(__name__)

# every tool, in the order tools/list lists them
TOOLS: list[ToolSpec] = [*tools_jobs.TOOLS, *tools_search.TOOLS, *tools_repos.TOOLS]

INSTRUCTIONS = (
    "Code search over indexed repositories, by meaning and by identifier. First index: "
    "start_indexing_background(repo_path=...), then call get_indexing_status(job_id, wait_seconds=20) until "
    "'completed'. Then search_code for code by description or identifier, find_symbol for where a name is "
    "defined, find_references for where it is used. Use grep for exact strings. An omitted project_id means "
    "the session's project (set_working_directory) or 'default'."
)


def build_server(settings: Settings, *, http: tuple[AuthSettings, TokenVerifier] | None = None) -> MCPServer[Any]:
    """The MCP server with its tools; ``http`` adds bearer-token auth for the HTTP transport."""
    return CodebaseServer(
        "codebase-mcp",
        tools=[make_tool(fn, annotations) for fn, annotations in TOOLS],
        version=package_version(),
        instructions=INSTRUCTIONS,
        lifespan=lambda _server: open_app(settings),
        auth=http[0] if http else None,
        token_verifier=http[1] if http else None,
        log_level="WARNING",
        extensions=[IndexingTasks(settings.job_retention_days)],
    )


@contextlib.asynccontextmanager
async def open_app(settings: Settings) -> AsyncIterator[App]:
    """What a server opens for its life (the lifespan): the runtime, the model warming up in the
    background, and where its jobs run (the daemon it stays attached to, a worker of its own, or none)."""
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


def _report_warm_up(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("could not load the embedding model: %s", task.exception())


def _report_detached(task: asyncio.Task[None]) -> None:
    """Staying attached to the daemon only ends when the server stops; say so at once if it dies."""
    if not task.cancelled() and task.exception() is not None:
        log.error("stopped following the background daemon", exc_info=task.exception())
