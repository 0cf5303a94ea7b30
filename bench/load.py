"""Concurrent clients while a large job runs: searches and status polls against one server.

    python bench/load.py [--clients 16] [--seconds 60] [--pollers 3] [--files 20000] [--provider local]
                         [--corpus] [--separate-worker] [--daemon] [--json]

One ``codebase-mcp serve --transport http`` on loopback (the transport several agent sessions share),
on its own embedded PostgreSQL. A small repository is indexed first so that searches have answers; then
a job over a generated repository of ``--files`` files (with ``--corpus``: the first ``--files``
files of issue 10's corpus, bench/common.py) starts, and once it runs, ``--clients`` MCP
sessions (the official streamable-HTTP client) each search back to back, and ``--pollers`` sessions
poll ``get_indexing_status`` every 200 ms, for ``--seconds``. Prints the latency table (and, with
``--json``, one JSON line last); any error is counted, never retried.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).parent))
from common import corpus_subset, percentile, table, throughput_corpus
from jobs import gen_repo

EXE = str(Path(sys.executable).with_name("codebase-mcp"))
QUERIES = [
    "parse the records",
    "load_17",
    "render totals for items",
    "store values in a loop",
    "function that multiplies each item",
    "reconcile ledger entries",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(home: Path, provider: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEBASE_MCP_") and k != "DATABASE_URL"}
    env.update(CODEBASE_MCP_HOME=str(home), CODEBASE_MCP_EMBEDDING_PROVIDER=provider)
    return env


def start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [EXE, "serve", "--transport", "http", "--port", str(port)], env=env, stdout=out, stderr=out
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited: {log.read_text()[-2000:]}") from None
            time.sleep(0.1)
    raise SystemExit("the server did not start listening")


class Session:
    """One MCP client session over streamable HTTP."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def __aenter__(self) -> ClientSession:
        self._http = httpx2.AsyncClient(timeout=120)
        self._transport = streamable_http_client(self.url, http_client=self._http)
        read, write, *_ = await self._transport.__aenter__()
        self._session = ClientSession(read, write)
        session = await self._session.__aenter__()
        await session.initialize()
        return session

    async def __aexit__(self, *exc: object) -> None:
        await self._session.__aexit__(None, None, None)
        await self._transport.__aexit__(None, None, None)
        await self._http.aclose()


