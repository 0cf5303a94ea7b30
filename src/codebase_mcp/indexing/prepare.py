"""Reading, chunking and analysing the files of one store batch: the CPU work of the store phase.

It is Python under the GIL (about 35 CPU-seconds on issue 10's corpus, docs/benchmarks/indexing.md),
while storing a batch is mostly PostgreSQL's work. A run that reads many files does it in worker
processes of its own (``PrepareProcess``), so that it overlaps both the database's work and the
indexer's own share of the storing on the second core; a small run does it on the run's executor, where
starting processes would cost more than they save.

The worker analyses keyword text (``core/analysis.py``) with the server's stem corrections that the
indexer's process knew when it sent the batch, and stamps the chunks with that process's lexicon
generation; the words it stemmed without a check go back with the batch, and the indexer's process has
the server check them like its own. Chunks holding a word corrected after that are analysed again
before they are written (``index_store.current_analysis``), as for the thread's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from types import TracebackType

from codebase_mcp.core import analysis
from codebase_mcp.core.languages import DEFINITION_KINDS, is_test_path, language_for
from codebase_mcp.core.tokens import search_text
from codebase_mcp.domain import KEYWORD_ONLY, ChunkRow, FileState, FileWrite
from codebase_mcp.indexing.chunker import Chunk, chunk_file
from codebase_mcp.indexing.embed_policy import EmbedPolicy
from codebase_mcp.indexing.scanner import FileEntry, load_file

#: how often a worker looks whether the process that started it is still there
PARENT_CHECK_SECONDS = 0.5
CLOSE_SECONDS = 20.0  # the longest a run waits for its workers to end (each finishes the batch it holds)


def embedding_text(rel_path: str, symbol: str | None, content: str) -> str:
    """What the model sees for a chunk: where it lives, what it is called, then the code."""
    head = f"{rel_path} {symbol}" if symbol else rel_path
    return f"{head}\n{content}"


def text_hash(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", errors="replace"), digest_size=16).digest()


def chunk_rows(
    rel_path: str, language: str, chunks: Sequence[Chunk], keyword_only: bool = False
) -> tuple[ChunkRow, ...]:
    in_tests = is_test_path(rel_path)
    priority = KEYWORD_ONLY if keyword_only else 2 if in_tests else None
    rows = []
    for ordinal, c in enumerate(chunks):
        keywords = search_text(c.content, rel_path, c.symbol)
        analysed = analysis.analyse(keywords)
        rows.append(
            ChunkRow(
                ordinal=ordinal,
                start_line=c.start_line,
                end_line=c.end_line,
                kind=c.kind,
                symbol=c.symbol,
                language=language,
                content=c.content,
                embed_hash=text_hash(embedding_text(rel_path, c.symbol, c.content)),
                search_text=keywords,
                tsv=analysis.tsvector_binary(analysed),
                doc_len=analysed.doc_len,
                lexicon=analysed.generation,
                embed_priority=priority if priority is not None else (0 if c.kind in DEFINITION_KINDS else 1),
            )
        )
    return tuple(rows)


@dataclass(frozen=True)
class PrepareOptions:
    """What preparing a batch needs to know besides the files (sent to the worker process with each)."""

    max_line_length: int
    chunk_max_chars: int
    keyword_only: tuple[str, ...]  # the repository's EmbedPolicy patterns


def prepare_files(batch: Sequence[FileEntry], known: dict[str, FileState], options: PrepareOptions) -> list[FileWrite]:
    """Read, chunk and analyse ``batch``: a file whose content hash is ``known`` is only touched."""
    policy = _policy(options.keyword_only)
    out: list[FileWrite] = []
    for entry in batch:
        language = language_for(entry.rel_path)
        base = FileWrite(entry.rel_path, entry.size, entry.mtime_ns, language)
        text, reason = load_file(entry, options.max_line_length)
        if text is None:
            out.append(replace(base, skip_reason=reason or "unreadable"))
            continue
        digest = text_hash(text)
        old = known.get(entry.rel_path)
        if old is not None and old.content_hash == digest:
            out.append(replace(base, text=text, content_hash=digest, unchanged=True))
            continue
        chunks = chunk_file(text, language, options.chunk_max_chars)
        rows = chunk_rows(entry.rel_path, language, chunks, policy.keyword_only(entry.rel_path))
        out.append(replace(base, text=text, content_hash=digest, chunks=rows))
    return out


@functools.lru_cache(maxsize=8)
def _policy(patterns: tuple[str, ...]) -> EmbedPolicy:
    return EmbedPolicy(patterns)


def _start_worker(nice: int, parent: int) -> None:
    # Ctrl-C at a terminal reaches the whole process group: the indexer's process decides what stops
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a worker of a stdio MCP server shares its standard output, which carries nothing but MCP messages
    try:
        os.dup2(2, 1)
    except OSError:  # no standard error either
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
    sys.stdout = sys.stderr
    threading.Thread(target=_exit_with, args=(parent,), name="parent-watch", daemon=True).start()
    if nice:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, nice)


def _exit_with(parent: int) -> None:
    """End the worker once the process that started it is gone (killed: it shut nothing down), instead
    of waiting for work forever."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def _in_worker(
    batch: Sequence[FileEntry],
    known: dict[str, FileState],
    options: PrepareOptions,
    corrections: dict[str, str],
    generation: int,
) -> tuple[list[FileWrite], list[str]]:
    """The worker's side: the batch prepared with the sender's corrections, its chunks stamped with the
    sender's generation, and the words stemmed here that the server has not checked."""
    analysis.record_server_stems(corrections)
    writes = prepare_files(batch, known, options)
    stamped = [
        replace(w, chunks=tuple(replace(c, lexicon=generation) for c in w.chunks)) if w.chunks else w for w in writes
    ]
    return stamped, analysis.take_unchecked()


