"""Two MCP servers and a CLI on one data directory at the same time, indexing and searching: one
embedded PostgreSQL, one job per repository, no duplicates, every search answered."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import psutil
from mcp.client.session import ClientSession
from mcp.client.stdio import stdio_client

from tests.conftest import chunk_stats, cli_command, embedded_url, make_repo
from tests.server.client import call, params, wait_done


def postmasters(pgdata: Path) -> list[int]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "ppid"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and str(pgdata) in cmdline:
            found.append(proc.pid)
    return found


async def test_two_servers_and_a_cli_share_one_home(cli_env: dict[str, str], tmp_path: Path) -> None:
    home = tmp_path / "shared-home"
    env = {k: v for k, v in cli_env.items() if k != "DATABASE_URL"} | {"CODEBASE_MCP_HOME": str(home)}
    shared = make_repo(tmp_path / "shared", 400)
    cli_repo = make_repo(tmp_path / "cli-repo", 150, needle_at=3)
    async with (
        stdio_client(params(env)) as (r1, w1),
        ClientSession(r1, w1) as one,
        stdio_client(params(env)) as (r2, w2),
        ClientSession(r2, w2) as two,
    ):
        await asyncio.gather(one.initialize(), two.initialize())
        assert len(postmasters(home / "pgdata")) == 1, "one embedded server for both"
        # both servers start the same repository at once, while the CLI indexes another one
        cli_index = await asyncio.create_subprocess_exec(
            *cli_command(), "index", str(cli_repo), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        (ok1, a), (ok2, b) = await asyncio.gather(
            call(one, "start_indexing_background", repo_path=str(shared)),
            call(two, "start_indexing_background", repo_path=str(shared)),
        )
        assert ok1 and ok2 and a["job_id"] == b["job_id"], (a, b)
        searches: list[int] = []
        while True:  # search from both servers and the CLI while the job and the CLI index run
            ok, res = await call(one if len(searches) % 2 else two, "search_code", query="normalize the records")
            assert ok, res
            searches.append(res["total_count"])
            found = subprocess.run(
                [*cli_command(), "search", "compute records", "--json"], env=env, capture_output=True, text=True
            )
            assert found.returncode == 0, found.stderr[-2000:]
            ok, job = await call(one, "get_indexing_status", job_id=a["job_id"])
            if job["status"] != "running" and job["status"] != "pending":
                break
            await asyncio.sleep(0.2)
        _, err = await cli_index.communicate()
        assert cli_index.returncode == 0, err.decode()[-2000:]
        done = await wait_done(two, a["job_id"])
        assert done["status"] == "completed" and done["files_indexed"] == 400
        ok, jobs = await call(two, "list_indexing_jobs")
        listed = sorted((j["kind"], j["repo_path"]) for j in jobs["jobs"])
        assert listed == [("foreground", str(cli_repo.resolve())), ("index", str(shared))], "one job, no duplicates"
        assert len(postmasters(home / "pgdata")) == 1
        ok, res = await call(one, "search_code", query="reconcile ledger entries")
        assert ok and res["results"][0]["path"].endswith("module_0003.py")
        url = embedded_url(home)
        assert url is not None
        stats = chunk_stats(url)
    assert stats["files"] == 550 and stats["dup_chunks"] == 0 and stats["dup_files"] == 0
    assert len(searches) >= 1
    assert os.path.exists(home / "pgdata")
