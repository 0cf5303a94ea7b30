"""Out-of-range, wrong-type, oversized and unknown tool arguments sent by the official MCP client to
a real server: each gets a clear error naming the problem, never a stack trace, and the server keeps
answering. Plus a seeded fuzz of random JSON values into every argument of every tool."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from mcp.client.session import ClientSession
from mcp.client.stdio import stdio_client

from tests.server.client import call, params, wait_done

BAD_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("search_code", {"query": "x" * 5_000_000}, "query"),
    ("search_code", {"query": "parse", "limit": -1}, "limit"),
    ("search_code", {"query": "parse", "limit": 10**12}, "limit"),
    ("search_code", {"query": "parse", "limit": "ten"}, "limit"),
    ("search_code", {"query": "parse", "limit": 2.5}, "limit"),
    ("search_code", {"query": "parse", "limt": 5}, "limt"),
    ("search_code", {"query": ["parse"]}, "query"),
    ("search_code", {"query": None}, "query"),
    ("search_code", {}, "query"),
    ("search_code", {"query": "pa\x00rse"}, "NUL"),
    ("search_code", {"query": "\u202e\u2066\u200b"}, "invisible"),
    ("search_code", {"query": "parse", "project_id": "x" * 10_000}, "project_id"),
    ("search_code", {"query": "parse", "project_id": "../etc"}, "project"),
    ("search_code", {"query": "parse", "directory": "d" * 1_000_000}, "directory"),
    ("start_indexing_background", {"repo_path": "relative/path"}, "absolute"),
    ("start_indexing_background", {"repo_path": "/tmp", "force_reindex": "maybe"}, "force_reindex"),
    ("start_indexing_background", {"repo_path": "/" + "a" * 5_000_000}, "repo_path"),
    ("start_indexing_background", {"repo_path": "/tmp", "extra": {"nested": [1, 2]}}, "extra"),
    ("get_indexing_status", {"job_id": "not-a-uuid"}, "job"),
    ("get_indexing_status", {"job_id": 12345}, "job_id"),
    ("get_indexing_status", {"job_id": "\u202e00000000-0000-0000-0000-000000000000"}, "job"),
    ("cancel_indexing_job", {"job_id": "' OR '1'='1"}, "job"),
    ("list_indexing_jobs", {"limit": 0}, "limit"),
    ("list_indexing_jobs", {"status": "exploded"}, "status"),
    ("forget_repository", {"repository": "%"}, "repositor"),
    ("set_working_directory", {"directory": "not/absolute"}, "absolute"),
]


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 2 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 1, 2**63, -(2**63), 10**30])
    if kind == 2:
        return rng.uniform(-1e300, 1e300)
    if kind == 3:
        alphabet = "ab/\\.%_'\";\x00\u202e\u2066\U000e0041 \n\t日"  # (lone surrogates: see the raw test)
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
    if kind == 4:
        return rng.choice(["", "/", "..", "/etc/passwd", "default", "%", "*", "00000000-0000-0000-0000-000000000000"])
    if kind == 5:
        return "x" * rng.choice([1, 1_000, 100_000])
    if kind == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {"k": _random_value(rng, depth + 1)}


async def test_bad_arguments_get_clear_errors_and_the_server_survives(cli_env: dict[str, str], tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "p.py").write_text("def parse_config(text):\n    return text\n")
    async with stdio_client(params(cli_env)) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert all(t.input_schema.get("additionalProperties") is False for t in tools.values())
        ok, started = await call(session, "start_indexing_background", repo_path=str(repo))
        assert ok and (await wait_done(session, started["job_id"]))["status"] == "completed"

        for tool, args, mention in BAD_CALLS:
            result = await session.call_tool(tool, args)
            text = " ".join(getattr(c, "text", "") for c in result.content)
            if tool == "start_indexing_background" and not result.is_error:
                # a bad path is accepted as a job that fails at once, with the reason
                job = result.structured_content or {}
                assert job.get("status") == "failed" and mention in str(job.get("message")), (args, job)
                continue
            assert result.is_error, (tool, str(args)[:200], text[:300])
            assert mention.lower() in text.lower(), (tool, str(args)[:200], text[:500])
            assert "Traceback" not in text and "Internal error" not in text, text[:500]
            assert len(text) < 5_000, "errors do not echo huge inputs back"

        rng = random.Random(20261124)
        internal = []
        for _ in range(300):
            tool = rng.choice(sorted(tools))
            props = list(tools[tool].input_schema.get("properties", {}))
            args = {p: _random_value(rng) for p in props if rng.random() < 0.8}
            if tool == "forget_repository":
                args["project_id"] = "fuzz-no-such-project"  # the fuzz must not forget the real repository
            if tool == "start_indexing_background" and isinstance(args.get("repo_path"), str):
                args["repo_path"] = "/nonexistent-fuzz" + args["repo_path"]  # never index this machine's /
            result = await session.call_tool(tool, args)
            text = " ".join(getattr(c, "text", "") for c in result.content)
            if "Internal error" in text or "Traceback" in text:
                internal.append((tool, str(args)[:300], text[:300]))
        assert internal == []
        assert len(tools) == 10  # the eight tools, find_symbol and find_references

        ok, res = await call(session, "search_code", query="parse config")
        assert ok and res["results"][0]["path"] == "p.py", "the server still answers, the index is intact"


async def test_lone_surrogates_in_raw_json_do_no_harm(cli_env: dict[str, str]) -> None:
    """JSON may carry a lone surrogate escape (``"\\ud800"``) that no UTF-8 text can hold; the official
    client cannot even send one, so this speaks raw JSON-RPC over the server's stdin. The SDK's parser
    rejects such a message (it is logged, not answered); the server keeps answering the next ones and
    nothing reaches a tool."""
    import asyncio
    import json

    from tests.conftest import cli_command

    proc = await asyncio.create_subprocess_exec(
        *cli_command(),
        "serve",
        env=cli_env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    others: list[dict[str, Any]] = []

    async def send(message: str) -> None:
        assert proc.stdin is not None
        proc.stdin.write(message.encode() + b"\n")
        await proc.stdin.drain()

    async def reply(request_id: int) -> dict[str, Any]:
        assert proc.stdout is not None
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, "the server closed its output"
            message: dict[str, Any] = json.loads(line)
            if message.get("id") == request_id:
                return message
            others.append(message)

    try:
        await send(
            '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
            '"capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}'
        )
        assert "result" in await reply(1)
        await send('{"jsonrpc":"2.0","method":"notifications/initialized"}')
        calls = [
            '{"name":"search_code","arguments":{"query":"\\ud800parse"}}',
            '{"name":"search_code","arguments":{"query":"\\udfff"}}',
            '{"name":"start_indexing_background","arguments":{"repo_path":"/tmp/\\ud800"}}',
            '{"name":"get_indexing_status","arguments":{"job_id":"\\ud800"}}',
        ]
        for n, params_json in enumerate(calls, start=2):
            await send(f'{{"jsonrpc":"2.0","id":{n},"method":"tools/call","params":{params_json}}}')
        await send('{"jsonrpc":"2.0","id":99,"method":"tools/list"}')
        assert len((await reply(99))["result"]["tools"]) == 10, "still answering"
        await send(
            '{"jsonrpc":"2.0","id":100,"method":"tools/call","params":{"name":"list_indexing_jobs","arguments":{}}}'
        )
        jobs = (await reply(100))["result"]["structuredContent"]["jobs"]
        assert jobs == [], "no surrogate path reached start_indexing_background"
        for message in others:  # whatever was answered was an error, never an internal one
            text = json.dumps(message)
            assert "error" in message or message.get("result", {}).get("isError"), text[:500]
            assert "Traceback" not in text and "Internal error" not in text, text[:500]
    finally:
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 30)
