"""``get_indexing_status(wait_seconds=N)``: the call returns when its job's status or phase changes, or
after N seconds, never later; a finished job answers at once; progress is reported while it waits. No
worker runs here (``run_worker=False``): the tests move the job's row themselves."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from mcp import Client
from mcp_types import CallToolResult

from codebase_mcp.server.app import build_server
from codebase_mcp.settings import Settings


@pytest.fixture
def quiet(settings: Settings) -> Settings:
    """A server that runs no job: a job stays as the test leaves its row."""
    return settings.model_copy(update={"run_worker": False})


def record(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    out: dict[str, Any] = result.structured_content or json.loads(result.content[0].text)  # type: ignore[union-attr]
    return out


async def start(client: Client, repo: Path) -> str:
    job_id: str = record(await client.call_tool("start_indexing_background", {"repo_path": str(repo)}))["job_id"]
    return job_id


async def update_job(settings: Settings, job_id: str, assignments: str) -> None:
    async with await psycopg.AsyncConnection.connect(str(settings.database_url), autocommit=True) as conn:
        await conn.execute(f"UPDATE indexing_jobs SET {assignments} WHERE id = %s", (job_id,))


RUNNING = "status = 'running', attempt = 1, worker_id = 'test:1', heartbeat_at = now(), started_at = now()"


async def timed_status(client: Client, job_id: str, wait: float, **kwargs: Any) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    result = await client.call_tool("get_indexing_status", {"job_id": job_id, "wait_seconds": wait}, **kwargs)
    return time.monotonic() - started, record(result)


async def test_a_wait_returns_soon_after_the_status_changes(quiet: Settings, polyglot: Path) -> None:
    async with Client(build_server(quiet)) as client:
        job_id = await start(client, polyglot)
        waiting = asyncio.create_task(timed_status(client, job_id, 20))
        await asyncio.sleep(1.0)
        assert not waiting.done(), "nothing changed yet: still waiting"
        # the wait holds no search slot and no connection: other calls are answered meanwhile
        jobs = record(await client.call_tool("list_indexing_jobs", {}))["jobs"]
        assert [j["job_id"] for j in jobs] == [job_id]
        changed = time.monotonic()
        await update_job(quiet, job_id, RUNNING)
        elapsed, job = await asyncio.wait_for(waiting, 30)
        assert job["status"] == "running" and job["worker_id"] == "test:1", job
        assert time.monotonic() - changed < 9 and elapsed < 10, "it answered long before its 20 s"

        # a phase change ends a wait too
        waiting = asyncio.create_task(timed_status(client, job_id, 20))
        await asyncio.sleep(0.5)
        await update_job(quiet, job_id, "phase = 'embedding'")
        elapsed, job = await asyncio.wait_for(waiting, 30)
        assert job["status"] == "running" and job["phase"] == "embedding" and elapsed < 10, job


async def test_with_no_change_it_answers_after_the_seconds_asked(quiet: Settings, polyglot: Path) -> None:
    async with Client(build_server(quiet)) as client:
        job_id = await start(client, polyglot)
        elapsed, job = await timed_status(client, job_id, 1)
        assert job["status"] == "pending" and job["phase"] == "queued", job
        assert 0.9 <= elapsed < 10, elapsed
        # progress alone is not a change that ends the wait
        await update_job(quiet, job_id, RUNNING)
        waiting = asyncio.create_task(timed_status(client, job_id, 1.5))
        await asyncio.sleep(0.3)
        await update_job(quiet, job_id, "progress_percent = 40")
        elapsed, job = await waiting
        assert job["status"] == "running" and job["progress_percent"] == 40, job
        assert 1.35 <= elapsed < 10, elapsed


async def test_a_finished_job_answers_at_once(quiet: Settings, polyglot: Path) -> None:
    async with Client(build_server(quiet)) as client:
        job_id = await start(client, polyglot)
        assert record(await client.call_tool("cancel_indexing_job", {"job_id": job_id}))["status"] == "cancelled"
        elapsed, job = await timed_status(client, job_id, 25)
        assert job["status"] == "cancelled" and elapsed < 10, (elapsed, job)
        # and so does a job that fails at once (a path that cannot be indexed)
        rejected = record(await client.call_tool("start_indexing_background", {"repo_path": "relative/path"}))
        elapsed, job = await timed_status(client, rejected["job_id"], 25)
        assert job["status"] == "failed" and elapsed < 10, (elapsed, job)


async def test_progress_is_reported_while_waiting(quiet: Settings, polyglot: Path) -> None:
    events: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        events.append((progress, total, message))

    async with Client(build_server(quiet)) as client:
        job_id = await start(client, polyglot)
        await update_job(quiet, job_id, RUNNING + ", phase = 'chunking'")
        waiting = asyncio.create_task(timed_status(client, job_id, 20, progress_callback=on_progress))
        for n, percent in enumerate((10, 25), start=1):
            await asyncio.sleep(0.3)
            await update_job(quiet, job_id, f"progress_percent = {percent}, status_message = 'at {percent}'")
            deadline = time.monotonic() + 10
            while len(events) < n and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        await update_job(quiet, job_id, "phase = 'embedding'")
        _, job = await asyncio.wait_for(waiting, 30)
    assert job["phase"] == "embedding"
    assert events == [(10, 100, "at 10"), (25, 100, "at 25")], events


async def test_wait_seconds_out_of_range_is_invalid_input_naming_it(quiet: Settings, polyglot: Path) -> None:
    async with Client(build_server(quiet)) as client:
        job_id = await start(client, polyglot)
        for wait in (-1, 25.5, 10**9, "soon"):
            started = time.monotonic()
            result = await client.call_tool("get_indexing_status", {"job_id": job_id, "wait_seconds": wait})
            text = " ".join(getattr(c, "text", "") for c in result.content)
            assert result.is_error and text.startswith("invalid_input") and "wait_seconds" in text, (wait, text)
            assert time.monotonic() - started < 10