async def call(session: ClientSession, tool: str, **args: Any) -> dict[str, Any]:
    result = await session.call_tool(tool, args)
    if result.is_error or result.structured_content is None:
        raise RuntimeError(" ".join(getattr(c, "text", "") for c in result.content)[:300])
    return result.structured_content


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    small = gen_repo(tmp / "small", 200)
    (small / "ledger.py").write_text("def reconcile_ledger_entries(ledger, statement):\n    return ledger\n")
    big = (
        corpus_subset(throughput_corpus(), tmp / "big", args.files)
        if args.corpus
        else gen_repo(tmp / "big", args.files)
    )
    port = free_port()
    env = server_env(tmp / "home", args.provider)
    worker = None
    # the job runs in the server's own process (the case the targets name) unless --daemon
    env["CODEBASE_MCP_DAEMON"] = "true" if args.daemon else "false"
    if args.separate_worker:  # the server only serves; a standalone worker process runs the jobs
        env["CODEBASE_MCP_RUN_WORKER"] = "false"
    proc = start_server(env, port, tmp / "server.log")
    if args.separate_worker:
        with (tmp / "worker.log").open("wb") as out:
            worker = subprocess.Popen([EXE, "worker"], env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        async with Session(url) as admin:
            first = await call(admin, "start_indexing_background", repo_path=str(small))
            while (await call(admin, "get_indexing_status", job_id=first["job_id"]))["status"] != "completed":
                await asyncio.sleep(0.5)
            job_id = (await call(admin, "start_indexing_background", repo_path=str(big)))["job_id"]
            while (await call(admin, "get_indexing_status", job_id=job_id))["status"] != "running":
                await asyncio.sleep(0.2)
            before = await call(admin, "get_indexing_status", job_id=job_id)

            searches: list[float] = []
            polls: list[float] = []
            errors: list[str] = []
            empty = 0
            end = time.monotonic() + args.seconds

            async def searcher(n: int) -> None:
                nonlocal empty
                async with Session(url) as session:
                    i = n
                    while time.monotonic() < end:
                        t = time.perf_counter()
                        try:
                            res = await call(session, "search_code", query=QUERIES[i % len(QUERIES)], limit=10)
                            searches.append((time.perf_counter() - t) * 1000)
                            empty += not res["results"]
                        except Exception as exc:
                            errors.append(f"search: {exc}")
                        i += 1

            async def poller() -> None:
                async with Session(url) as session:
                    while time.monotonic() < end:
                        t = time.perf_counter()
                        try:
                            await call(session, "get_indexing_status", job_id=job_id)
                            polls.append((time.perf_counter() - t) * 1000)
                        except Exception as exc:
                            errors.append(f"status: {exc}")
                        await asyncio.sleep(max(0.0, 0.2 - (time.perf_counter() - t)))

            t0 = time.monotonic()
            await asyncio.gather(*(searcher(n) for n in range(args.clients)), *(poller() for _ in range(args.pollers)))
            window = time.monotonic() - t0
            after = await call(admin, "get_indexing_status", job_id=job_id)
            await call(admin, "cancel_indexing_job", job_id=job_id)
    finally:
        for p in (proc, worker):
            if p is not None:
                p.terminate()
                p.wait(60)
        if args.daemon:
            subprocess.run([EXE, "daemon", "stop"], env=env, capture_output=True, timeout=120)
    return {
        "separate_worker": args.separate_worker,
        "daemon": args.daemon,
        "clients": args.clients,
        "pollers": args.pollers,
        "seconds": round(window, 1),
        "provider": args.provider,
        "searches": len(searches),
        "searches_per_second": round(len(searches) / window, 1),
        "search_p50_ms": round(percentile(searches, 50), 1),
        "search_p95_ms": round(percentile(searches, 95), 1),
        "search_max_ms": round(max(searches, default=0.0), 1),
        "empty_results": empty,
        "polls": len(polls),
        "poll_p50_ms": round(percentile(polls, 50), 1),
        "poll_p95_ms": round(percentile(polls, 95), 1),
        "errors": len(errors),
        "error_samples": errors[:5],
        "job_files_before": before["files_indexed"],
        "job_files_after": after["files_indexed"],
        "job_chunks_embedded_after": after["chunks_embedded"],
        "job_status_after": after["status"],
        "job_phase_before": before.get("phase"),
        "job_phase_after": after.get("phase"),
        "load": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--pollers", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--provider", choices=["local", "fake"], default="local")
    parser.add_argument("--corpus", action="store_true", help="the job indexes real code: issue 10's corpus")
    parser.add_argument("--separate-worker", action="store_true", help="run jobs in a `codebase-mcp worker` process")
    parser.add_argument("--daemon", action="store_true", help="run jobs in the background daemon")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cbm-load-") as tmp:
        r = asyncio.run(run(args, Path(tmp)))
    rows = [
        ("search clients / status pollers", f"{r['clients']} / {r['pollers']} (every 200 ms)"),
        (
            "window",
            f"{r['seconds']} s, {r['provider']} model, a {args.files:,}-file job running "
            f"({'issue 10 corpus' if args.corpus else 'generated files'})",
        ),
        ("load average at the end (1/5/15 min)", r["load"]),
        ("job runs in", "a separate worker process" if r["separate_worker"] else "the server process (default)"),
        ("searches (per second)", f"{r['searches']:,} ({r['searches_per_second']})"),
        ("search p50 / p95 / max", f"{r['search_p50_ms']} / {r['search_p95_ms']} / {r['search_max_ms']} ms"),
        ("status polls, p50 / p95", f"{r['polls']:,}, {r['poll_p50_ms']} / {r['poll_p95_ms']} ms"),
        ("errors", f"{r['errors']}"),
        (
            "job progress in the window",
            f"{r['job_files_before']:,} → {r['job_files_after']:,} files, {r['job_chunks_embedded_after']:,} chunks "
            f"embedded; phase {r['job_phase_before']} → {r['job_phase_after']}",
        ),
    ]
    print(table(rows, "Concurrent clients during a job"))
    if args.json:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
