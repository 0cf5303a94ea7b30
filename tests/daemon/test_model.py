"""One model per machine: an MCP server's queries are embedded by the daemon of its data directory when it
answers, by the server's own model otherwise (no daemon, or a daemon with another model)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from mcp import Client

from codebase_mcp.daemon import client as daemon_client
from codebase_mcp.daemon.model import DaemonEmbedded
from codebase_mcp.embeddings.fake import FakeEmbeddingModel
from tests.conftest import cli_command
from tests.daemon.test_daemon_processes import stop_daemon
from tests.server.client import params


@pytest.fixture
def daemon_env(cli_env: dict[str, str]) -> Iterator[dict[str, str]]:
    env = {**cli_env, "CODEBASE_MCP_DAEMON": "true"}
    yield env
    stop_daemon(env)


def start_daemon(env: dict[str, str]) -> None:
    started = subprocess.run(
        [*cli_command(), "daemon", "start", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert started.returncode == 0, started.stderr


def test_without_a_daemon_the_own_model_embeds(tmp_path: Path) -> None:
    own = FakeEmbeddingModel()
    model = DaemonEmbedded(own, tmp_path / "no-daemon-here")
    vector = model.embed_query("parse the configuration")
    assert np.array_equal(vector, FakeEmbeddingModel().embed_query("parse the configuration"))
    assert (model.by_daemon, model.by_own, own.calls) == (0, 1, 1)
    assert not model.warm_daemon()
    model.embed_batch(["a document"], "document")  # documents are never sent to the daemon
    assert (model.by_daemon, model.by_own) == (0, 2)


async def test_a_running_daemon_embeds_queries_with_its_model(daemon_env: dict[str, str]) -> None:
    start_daemon(daemon_env)
    home = Path(daemon_env["CODEBASE_MCP_HOME"])
    own = FakeEmbeddingModel()  # the daemon's model: the same provider, so the same name
    model = DaemonEmbedded(own, home)
    texts = ["retry with backoff", "parse_config"]
    vectors = await asyncio.to_thread(model.embed_batch, texts, "query")
    assert np.array_equal(vectors, FakeEmbeddingModel().embed_batch(texts, "query"))
    assert (model.by_daemon, own.calls) == (2, 0), "embedded by the daemon, not here"
    info = await daemon_client.status(home)
    assert info is not None and info["queries_embedded"] == 2
    # a daemon with another model is not asked twice the same way: the own model answers
    other = DaemonEmbedded(FakeEmbeddingModel(name="fake-hash-64-other"), home)
    await asyncio.to_thread(other.embed_query, "retry with backoff")
    assert (other.by_daemon, other.by_own) == (0, 1)


def mapped_files(pid: int) -> set[str]:
    return {m.path for m in psutil.Process(pid).memory_maps()}


@pytest.mark.real_model
async def test_servers_use_the_daemons_model_and_load_none_of_their_own(
    daemon_env: dict[str, str], polyglot: Path
) -> None:
    env = {**daemon_env, "CODEBASE_MCP_EMBEDDING_PROVIDER": "local"}
    indexed = subprocess.run([*cli_command(), "index", str(polyglot)], env=env, capture_output=True, timeout=300)
    assert indexed.returncode == 0, indexed.stderr
    async with Client(params(env)) as one, Client(params(env)) as two:
        for client in (one, two):
            found = await client.call_tool("search_code", {"query": "compute the invoice total with tax"})
            assert not found.is_error and found.structured_content is not None, found.content
            assert found.structured_content["results"][0]["path"] == "src/billing.py"
        servers = [c for c in psutil.Process(os.getpid()).children(recursive=True) if "serve" in c.cmdline()]
        assert len(servers) == 2
        for server in servers:
            assert not any("onnxruntime" in path for path in mapped_files(server.pid)), "no model in the server"
    info = await daemon_client.status(Path(env["CODEBASE_MCP_HOME"]))
    assert info is not None and info["queries_embedded"] >= 2
    assert any("onnxruntime" in path for path in mapped_files(info["pid"])), "the daemon holds the model"
