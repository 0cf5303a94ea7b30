"""Incremental indexing of one repository.

Phases: scan (walk the tree), store (read, chunk and write changed files, a batch per transaction),
embed (vectors for chunks that lack them, a batch per transaction). A file's text and chunks are
committed together, so a file is either fully indexed or not at all, and keyword search works on it
as soon as its batch commits, before embedding. Unchanged files (same size and mtime, else same
content hash) are not read again; files gone from disk, or now skipped, leave the index. Identical
chunk text is embedded once per model (``embedding_cache``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from codebase_mcp.core.identity import host_name
from codebase_mcp.core.validation import validate_root
from codebase_mcp.domain import (
    BatchStats,
    FileState,
    FileWrite,
    JobPhase,
    PendingChunk,
    Progress,
    SkippedFile,
)
from codebase_mcp.embeddings.base import EmbeddingModel, Vectors
from codebase_mcp.indexing.embed_policy import EmbedPolicy
from codebase_mcp.indexing.prepare import PrepareOptions, PrepareProcess, embedding_text, prepare_files
from codebase_mcp.indexing.run import RunControl, repository_lock
from codebase_mcp.indexing.scanner import FileEntry, scan
from codebase_mcp.settings import Settings
from codebase_mcp.storage import index_store
from codebase_mcp.storage.database import Database

log = logging.getLogger(__name__)

#: A run that stores this many chunks refreshes the planner's statistics of ``chunks`` at its end, and
#: also while storing, each time its count doubles: without them a repository that has grown from
#: nothing is planned as a few rows, and a keyword search over it reads every one of its chunks
#: instead of the GIN index's (0.6 -> 66 ms for a rare word after 10,000 chunks, docs/benchmarks/indexing.md).
ANALYZE_AFTER_CHUNKS = 2000
#: A run that writes at least this many files, and at least ``BULK_MIN_SHARE`` of the repository's,
#: loads in bulk: its BM25 postings are built in one sorted pass at the end of the store phase instead
#: of per statement (migration 0009; docs/benchmarks/indexing.md has the measurement).
BULK_MIN_FILES = 200
BULK_MIN_SHARE = 1 / 3
#: Statements (and connections) building a bulk load's postings at once, each over a share of the
#: lexemes: on issue 10's corpus (6.0 M postings, 2 cores) one took 17.8 s, two 11.3 s
#: (docs/benchmarks/indexing.md).
POSTINGS_BUILDERS = 2


async def build_postings(db: Database, repo_id: int, run: RunControl, builders: int | None = None) -> int:
    """A bulk load's postings, as blocks (migration 0014), built by ``builders`` statements (default
    ``POSTINGS_BUILDERS``) at once on as many connections, each over a range of lexemes in its own
    fenced transaction; returns their number. Until the last transaction takes the repository off the
    bulk list, searches do not read its blocks, so a builder that fails or is fenced out leaves nothing
    half-read: the next run builds again."""
    async with db.connection() as conn:
        await index_store.drop_postings(conn, repo_id)
        splits = await index_store.lexeme_splits(conn, repo_id, builders or POSTINGS_BUILDERS)
    bounds: list[str | None] = [None, *splits, None]

    async def build(start: str | None, stop: str | None) -> None:
        async with db.connection() as conn:
            await index_store.build_blocks(conn, repo_id, start, stop)
            await run.fence(conn, BatchStats())

    running = [asyncio.ensure_future(build(a, b)) for a, b in itertools.pairwise(bounds)]
    try:
        await asyncio.gather(*running)
    except BaseException:
        for builder in running:
            builder.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        raise
    async with db.connection() as conn:
        postings = await index_store.end_bulk_postings(conn, repo_id)
        await run.fence(conn, BatchStats())
    return postings


def store_batches(entries: Sequence[FileEntry], max_files: int, max_bytes: int) -> list[list[FileEntry]]:
    """``entries`` in order, cut into batches of at most ``max_files`` files and ``max_bytes`` bytes (a
    larger file is a batch of its own): one batch is one transaction, bounded in time and memory."""
    batches: list[list[FileEntry]] = []
    current: list[FileEntry] = []
    size = 0
    for entry in entries:
        if current and (len(current) >= max_files or size + entry.size > max_bytes):
            batches.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry.size
    if current:
        batches.append(current)
    return batches


def _observed(future: asyncio.Future[list[FileWrite]]) -> None:
    """Retrieve the outcome of a batch prepared ahead and never awaited (a worker that died fails them
    all), so that asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()


