"""A job start answers once its job is committed, whatever the daemon is doing: it never waits for a
daemon to come up, and a daemon that cannot start fails the job with the reason, not the call."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from codebase_mcp.daemon import client as daemon_client
from codebase_mcp.server.app import build_server
from codebase_mcp.settings import Settings
from tests.conftest import job_row


class Spawns:
    """Stand-ins for the daemon process: whatever command a test chooses, killed at the end."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.procs: list[subprocess.Popen[bytes]] = []

    def __call__(self, _home: Path) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc


@pytest.fixture
def spawns(monkeypatch: pytest.MonkeyPatch) -> Iterator[Spawns]:
    fake = Spawns([sys.executable, "-c", "import time; time.sleep(120)"])
    monkeypatch.setattr(daemon_client, "spawn", fake)
    yield fake
    for proc in fake.procs:
        proc.kill()
        proc.wait()


async def start(client: Client, repo: Path) -> dict[str, Any]:
    result = await client.call_tool("start_indexing_background", {"repo_path": str(repo)})
    assert not result.is_error, result.content
    record: dict[str, Any] = result.structured_content or json.loads(result.content[0].text)  # type: ignore[union-attr]
    return record


async def test_a_start_answers_while_the_daemon_it_spawned_has_not_come_up(
    settings: Settings, spawns: Spawns, polyglot: Path
) -> None:
    # a daemon that never answers: the call must not wait for it
    async with Client(build_server(settings)) as client:
        started = await start(client, polyglot)
        assert started["status"] == "pending" and started["job_id"]
        assert spawns.procs and all(p.poll() is None for p in spawns.procs), "a daemon was spawned, still starting"
        assert await daemon_client.status(settings.home) is None, "and none has answered"
        row = job_row(str(settings.database_url), started["job_id"])
        assert row["status"] == "pending" and row["status_message"] == "queued"


async def test_a_daemon_that_cannot_start_fails_the_job_with_the_reason(
    settings: Settings, spawns: Spawns, polyglot: Path
) -> None:
    spawns.command = [sys.executable, "-c", "raise SystemExit(3)"]
    settings = settings.model_copy(update={"daemon_start_timeout_seconds": 2.0})
    async with Client(build_server(settings)) as client:
        started = await start(client, polyglot)
        assert started["status"] == "pending"
        messages = []
        deadline = time.monotonic() + 60
        while (row := job_row(str(settings.database_url), started["job_id"]))["status"] == "pending":
            assert time.monotonic() < deadline, row
            messages.append(row["status_message"])
            await asyncio.sleep(0.05)
    assert any("did not start (exit code 3)" in m for m in messages), set(messages)
    assert row["status"] == "failed", row
    assert "No background daemon started within 2 s" in row["error_message"]
    assert "codebase-mcp daemon start" in row["error_message"]
