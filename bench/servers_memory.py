"""One model per machine (issue 23): the resident memory of several MCP servers and the daemon on one data
directory, each server having answered a hybrid search with the real model.

    python bench/servers_memory.py [--servers 4]

A fresh data directory (embedded PostgreSQL); the polyglot test fixture indexed by the CLI; ``--servers``
``codebase-mcp serve`` processes over stdio (official MCP client), each asked one ``search_code``; then
the RSS of every server and of the daemon, and whether each process has ONNX Runtime (the model) mapped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from common import call, env_for, grid

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "polyglot"
CLI = [sys.executable, "-m", "codebase_mcp"]


def holds_model(proc: psutil.Process) -> bool:
    return any("onnxruntime" in m.path for m in proc.memory_maps())


async def measure(servers: int) -> list[list[str]]:
    root = Path(tempfile.mkdtemp(prefix="servers-memory-"))
    home, repo = root / "home", root / "repo"
    shutil.copytree(FIXTURE, repo)
    env = env_for(home, "local")
    subprocess.run([*CLI, "index", str(repo)], env=env, check=True, capture_output=True)
    params = StdioServerParameters(command=CLI[0], args=[*CLI[1:], "serve"], env=env)
    try:
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(Client(params)) for _ in range(servers)]
            for client in clients:
                found = await call(client.session, "search_code", query="compute the invoice total with tax")
                assert found["results"], found
            me = psutil.Process()
            procs = [p for p in me.children(recursive=True) if "serve" in p.cmdline()]
            rows = [
                [f"server {n}", f"{p.memory_info().rss / 2**20:.0f}", "yes" if holds_model(p) else "no"]
                for n, p in enumerate(procs, 1)
            ]
            status = subprocess.run([*CLI, "daemon", "status", "--json"], env=env, capture_output=True, text=True)

            daemon = psutil.Process(json.loads(status.stdout)["pid"])
            rows.append(["daemon", f"{daemon.memory_info().rss / 2**20:.0f}", "yes" if holds_model(daemon) else "no"])
            return rows
    finally:
        subprocess.run([*CLI, "daemon", "stop"], env=env, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", type=int, default=4)
    args = parser.parse_args()
    rows = asyncio.run(measure(args.servers))
    print(grid(["process", "RSS MiB", "model loaded"], rows, f"{args.servers} MCP servers and the daemon"))


if __name__ == "__main__":
    main()
