"""``codebase-mcp serve --transport http`` on loopback: bearer token, DNS-rebinding protection and the
request size cap, checked with raw HTTP requests and with the official streamable HTTP client."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import cli_command
from tests.server.client import call

TOKEN = "s3cret-token-for-tests-0123456789"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def http_server(cli_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**cli_env, "CODEBASE_MCP_HTTP_TOKEN": TOKEN, "CODEBASE_MCP_HTTP_MAX_BODY_BYTES": "4096"}
    with (tmp_path / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            [*cli_command(), "serve", "--transport", "http", "--port", str(port)], env=env, stdout=log, stderr=log
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(30)


def test_token_host_origin_and_size_are_enforced(http_server: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(timeout=10) as client:
        assert client.post(http_server, json=INIT, headers=ACCEPT).status_code == 401
        wrong = client.post(http_server, json=INIT, headers={**ACCEPT, "Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert client.post(http_server, json=INIT, headers={**ACCEPT, **auth}).status_code == 200
        foreign_host = client.post(http_server, json=INIT, headers={**ACCEPT, **auth, "Host": "evil.example:80"})
        assert foreign_host.status_code == 421
        foreign_origin = client.post(
            http_server, json=INIT, headers={**ACCEPT, **auth, "Origin": "http://evil.example"}
        )
        assert foreign_origin.status_code == 403
        huge = {**INIT, "params": {**INIT["params"], "padding": "x" * 10_000}}  # type: ignore[dict-item]
        assert client.post(http_server, json=huge, headers={**ACCEPT, **auth}).status_code == 413


async def test_official_client_with_token(http_server: str) -> None:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http,
        streamable_http_client(http_server, http_client=http) as (read, write, *_),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        names = {t.name for t in (await session.list_tools()).tools}
        assert "search_code" in names
        result = await session.call_tool("list_repositories", {})
        assert not result.is_error


def test_non_loopback_bind_needs_a_token(cli_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [*cli_command(), "serve", "--transport", "http", "--host", "0.0.0.0"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "CODEBASE_MCP_HTTP_TOKEN" in proc.stderr and "Traceback" not in proc.stderr
    short = subprocess.run(
        [*cli_command(), "serve", "--transport", "http", "--host", "0.0.0.0"],
        env={**cli_env, "CODEBASE_MCP_HTTP_TOKEN": "short"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert short.returncode == 2 and "too short" in short.stderr


async def test_working_directory_belongs_to_each_session(
    http_server: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Two clients of one server choose different projects with set_working_directory: each searches
    its own project only, whatever the other chose after it."""
    for project in ("alpha", "beta"):
        repo = tmp_path / f"{project}-repo"
        repo.mkdir()
        (repo / f"{project}_ledger.py").write_text(f"def reconcile_{project}_ledger(rows):\n    return rows\n")
        (tmp_path / f"{project}-ws" / ".codebase-mcp").mkdir(parents=True)
        (tmp_path / f"{project}-ws" / ".codebase-mcp" / "config.json").write_text(f'{{"project_id": "{project}"}}')
        done = subprocess.run(
            [*cli_command(), "index", str(repo), "--project", project], env=cli_env, capture_output=True, timeout=120
        )
        assert done.returncode == 0, done.stderr

    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http_a,
        streamable_http_client(http_server, http_client=http_a) as (read_a, write_a, *_),
        ClientSession(read_a, write_a) as a,
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http_b,
        streamable_http_client(http_server, http_client=http_b) as (read_b, write_b, *_),
        ClientSession(read_b, write_b) as b,
    ):
        await a.initialize()
        await b.initialize()
        ok, chosen = await call(a, "set_working_directory", directory=str(tmp_path / "alpha-ws"))
        assert ok and chosen["project_id"] == "alpha"
        ok, chosen = await call(b, "set_working_directory", directory=str(tmp_path / "beta-ws"))
        assert ok and chosen["project_id"] == "beta"
        for session, own in ((a, "alpha"), (b, "beta"), (a, "alpha")):
            ok, found = await call(session, "search_code", query="reconcile ledger")
            assert ok and found["project_id"] == own, found
            assert {r["repository"] for r in found["results"]} == {f"{own}-repo"}, found
