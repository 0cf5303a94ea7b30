"""The MCP server driven as a real client would: the official MCP client over stdio against
``codebase-mcp serve`` in a subprocess, on the real embedded PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from mcp.client.session import ClientSession
from mcp.client.stdio import stdio_client

from tests.server.client import call, params, wait_done


async def test_index_poll_search_and_errors(cli_env: dict[str, str], tmp_path: Path) -> None:
    repo = tmp_path / "four"
    repo.mkdir()
    for i, body in enumerate(
        [
            "def alpha_handler():\n    return 1\n",
            "def beta_parser(text):\n    return text\n",
            "class GammaStore:\n    pass\n",
            "function deltaRender() { return 4; }\n",
        ]
    ):
        (repo / f"f{i}.{'js' if i == 3 else 'py'}").write_text(body)
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.py").write_text("def omega_secret_sauce():\n    return 0\n")
    async with stdio_client(params(cli_env)) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert {
            "start_indexing_background",
            "get_indexing_status",
            "list_indexing_jobs",
            "cancel_indexing_job",
            "search_code",
            "list_repositories",
            "forget_repository",
            "set_working_directory",
        } <= set(tools)
        assert tools["search_code"].annotations is not None and tools["search_code"].annotations.read_only_hint

        # how fast it answers is bench/first_job.py's; here, that it answers before the job has run
        ok, started = await call(session, "start_indexing_background", repo_path=str(repo))
        assert ok and started["status"] in {"pending", "running"}
        job = await wait_done(session, started["job_id"])
        assert job["status"] == "completed", job
        assert job["files_indexed"] == 4 and job["chunks_created"] > 0 and job["error_message"] is None
        assert job["started_at"] and job["completed_at"] and job["created_at"]
        assert job["coverage_percent"] == 100, "every chunk has a vector: the client sees the coverage"

        ok, res = await call(session, "search_code", query="beta parser")
        assert ok and res["results"][0]["path"] == "f1.py" and "latency_ms" in res and res["total_count"] >= 1

        ok, other_job = await call(session, "start_indexing_background", repo_path=str(other), project_id="p2")
        assert ok
        await wait_done(session, other_job["job_id"])
        ok, res = await call(session, "search_code", query="omega secret sauce", project_id="p2")
        assert ok and {r["repository"] for r in res["results"]} == {"other"}
        ok, res = await call(session, "search_code", query="omega secret sauce")
        assert ok and all(r["repository"] == "four" for r in res["results"])

        # the session's project comes from the nearest .codebase-mcp/config.json
        workdir = tmp_path / "ws" / "sub" / "deeper"
        workdir.mkdir(parents=True)
        (tmp_path / "ws" / ".codebase-mcp").mkdir()
        (tmp_path / "ws" / ".codebase-mcp" / "config.json").write_text('{"project_id": "p2"}')
        ok, wd = await call(session, "set_working_directory", directory=str(workdir))
        assert ok and wd["project_id"] == "p2"
        ok, res = await call(session, "search_code", query="omega secret sauce")
        assert ok and {r["repository"] for r in res["results"]} == {"other"}
        (tmp_path / "ws" / ".codebase-mcp" / "config.json").write_text("{not json")
        ok, msg = await call(session, "set_working_directory", directory=str(workdir))
        assert not ok and "is not valid" in msg
        ok, wd = await call(session, "set_working_directory", directory=str(repo))
        assert ok and wd["project_id"] == "default"

        for bad in ["relative/path", str(repo / ".." / "four"), str(tmp_path / "missing"), str(repo / "f0.py")]:
            ok, res = await call(session, "start_indexing_background", repo_path=bad)
            assert ok and res["status"] == "failed" and res["message"], bad
            ok, failed = await call(session, "get_indexing_status", job_id=res["job_id"])
            assert ok and failed["status"] == "failed" and failed["error_message"]

        ok, msg = await call(session, "get_indexing_status", job_id="not-a-uuid")
        assert not ok and "not a job id" in msg
        ok, msg = await call(session, "get_indexing_status", job_id="00000000-0000-0000-0000-000000000000")
        assert not ok and "No indexing job" in msg
        ok, msg = await call(session, "search_code", query="x", limit=0)
        assert not ok
        ok, msg = await call(session, "search_code", query="")
        assert not ok
        ok, msg = await call(session, "search_code", query="x", project_id="nope")
        assert not ok and "Unknown project" in msg and "Traceback" not in msg

        ok, jobs = await call(session, "list_indexing_jobs", status="completed")
        assert ok and len(jobs["jobs"]) >= 2
