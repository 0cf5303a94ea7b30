"""The client side of the MCP tasks extension (``io.modelcontextprotocol/tasks``, 2026-07-28), written from
the spec on the official SDK's client-extension API: a claim for ``resultType: "task"`` that polls
``tasks/get`` to the end, and the raw ``tasks/get`` / ``tasks/cancel`` requests."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

import anyio
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.session import ClientSession
from mcp_types import CallToolResult, Request, RequestParams, Result, TextContent
from pydantic import ConfigDict

EXTENSION = "io.modelcontextprotocol/tasks"
TERMINAL = {"completed", "failed", "cancelled"}


class TaskHandle(Result):
    """``CreateTaskResult``: a ``Task`` in lieu of the tool's result."""

    model_config = ConfigDict(extra="allow")
    result_type: Literal["task"] = "task"
    task_id: str
    status: str
    status_message: str | None = None
    created_at: str
    last_updated_at: str
    ttl_ms: int | None
    poll_interval_ms: int | None = None


class Answer(Result):
    """Any result, its wire fields kept as sent."""

    model_config = ConfigDict(extra="allow")


class TaskParams(RequestParams):
    task_id: str


class GetTask(Request[TaskParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    name_param = "taskId"


class CancelTask(Request[TaskParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    name_param = "taskId"


async def get_task(session: ClientSession, task_id: str) -> dict[str, Any]:
    answer = await session.send_request(GetTask(params=TaskParams(task_id=task_id)), Answer)
    return answer.model_dump(by_alias=True, mode="json", exclude_none=True)


async def cancel_task(session: ClientSession, task_id: str) -> dict[str, Any]:
    answer = await session.send_request(CancelTask(params=TaskParams(task_id=task_id)), Answer)
    return answer.model_dump(by_alias=True, mode="json", exclude_none=True)


async def follow(session: ClientSession, task_id: str, timeout: float = 180) -> dict[str, Any]:
    """Poll ``tasks/get`` at the server's suggested interval until the task ends; every state seen is
    checked against the extension's shape."""
    deadline = time.monotonic() + timeout
    while True:
        task = await get_task(session, task_id)
        assert task["resultType"] == "complete" and task["taskId"] == task_id, task
        assert task["status"] in TERMINAL | {"working", "input_required"}, task
        if task["status"] in TERMINAL:
            return task
        assert time.monotonic() < deadline, f"task {task_id} still {task['status']}: {task.get('statusMessage')}"
        await anyio.sleep(min(task.get("pollIntervalMs") or 1000, 2000) / 1000)


class Tasks(ClientExtension):
    """Declares the extension; a task handed back for a tool call is followed to its result."""

    identifier = EXTENSION

    def __init__(self) -> None:
        self.seen: list[TaskHandle] = []

    def claims(self) -> Sequence[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=TaskHandle, resolve=self.resolve)]

    async def resolve(self, handle: TaskHandle, ctx: ClaimContext) -> CallToolResult:
        self.seen.append(handle)
        task = await follow(ctx.session, handle.task_id)
        if task["status"] == "completed":
            return CallToolResult.model_validate(task["result"])
        reason = task.get("statusMessage") or task["status"]
        return CallToolResult(content=[TextContent(type="text", text=reason)], is_error=True)