#: sends a batch to be prepared (``indexing/prepare.py``) and gives its writes when ready
_Prepare = Callable[[Sequence[FileEntry], dict[str, FileState]], "asyncio.Future[list[FileWrite]]"]


@dataclass(frozen=True)
class _Plan:
    """What a run's scan found to do: the files to read, what is stored of them, whether it loads in bulk."""

    known: dict[str, FileState]
    to_read: list[FileEntry]
    bulk: bool
    skipped: list[SkippedFile]


class Indexer:
    def __init__(self, db: Database, model: EmbeddingModel, settings: Settings) -> None:
        self.db = db
        self.model = model
        self.settings = settings
        # a batch statement slower than a heartbeat timeout means a paused or hung writer
        self._batch_timeout_ms = int(max(settings.job_heartbeat_timeout_seconds, 10.0) * 1000)

    async def index(
        self,
        path: str | os.PathLike[str],
        *,
        run: RunControl | None = None,
        project_id: str = "default",
        force: bool = False,
        embed: bool = True,
    ) -> Progress:
        """Index (or re-index) the repository at ``path`` as ``run`` (None: a run nobody records, which
        never stops). Every batch commits on its own, so whatever stops the run (an error, a cancel, a
        full disk) leaves the files committed so far searchable."""
        root = validate_root(path)
        control = run or RunControl()
        async with self.db.connection() as conn:
            await index_store.ensure_project(conn, project_id)
            repo_id = await index_store.ensure_repository(conn, project_id, str(root), root.name, host_name())
        async with repository_lock(self.db, repo_id, control):
            return await self._index(root, repo_id, control, force, embed)

    async def _index(self, root: Path, repo_id: int, run: RunControl, force: bool, embed: bool) -> Progress:
        state = Progress(phase=JobPhase.SCANNING)
        async with self.db.connection() as conn:
            model_id = await index_store.ensure_model(conn, self.model.name, self.model.dimension)
            # the watcher's latest change before this scan: cleared once the store phase has committed
            seen = await index_store.changes_pending_at(conn, repo_id)
        run.report(state)
        plan = await self._plan(root, repo_id, model_id, state, run, force)
        state.phase = JobPhase.CHUNKING
        run.report(state)
        started = time.perf_counter()
        skipped = await self._store(root, repo_id, plan, state, run)
        state.seconds["store"] = time.perf_counter() - started
        await self._stored(repo_id, skipped, seen, state)
        if embed:
            state.phase = JobPhase.EMBEDDING
            run.report(state)
            await self.embed_pending(repo_id, model_id, state, run)
        state.phase = JobPhase.FINALIZING
        run.report(state)
        async with self.db.connection() as conn:
            await index_store.mark_indexed(conn, repo_id)
        state.phase = JobPhase.DONE
        run.report(state)
        return state

    async def _plan(
        self, root: Path, repo_id: int, model_id: int, state: Progress, run: RunControl, force: bool
    ) -> _Plan:
        """Scan, compare with what is stored, and drop what must go: the files left to read."""
        started = time.perf_counter()
        result = await run.in_thread(scan, root, self.settings.max_file_bytes)
        state.seconds["scan"] = time.perf_counter() - started
        state.files_total = len(result.files)

        async with self.db.connection() as conn:
            known = {} if force else await index_store.file_states(conn, repo_id)
            bulk = await index_store.bulk_postings_pending(conn, repo_id)
        to_read: list[FileEntry] = []
        for entry in result.files:
            old = known.get(entry.rel_path)
            if old is not None and old.size == entry.size and old.mtime_ns == entry.mtime_ns:
                state.files_unchanged += 1
            else:
                to_read.append(entry)
        if not bulk and len(to_read) >= max(BULK_MIN_FILES, BULK_MIN_SHARE * len(result.files)):
            async with self.db.connection() as conn:
                await index_store.begin_bulk_postings(conn, repo_id)
            bulk = True
        async with self.db.connection() as conn:
            if force:
                await index_store.clear_repository(conn, repo_id)
            await index_store.drop_foreign_embeddings(conn, repo_id, model_id)

        on_disk = {entry.rel_path for entry in result.files}
        gone = [p for p in known if p not in on_disk]
        if gone:
            async with self.db.connection() as conn:
                await index_store.delete_files(conn, repo_id, gone)
                await run.fence(conn, BatchStats(files_dropped=len(gone)))
            state.files_deleted = len(gone)
        state.files_done = state.files_unchanged
        return _Plan(known, to_read, bulk, list(result.skipped))

    async def _store(
        self, root: Path, repo_id: int, plan: _Plan, state: Progress, run: RunControl
    ) -> list[SkippedFile]:
        """Read, chunk and store the files to read, a batch per transaction (then a bulk load's postings);
        returns every file left out, the scan's and the reader's."""
        skipped = list(plan.skipped)
        options = PrepareOptions(
            self.settings.max_line_length, self.settings.chunk_max_chars, EmbedPolicy.of(root).patterns
        )
        batches = store_batches(plan.to_read, self.settings.store_batch_files, self.settings.store_batch_bytes)
        analyze_at = ANALYZE_AFTER_CHUNKS
        async with self._preparer(len(plan.to_read), options, run) as (prepare, ahead):
            # pipeline: the next batches are read and chunked while PostgreSQL stores this one
            prepared: deque[asyncio.Future[list[FileWrite]]] = deque()
            sent = 0
            try:
                for index, batch in enumerate(batches):
                    run.check()
                    if not prepared:
                        prepared.append(prepare(batch, plan.known))
                        sent += 1
                    writes = await prepared.popleft()
                    while sent < len(batches) and sent <= index + ahead:
                        prepared.append(prepare(batches[sent], plan.known))
                        sent += 1
                    async with self.db.connection() as conn:
                        stats = await index_store.store_batch(conn, repo_id, writes, self._batch_timeout_ms)
                        await run.fence(conn, stats)
                    state.files_indexed += stats.files_written
                    state.files_unchanged += stats.files_touched
                    state.chunks_created += stats.chunks_written
                    state.files_deleted += stats.files_dropped
                    skipped.extend(SkippedFile(w.path, w.skip_reason) for w in writes if w.skip_reason)
                    state.files_done += len(batch)
                    run.report(state)
                    if state.chunks_created >= analyze_at:
                        async with self.db.connection() as conn:
                            await index_store.analyze_chunks(conn, rows_only=True)
                        analyze_at = 2 * state.chunks_created
            finally:
                for future in prepared:  # a run stopped or failed: what was sent ahead is not needed
                    future.cancel()
                    future.add_done_callback(_observed)
        if plan.bulk:  # the postings of a bulk load, in one sorted pass (keyword search used GIN meanwhile)
            built = time.perf_counter()
            postings = await build_postings(self.db, repo_id, run)
            state.seconds["postings"] = time.perf_counter() - built
            log.info("built %d BM25 postings of repository %d in bulk", postings, repo_id)
        return skipped

    async def _stored(self, repo_id: int, skipped: list[SkippedFile], seen: datetime | None, state: Progress) -> None:
        """The store phase has committed: record what was left out, clear the changes stored, and refresh
        the planner's statistics after a large load."""
        state.files_skipped = len(skipped)
        counts: dict[str, int] = {}
        for item in skipped:
            counts[item.reason] = counts.get(item.reason, 0) + 1
        state.skip_reasons = counts
        async with self.db.connection() as conn:
            await index_store.replace_skipped(conn, repo_id, skipped)
            if seen is not None:  # every change seen before the scan is stored: searches see it now
                await index_store.changes_stored(conn, repo_id, seen)
        if state.chunks_created >= ANALYZE_AFTER_CHUNKS:
            # fresh statistics keep keyword search fast on a big new index (storage/search_store.py)
            async with self.db.connection() as conn:
                await index_store.analyze_chunks(conn)

    @contextlib.asynccontextmanager
    async def _preparer(
        self, files: int, options: PrepareOptions, run: RunControl
    ) -> AsyncIterator[tuple[_Prepare, int]]:
        """How this run prepares its batches, and how many ahead of the one being stored: in worker
        processes when it reads at least ``prepare_process_min_files`` files, on the run's executor
        otherwise."""
        threshold, workers = self.settings.prepare_process_min_files, self.settings.prepare_processes
        if threshold <= 0 or workers <= 0 or files < threshold:
            yield (lambda batch, known: run.in_thread(self._prepare, batch, known, options)), 1
            return
        async with PrepareProcess(options, workers, nice=run.nice) as worker:
            yield worker.prepare, workers

    def _prepare(
        self, batch: Sequence[FileEntry], known: dict[str, FileState], options: PrepareOptions
    ) -> list[FileWrite]:
        return prepare_files(batch, known, options)

    async def embed_pending(self, repo_id: int, model_id: int, state: Progress, run: RunControl | None = None) -> None:
        """Vectors for the repository's chunks that lack one, most useful first, a batch per transaction:
        from the cache where the text was embedded before, else from the model."""
        run = run or RunControl()
        started = time.perf_counter()
        async with self.db.connection() as conn:
            state.chunks_total_to_embed = await index_store.count_unembedded(conn, repo_id)
        async with self.db.connection() as conn:
            cached = await index_store.fill_from_cache(conn, repo_id, model_id, None)
            await run.fence(conn, BatchStats(chunks_embedded=cached))
        state.embeddings_from_cache += cached
        state.chunks_embedded += cached
        async with self.db.connection() as conn:
            state.chunks_with_vectors, state.chunks_in_repository = await index_store.coverage(conn, repo_id)
        run.report(state)
        batch_size = max(self.settings.embedding_batch_size * 4, 64)

        def start(batch: list[PendingChunk]) -> tuple[list[bytes], asyncio.Future[Vectors]]:
            unique: dict[bytes, str] = {}
            for chunk in batch:
                unique.setdefault(chunk.embed_hash, embedding_text(chunk.path, chunk.symbol, chunk.content))
            hashes = list(unique)
            return hashes, run.in_thread(self.model.embed_batch, [unique[h] for h in hashes], "document")

        # pipeline: the model embeds the next batch while PostgreSQL writes this one's vectors, so the
        # model is never idle during a write (docs/benchmarks/embedding-model.md, pipeline vs raw)
        async with self.db.connection() as conn:
            current = await index_store.unembedded_batch(conn, repo_id, batch_size)
        running = start(current) if current else None
        try:
            while current and running is not None:
                run.check()
                async with self.db.connection() as conn:
                    following = await index_store.unembedded_batch(
                        conn, repo_id, batch_size, exclude=[c.chunk_id for c in current]
                    )
                hashes, future = running
                vectors = await future
                running = start(following) if following else None
                async with self.db.connection() as conn:
                    await index_store.bound_statements(conn, self._batch_timeout_ms)
                    await index_store.add_to_cache(conn, model_id, hashes, vectors)
                    filled = await index_store.fill_from_cache(conn, repo_id, model_id, [c.chunk_id for c in current])
                    state.chunks_embedded += filled  # before the fence, which publishes them with the batch
                    state.chunks_with_vectors += filled
                    await run.fence(conn, BatchStats(chunks_embedded=filled))
                run.report(state)
                current = following
        finally:
            if running is not None:  # a stop or an error: let the batch in flight finish, unused
                with contextlib.suppress(Exception):
                    await running[1]
        state.seconds["embed"] = time.perf_counter() - started
