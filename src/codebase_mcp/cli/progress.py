"""Indexing progress on the terminal: a live bar (files, chunks, rate, ETA) on a TTY, plain lines
otherwise (at most one every two seconds, and one per phase)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from codebase_mcp.domain import Progress as IndexProgress


@contextmanager
def progress_reporter(console: Console) -> Iterator[Callable[[IndexProgress], None]]:
    if console.is_terminal:
        with Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        ) as bar:
            tasks: dict[str, TaskID] = {}
            started: dict[str, float] = {}

            def update(p: IndexProgress) -> None:
                if p.phase in {"chunking", "scanning"}:
                    key, done, total, unit = "files", p.files_done, p.files_total, "files"
                elif p.phase == "embedding":
                    key, done, total, unit = "embedding", p.chunks_embedded, p.chunks_total_to_embed, "chunks"
                else:
                    return
                if key not in tasks:
                    tasks[key] = bar.add_task(key, total=max(total, 1), rate="")
                    started[key] = time.monotonic()
                elapsed = max(time.monotonic() - started[key], 1e-6)
                bar.update(
                    tasks[key],
                    completed=done,
                    total=max(total, 1),
                    rate=f"{done / elapsed:,.0f} {unit}/s · {p.chunks_created} chunks",
                )

            yield update
        return

    last_time = [0.0]
    last_phase = [""]

    def plain(p: IndexProgress) -> None:
        now = time.monotonic()
        if p.phase == last_phase[0] and now - last_time[0] < 2.0:
            return
        last_time[0], last_phase[0] = now, p.phase
        console.print(
            f"[{p.phase}] files {p.files_done}/{p.files_total}, chunks {p.chunks_created}, "
            f"embedded {p.chunks_embedded}/{p.chunks_total_to_embed}",
            highlight=False,
            markup=False,
        )

    yield plain
