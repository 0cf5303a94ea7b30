"""Indexing as an MCP task (the ``io.modelcontextprotocol/tasks`` extension, protocol 2026-07-28): a client
that declares the extension gets a task whose id is the job id, follows it with ``tasks/get`` to the job's
summary, cancels with ``tasks/cancel``; a task outlives the server that created it; a client without the
extension gets the job record, as before."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult

from codebase_mcp.domain import RunKind
from codebase_mcp.server.app import build_server
from codebase_mcp.settings import Settings
from codebase_mcp.storage import index_store, job_store
from codebase_mcp.storage.database import Database
from tests.conftest import make_repo
from tests.daemon.test_daemon_processes import stop_daemon
from tests.server.client import params
from tests.server.tasks_client import TaskHandle, Tasks, cancel_task, follow, get_task

MISSING_CAPABILITY = -32021
INVALID_PARAMS = -32602


@pytest.fixture
def quiet(settings: Settings) -> Settings:
    """A server that runs no job: a job stays as the test leaves its row."""
    return settings.model_copy(update={"run_worker": False})


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    out: dict[str, Any] | None = result.structured_content
    assert out is not None
    return out


async def start_task(client: Client, repo: Path) -> TaskHandle:
    """The raw answer of a start: the task handle, not followed."""
    handle = await client.session.call_tool("start_indexing_background", {"repo_path": str(repo)}, allow_claimed=True)
    assert isinstance(handle, TaskHandle), handle
    return handle


async def test_a_task_capable_client_runs_indexing_as_a_task_to_its_summary(settings: Settings, polyglot: Path) -> None:
    tasks = Tasks()
    in_process = settings.model_copy(update={"daemon": False})  # the job runs in this server's worker
    async with Client(build_server(in_process), extensions=[tasks]) as client:
        assert "io.modelcontextprotocol/tasks" in (client.server_capabilities.extensions or {})
        result = await client.call_tool("start_indexing_background", {"repo_path": str(polyglot)})
        done = structured(result)
        [handle] = tasks.seen
        assert handle.status == "working" and handle.poll_interval_ms and handle.ttl_ms is None
        assert done["job_id"] == handle.task_id and done["status"] == "completed"
        assert done["message"].startswith(f"indexed {polyglot}:") and " files" in done["message"]
        assert result.content[0].text == done["message"]  # type: ignore[union-attr]
        final = await get_task(client.session, handle.task_id)
        assert final["status"] == "completed" and "pollIntervalMs" not in final
        assert final["ttlMs"] > 6 * 86_400_000, "kept for the job retention (7 days) after it ends"
        ok = await client.call_tool("search_code", {"query": "parse the configuration"})
        assert structured(ok)["total_count"] > 0


async def test_a_client_without_the_extension_gets_the_job_record(quiet: Settings, polyglot: Path) -> None:
    async with Client(build_server(quiet)) as client:
        started = structured(await client.call_tool("start_indexing_background", {"repo_path": str(polyglot)}))
        assert started["status"] == "pending" and uuid.UUID(started["job_id"])
        with pytest.raises(MCPError) as refused:
            await get_task(client.session, started["job_id"])
    assert refused.value.code == MISSING_CAPABILITY
    assert refused.value.data == {"requiredCapabilities": {"extensions": {"io.modelcontextprotocol/tasks": {}}}}


async def test_a_task_reports_progress_and_is_cancelled(quiet: Settings, polyglot: Path) -> None:
    async with Client(build_server(quiet), extensions=[Tasks()]) as client:
        handle = await start_task(client, polyglot)
        assert handle.status == "working" and handle.status_message == "queued"
        await update_job(
            quiet,
            handle.task_id,
            "status = 'running', attempt = 1, started_at = now(), phase = 'embedding', progress_percent = 42.4, "
            "eta_seconds = 30, status_message = 'embedding: 3 of 7 files indexed, 20 chunks, 9 embedded'",
        )
        running = await get_task(client.session, handle.task_id)
        assert running["status"] == "working"
        said = "42% (embedding: 3 of 7 files indexed, 20 chunks, 9 embedded), about 30 s left"
        assert running["statusMessage"] == said
        assert running["lastUpdatedAt"] >= handle.last_updated_at
        assert (await cancel_task(client.session, handle.task_id))["resultType"] == "complete"
        await update_job(quiet, handle.task_id, "status = 'cancelled', completed_at = now()")  # the worker's part
        cancelled = await follow(client.session, handle.task_id)
        assert cancelled["status"] == "cancelled" and "result" not in cancelled
        # a pending job is cancelled by the request itself
        second = await start_task(client, make_repo(polyglot.parent / "other", 3))
        await cancel_task(client.session, second.task_id)
        assert (await get_task(client.session, second.task_id))["status"] == "cancelled"


async def test_a_failed_job_completes_its_task_with_the_error(quiet: Settings, polyglot: Path) -> None:
    async with Client(build_server(quiet), extensions=[Tasks()]) as client:
        handle = await start_task(client, polyglot)
        await update_job(
            quiet, handle.task_id, "status = 'failed', completed_at = now(), error_message = 'disk full: free space'"
        )
        task = await get_task(client.session, handle.task_id)
        # the spec keeps "failed" for JSON-RPC errors: a tool that failed completes with isError
        assert task["status"] == "completed" and task["result"]["isError"] is True
        assert task["result"]["content"][0]["text"] == "indexing failed: disk full: free space"
        # a path that cannot be indexed is answered at once, as a plain result: no task to follow
        plain = await client.call_tool("start_indexing_background", {"repo_path": "relative/path"})
        assert structured(plain)["status"] == "failed"


@pytest.mark.parametrize("task_id", [str(uuid.uuid4()), "not-a-task", ""])
async def test_an_unknown_task_is_invalid_params(quiet: Settings, task_id: str) -> None:
    async with Client(build_server(quiet), extensions=[Tasks()]) as client:
        for request in (get_task, cancel_task):
            with pytest.raises(MCPError) as unknown:
                await request(client.session, task_id)
            assert unknown.value.code == INVALID_PARAMS and "Task not found" in unknown.value.message


async def test_a_foreground_run_or_a_sync_is_no_task(quiet: Settings, db: Database, polyglot: Path) -> None:
    """Only a started job was ever a task: the id of a foreground run or a sync is an unknown task (and
    tasks/cancel leaves it running), while the job tools show it with its kind."""
    async with db.connection() as conn:
        await index_store.ensure_project(conn, "default")
        runs = [
            await job_store.start_run(conn, kind, "default", str(polyglot), f"host:1:{kind}", datetime.now(UTC))
            for kind in (RunKind.FOREGROUND, RunKind.SYNC)
        ]
    async with Client(build_server(quiet), extensions=[Tasks()]) as client:
        for run in runs:
            for request in (get_task, cancel_task):
                with pytest.raises(MCPError) as unknown:
                    await request(client.session, str(run.id))
                assert unknown.value.code == INVALID_PARAMS and "Task not found" in unknown.value.message
            status = structured(await client.call_tool("get_indexing_status", {"job_id": str(run.id)}))
            assert status["kind"] == run.kind and status["status"] == "running" and not status["cancel_requested"]
        listed = structured(await client.call_tool("list_indexing_jobs", {}))["jobs"]
        assert sorted(j["kind"] for j in listed) == ["foreground", "sync"]


async def update_job(settings: Settings, job_id: str, assignments: str) -> None:
    async with await psycopg.AsyncConnection.connect(str(settings.database_url), autocommit=True) as conn:
        await conn.execute(f"UPDATE indexing_jobs SET {assignments} WHERE id = %s", (job_id,))


# --- real processes: the task outlives the server that created it ----------------------------------


@pytest.fixture
def daemon_env(cli_env: dict[str, str]) -> Iterator[dict[str, str]]:
    env = {**cli_env, "CODEBASE_MCP_DAEMON": "true"}
    yield env
    stop_daemon(env)


def kill_servers() -> int:
    """SIGKILL this test's ``serve`` processes, as a crash or a closed terminal would end them."""
    killed = 0
    for child in psutil.Process(os.getpid()).children(recursive=True):
        if "serve" in child.cmdline():
            os.kill(child.pid, signal.SIGKILL)
            killed += 1
    return killed


async def test_a_task_is_followed_after_its_server_was_killed_and_a_second_is_cancelled(
    daemon_env: dict[str, str], tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo", 300, needle_at=7)
    async with Client(params(daemon_env), extensions=[Tasks()]) as first:
        handle = await start_task(first, repo)
        assert kill_servers() == 1
    async with Client(params(daemon_env), extensions=[Tasks()]) as second:  # a new server process
        seen = await get_task(second.session, handle.task_id)
        assert seen["taskId"] == handle.task_id and seen["createdAt"] == handle.created_at
        done = await follow(second.session, handle.task_id)
        assert done["status"] == "completed", done
        assert done["result"]["structuredContent"]["job_id"] == handle.task_id
        assert "300 files" in done["result"]["content"][0]["text"]
        found = structured(await second.call_tool("search_code", {"query": "reconcile_ledger_entries", "limit": 3}))
        assert found["results"][0]["symbol"] == "reconcile_ledger_entries"
        big = await start_task(second, make_repo(tmp_path / "big", 3000))
        await cancel_task(second.session, big.task_id)
        cancelled = await follow(second.session, big.task_id)
        assert cancelled["status"] == "cancelled", cancelled
