"""Smoke check of an installed codebase-mcp, run by CI with the venv built from the lowest versions the
dependency floors allow (.ci/run): it proves those floors are true, which the main suite (run on the
latest versions) cannot.

Run it with the python of the venv under test: ``.venv-lowest/bin/python .ci/smoke.py``. Stdlib, the
installed project and the MCP SDK's client only. Steps:

1. every module of the package imports (the daemon, watcher and HTTP modules too);
2. ``codebase-mcp --help`` exits 0;
3. ``codebase-mcp index`` the polyglot fixture (every tree-sitter grammar) in a fresh data directory:
   the embedded PostgreSQL and the real local model with default settings, so the database driver,
   pgvector, ONNX Runtime (the int8 graph that ships in the package: no onnx, no fp32 extra), tokenizers
   and numpy all run;
4. ``codebase-mcp search --json`` finds the fixture's invoice code;
5. ``codebase-mcp serve`` over stdio with the official MCP client: initialize, ``tools/list``, a job
   through the background daemon (default settings), ``search_code``;

then the daemon is stopped and the data directory removed. One line per step; exit 1 on any failure.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import pkgutil
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "polyglot"
QUERY = "compute the invoice total with tax"
EXPECTED_PATH = "src/billing.py"
EXPECTED_TOOLS = {
    "start_indexing_background",
    "get_indexing_status",
    "list_indexing_jobs",
    "cancel_indexing_job",
    "search_code",
    "find_symbol",
    "find_references",
    "list_repositories",
    "forget_repository",
    "set_working_directory",
}
STEP_TIMEOUT = 300.0


class SmokeError(Exception):
    pass


def cli() -> list[str]:
    exe = Path(sys.executable).with_name("codebase-mcp")
    if not exe.exists():
        raise SmokeError(f"no codebase-mcp script next to {sys.executable}: is the project installed in this venv?")
    return [str(exe)]


def run_cli(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [*cli(), *args], env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise SmokeError(f"codebase-mcp {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def check_imports() -> str:
    import codebase_mcp

    names = [
        m.name for m in pkgutil.walk_packages(codebase_mcp.__path__, "codebase_mcp.") if not m.name.endswith("__main__")
    ]
    for name in names:
        importlib.import_module(name)
    return f"{len(names) + 1} modules"


def check_help(env: dict[str, str]) -> str:
    out = run_cli(env, "--help")
    if "serve" not in out or "index" not in out:
        raise SmokeError(f"--help does not list the commands:\n{out}")
    return "exit 0"


def check_index(env: dict[str, str], repo: Path) -> str:
    out = run_cli(env, "index", str(repo))
    if "indexed" not in out:
        raise SmokeError(f"unexpected index output:\n{out}")
    return out.strip().splitlines()[-1]


def check_search(env: dict[str, str]) -> str:
    result = json.loads(run_cli(env, "search", QUERY, "--json"))
    paths = [hit["path"] for hit in result["results"]]
    if EXPECTED_PATH not in paths[:3]:
        raise SmokeError(f"search {QUERY!r}: {EXPECTED_PATH} not in the top 3: {paths}")
    return f"{len(paths)} hits, top {paths[0]}"


async def check_mcp(env: dict[str, str], repo: Path) -> str:
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    async def call(session: ClientSession, tool: str, **args: Any) -> Any:
        result = await session.call_tool(tool, args)
        text = " ".join(str(getattr(c, "text", "")) for c in result.content)
        if result.is_error:
            raise SmokeError(f"{tool} failed: {text}")
        return result.structured_content or json.loads(text)

    server = StdioServerParameters(command=cli()[0], args=["serve"], env=env)
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        tools = {t.name for t in (await session.list_tools()).tools}
        if missing := EXPECTED_TOOLS - tools:
            raise SmokeError(f"tools/list lacks {sorted(missing)}: {sorted(tools)}")
        job = await call(session, "start_indexing_background", repo_path=str(repo))
        deadline = time.monotonic() + STEP_TIMEOUT
        while job["status"] not in {"completed", "failed", "cancelled"}:
            if time.monotonic() > deadline:
                raise SmokeError(f"job {job['job_id']} did not finish: {job}")
            await asyncio.sleep(0.5)
            job = await call(session, "get_indexing_status", job_id=job["job_id"])
        if job["status"] != "completed":
            raise SmokeError(f"job ended {job['status']}: {job}")
        found = await call(session, "search_code", query=QUERY)
        paths = [hit["path"] for hit in found["results"]]
        if EXPECTED_PATH not in paths[:3]:
            raise SmokeError(f"search_code {QUERY!r}: {EXPECTED_PATH} not in the top 3: {paths}")
    return f"protocol {init.protocol_version}, {len(tools)} tools, job completed, search_code top {paths[0]}"


def step(name: str, fn: Callable[[], str]) -> None:
    t0 = time.monotonic()
    try:
        detail = fn()
    except Exception as exc:
        traceback.print_exc()
        print(f"smoke: FAIL {name} ({time.monotonic() - t0:.1f} s): {type(exc).__name__}: {exc}", flush=True)
        raise
    print(f"smoke: ok   {name} ({time.monotonic() - t0:.1f} s): {detail}", flush=True)


def stop_daemon(env: dict[str, str]) -> bool:
    """Stop the daemon, then wait for the embedded PostgreSQL to stop (its last holder stops it on the
    way out); False if it is still running after a minute."""
    proc = subprocess.run(
        [*cli(), "daemon", "stop"], env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    print(f"smoke: cleanup: {(proc.stdout or proc.stderr).strip()}", flush=True)
    pid_file = Path(env["CODEBASE_MCP_HOME"]) / "pgdata" / "postmaster.pid"
    t0 = time.monotonic()
    while pid_file.exists():
        if time.monotonic() - t0 > 60:
            print(f"smoke: FAIL cleanup: the embedded PostgreSQL still runs ({pid_file})", flush=True)
            return False
        time.sleep(0.2)
    print(f"smoke: cleanup: embedded PostgreSQL stopped ({time.monotonic() - t0:.1f} s after the daemon)", flush=True)
    return True


def main() -> int:
    from importlib.metadata import version

    print(f"smoke: python {sys.version.split()[0]}, mcp {version('mcp')}, in {sys.prefix}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="cbm-smoke-"))
    repo = tmp / "polyglot"
    shutil.copytree(FIXTURE, repo)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEBASE_MCP_") and k != "DATABASE_URL"}
    env["CODEBASE_MCP_HOME"] = str(tmp / "home")
    # the daemon `serve` starts exits on its own soon after the server if the explicit stop below fails
    env["CODEBASE_MCP_DAEMON_IDLE_SECONDS"] = "30"
    passed = False
    try:
        step("import every module", check_imports)
        step("codebase-mcp --help", lambda: check_help(env))
        step("codebase-mcp index", lambda: check_index(env, repo))
        step("codebase-mcp search --json", lambda: check_search(env))
        step("MCP over stdio", lambda: asyncio.run(asyncio.wait_for(check_mcp(env, repo), STEP_TIMEOUT)))
        passed = True
    except Exception:
        pass
    finally:
        passed = stop_daemon(env) and passed
        shutil.rmtree(tmp, ignore_errors=True)
    print("smoke: passed" if passed else "smoke: FAILED", flush=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
