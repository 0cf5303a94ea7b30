"""Freshness in every answer (issue 22, item 3): with the watcher on, a search right after an edit either
finds the edit or says its repository has changes not yet indexed; it never serves the old code as
current. The watcher runs in process (as in test_watcher.py), the MCP server beside it has its own
runtime and pool (as a separate server process would), and the CLI runs as a subprocess; all three meet
only in PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import CallToolResult

import codebase_mcp
from codebase_mcp.daemon.watcher import Watcher
from codebase_mcp.runtime import Runtime, open_runtime
from codebase_mcp.server.app import build_server
from codebase_mcp.settings import Settings
from codebase_mcp.storage import index_store, locks, repo_store
from codebase_mcp.storage.database import Conn
from tests.conftest import cli_command

NEW_NAME = "reconcile_quasar_ledger"


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with open_runtime(settings.model_copy(update={"watch_debounce_ms": 50})) as rt:
        yield rt


@contextlib.asynccontextmanager
async def watching(rt: Runtime) -> AsyncIterator[Watcher]:
    watcher = Watcher(rt)
    stopping = asyncio.Event()
    task = asyncio.create_task(watcher.run(stopping))
    try:
        yield watcher
    finally:
        stopping.set()
        await asyncio.wait_for(task, 30)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.05)


async def indexed_repo(rt: Runtime, root: Path) -> int:
    (root / "ledger.py").write_text("def settle_ledger(entries):\n    return sum(entries)\n")
    await rt.indexer.index(root)
    async with rt.db.connection() as conn:
        return (await repo_store.find_repository(conn, "default", str(root.resolve()))).id


async def pending_at(rt: Runtime, repo_id: int) -> datetime | None:
    async with rt.db.connection() as conn:
        return await index_store.changes_pending_at(conn, repo_id)


async def start_watching(watcher: Watcher, repo_id: int) -> None:
    await watcher.refresh()

    async def first_sync_done() -> bool:
        entry = watcher.watched.get(repo_id)
        return entry is not None and entry.mode == "watching" and not entry.syncing

    await until(first_sync_done, "the first sync after the watch starts")


async def test_an_edit_marks_the_repository_pending_and_a_sync_clears_it(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    repo_id = await indexed_repo(runtime, repo)

    # each sync's "changes stored" step waits for the test: the test decides what happens meanwhile
    stored = index_store.changes_stored
    arrived: asyncio.Queue[tuple[datetime, asyncio.Event]] = asyncio.Queue()

    async def held(conn: Conn, rid: int, seen: datetime) -> None:
        go = asyncio.Event()
        await arrived.put((seen, go))
        await go.wait()
        await stored(conn, rid, seen)

    async with watching(runtime) as watcher:
        await start_watching(watcher, repo_id)  # nothing was marked: the catch-up sync stores nothing
        assert await pending_at(runtime, repo_id) is None
        monkeypatch.setattr(index_store, "changes_stored", held)

        (repo / "ledger.py").write_text("def settle_ledger(entries):\n    return sum(entries) + 1\n")
        seen, go = await asyncio.wait_for(arrived.get(), 30)  # the sync has stored the edit, not cleared yet
        assert await pending_at(runtime, repo_id) == seen, "the event marked the repository before the sync read it"

        # an edit while that sync finishes: it is not cleared by it
        (repo / "ledger.py").write_text("def settle_ledger(entries):\n    return sum(entries) + 2\n")

        async def newer_mark() -> bool:
            at = await pending_at(runtime, repo_id)
            return at is not None and at > seen

        await until(newer_mark, "the second edit is marked")
        go.set()
        seen_next, go_next = await asyncio.wait_for(arrived.get(), 30)  # the next sync, held in turn
        assert seen_next > seen
        assert await pending_at(runtime, repo_id) == seen_next, "still pending after the first sync"
        go_next.set()

        async def cleared() -> bool:
            return await pending_at(runtime, repo_id) is None

        await until(cleared, "the next sync clears the mark")


def record(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    out: dict[str, Any] = result.structured_content or {}
    assert out, result.content
    return out


def text_of(result: CallToolResult) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


class Answer:
    """What one search said: whether it found the new name, and whether it said the repository is behind."""

    def __init__(self, result: CallToolResult, repo: str) -> None:
        data = record(result)
        self.found = any(h["symbol"] == NEW_NAME for h in data["results"])
        entries = [f for f in data.get("freshness", []) if f["repository"] == repo]
        self.pending = bool(entries and entries[0]["pending"])
        self.text = text_of(result)
        assert self.pending == (f"changes not yet indexed in {repo} (" in self.text), self.text


async def cli_search(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [*cli_command(), "search", NEW_NAME, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_search_right_after_an_edit_finds_it_or_says_pending(
    runtime: Runtime, settings: Settings, cli_env: dict[str, str], tmp_path: Path
) -> None:
    repo = tmp_path / "payments"
    repo.mkdir()
    repo_id = await indexed_repo(runtime, repo)
    src = str(Path(codebase_mcp.__file__).parents[1])  # the CLI imports this checkout's code
    env = cli_env | {"PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}

    async with (
        watching(runtime) as watcher,
        Client(build_server(settings.model_copy(update={"run_worker": False}))) as client,
    ):
        await start_watching(watcher, repo_id)

        async def search() -> Answer:
            return Answer(await client.call_tool("search_code", {"query": NEW_NAME, "limit": 5}), "payments")

        before = await search()
        assert not before.found and not before.pending and "note:" not in before.text

        # the sync is held (another run has the repository): the edit is seen but not stored
        async with runtime.db.session_lock(locks.REPOSITORY, repo_id):
            with (repo / "ledger.py").open("a") as f:
                f.write(f"\n\ndef {NEW_NAME}(ledger, statement):\n    return [e for e in ledger if e in statement]\n")
            answers: list[Answer] = []

            async def says_pending() -> bool:
                answers.append(await search())
                return answers[-1].pending

            await until(says_pending, "a search says the repository has changes not yet indexed")
            held = await search()
            assert held.pending and not held.found
            # every tool says so, and the CLI (text and --json)
            sym = record(await client.call_tool("find_symbol", {"name": NEW_NAME}))
            assert sym["freshness"][0]["pending"] and not sym["definitions"]
            refs = await client.call_tool("find_references", {"name": "settle_ledger"})
            assert record(refs)["freshness"][0]["pending"] and "note: changes not yet indexed in payments (" in text_of(
                refs
            )
            as_json = await cli_search(env, "--json")
            assert as_json.returncode == 0, as_json.stderr
            fresh = json.loads(as_json.stdout)["freshness"]
            assert [(f["repository"], f["pending"]) for f in fresh] == [("payments", True)]
            assert fresh[0]["why"].startswith("files changed "), fresh
            as_text = await cli_search(env)
            assert "changes not yet indexed in payments (" in as_text.stderr, as_text.stderr

        # the sync runs now: from here on every answer finds the edit or says it is pending
        async def settled() -> bool:
            answer = await search()
            assert answer.found or answer.pending, "never the old code as current"
            return answer.found and not answer.pending

        await until(settled, "the edit is found and the repository is no longer pending")
        assert "note:" not in (await search()).text
    # before the watcher saw the edit (watchfiles reports it about 50 ms after the write) an answer could
    # neither find it nor know of it; from the first answer that knew, none served the old code as current
    first = next(i for i, a in enumerate(answers) if a.pending)
    assert all(a.pending or a.found for a in answers[first:])
