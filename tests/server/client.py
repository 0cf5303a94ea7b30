"""Driving ``codebase-mcp serve`` with the official MCP client over stdio."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters

from tests.conftest import cli_command


def params(env: dict[str, str]) -> StdioServerParameters:
    cmd = cli_command()
    return StdioServerParameters(command=cmd[0], args=[*cmd[1:], "serve"], env=env)


async def call(session: ClientSession, tool: str, **args: Any) -> tuple[bool, Any]:
    result = await session.call_tool(tool, args)
    if result.is_error:
        return False, " ".join(getattr(c, "text", "") for c in result.content)
    return True, result.structured_content or json.loads(result.content[0].text)  # type: ignore[union-attr]


async def wait_done(session: ClientSession, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ok, job = await call(session, "get_indexing_status", job_id=job_id)
        assert ok, job
        if job["status"] in {"completed", "failed", "cancelled"}:
            return job  # type: ignore[no-any-return]
        await asyncio.sleep(0.2)
    raise AssertionError("job did not finish")