class PrepareProcess:
    """Worker processes that prepare a run's batches, each batch in one of them."""

    def __init__(self, options: PrepareOptions, workers: int = 1, nice: int = 0) -> None:
        self.options = options
        # spawn, not fork: the indexer's process has threads (the event loop's executors, the model's)
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(nice, os.getpid()),
        )

    def prepare(self, batch: Sequence[FileEntry], known: dict[str, FileState]) -> asyncio.Future[list[FileWrite]]:
        """Send ``batch`` to a worker now; the future gives what ``prepare_files`` would."""
        mine = {e.rel_path: known[e.rel_path] for e in batch if e.rel_path in known}
        sent = asyncio.get_running_loop().run_in_executor(
            self._pool,
            _in_worker,
            list(batch),
            mine,
            self.options,
            *analysis.lexicon_snapshot(),
        )
        return asyncio.ensure_future(self._received(sent))

    @staticmethod
    async def _received(sent: asyncio.Future[tuple[list[FileWrite], list[str]]]) -> list[FileWrite]:
        writes, words = await sent
        analysis.note_unchecked(words)
        return writes

    async def aclose(self) -> None:
        """Stop the workers once they are idle, and wait for them to end (at most ``CLOSE_SECONDS``).
        Batches already handed to them (at most one more than there are workers) are finished and
        dropped: terminating a worker that holds the pool's queue can leave the process unable to exit
        (it hung on SIGHUP in tests/cli/test_signals.py). Not waiting let the process exit while a
        worker was still starting (it then failed to read the pool's queue, whose semaphore had gone
        with the process) or while the pool's thread was closing its pipe (Python 3.11's exit hook then
        wrote to it): two tracebacks on a Ctrl-C in tests/cli/test_signals.py. The wait runs in a
        thread of its own, so a worker that never ends keeps neither the event loop nor the exit."""
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()

        def set_ended() -> None:
            if not ended.done():
                ended.set_result(None)

        def shut_down() -> None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(set_ended)

        threading.Thread(target=shut_down, name="prepare-close", daemon=True).start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ended, CLOSE_SECONDS)

    async def __aenter__(self) -> PrepareProcess:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
