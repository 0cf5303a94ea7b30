"""A server's link to its daemon survives a defect in one attempt: it says so in the log and tries
again, instead of ending unnoticed."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from codebase_mcp.daemon import client as daemon_client


async def test_a_defect_while_following_the_daemon_is_logged_and_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[float] = []

    async def ensure_running(_home: Path, **_kwargs: Any) -> dict[str, Any]:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise KeyError("a bug")
        await asyncio.Event().wait()  # the second attempt "runs" until the server stops
        raise AssertionError("unreachable")

    monkeypatch.setattr(daemon_client, "ensure_running", ensure_running)
    stopping = asyncio.Event()
    with caplog.at_level(logging.ERROR, logger=daemon_client.__name__):
        task = asyncio.create_task(daemon_client.stay_attached(tmp_path, stopping))
        deadline = time.monotonic() + 60
        while len(calls) < 2:
            assert not task.done(), task
            assert time.monotonic() < deadline, "not retried"
            await asyncio.sleep(0.05)
    assert "following the background daemon failed" in caplog.text and "KeyError" in caplog.text
    assert not task.done(), "still following"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
