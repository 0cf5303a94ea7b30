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
import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from codebase_mcp.embeddings.base import EmbeddingModel
from codebase_mcp.errors import CodebaseError, InvalidInput
from codebase_mcp.indexing.chunker import Chunk, chunk_file
from codebase_mcp.indexing.languages import language_for
from codebase_mcp.indexing.scanner import FileEntry, load_file, scan
from codebase_mcp.indexing.tokens import search_text
from codebase_mcp.settings import Settings
from codebase_mcp.storage import repo_store
from codebase_mcp.storage.database import Database, write_refused

log = logging.getLogger(__name__)


class Cancelled(CodebaseError):
    code = "cancelled"


@dataclass
class Progress:
    phase: str  # scanning, chunking, embedding, finalizing, done
    files_total: int = 0
    files_done: int = 0
    files_indexed: int = 0
    files_unchanged: int = 0
    files_deleted: int = 0
    files_skipped: int = 0
    chunks_created: int = 0
    chunks_total_to_embed: int = 0
    chunks_embedded: int = 0
    embeddings_from_cache: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    skip_reasons: dict[str, int] = field(default_factory=dict)


ANALYZE_AFTER_CHUNKS = 5000
ProgressCallback = Callable[[Progress], None]
StopCheck = Callable[[], bool]


@dataclass
class _Prepared:
    entry: FileEntry
    text: str | None
    skip_reason: str | None
    content_hash: bytes | None
    chunks: list[Chunk]
    unchanged: bool = False  # only size/mtime moved
    rows: list[tuple[Any, ...]] = field(default_factory=list)  # chunk rows for COPY, built off the event loop


def embedding_text(rel_path: str, symbol: str | None, content: str) -> str:
    """What the model sees for a chunk: where it lives, what it is called, then the code."""
    head = f"{rel_path} {symbol}" if symbol else rel_path
    return f"{head}\n{content}"


def text_hash(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", errors="replace"), digest_size=16).digest()


def validate_root(path: str | os.PathLike[str]) -> Path:
    """An absolute, existing, readable directory, or an error that says which of these it is not."""
    raw = os.fspath(path)
    if not raw or not raw.strip():
        raise InvalidInput("The repository path is empty. Give the path of a directory to index.")
    if "\x00" in raw:
        raise InvalidInput("The repository path contains a NUL character.")
    shown = raw[:300].encode("utf-8", "backslashreplace").decode()
    try:
        candidate = Path(raw).expanduser()
        if not candidate.exists():
            raise InvalidInput(f"The path {shown} does not exist. Check the spelling, or give an absolute path.")
        if not candidate.is_dir():
            raise InvalidInput(f"The path {shown} is not a directory. Give the repository's root directory.")
        root = candidate.resolve()
    except (UnicodeError, ValueError, OSError) as exc:  # undecodable names, names too long, loops
        raise InvalidInput(f"The path {shown} cannot be used: {type(exc).__name__}.") from None
    if not os.access(root, os.R_OK | os.X_OK):
        raise InvalidInput(f"The directory {root} cannot be read (permission denied).")
    return root


def validate_client_path(raw: str) -> Path:
    """A repository path from a remote client: also absolute, without any ``..`` component."""
    if not isinstance(raw, str) or not os.path.isabs(raw) or ".." in Path(raw).parts:
        shown = str(raw)[:200].encode("utf-8", "backslashreplace").decode()
        raise InvalidInput(f"The path {shown!r} must be absolute and must not contain '..'.")
    return validate_root(raw)


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
        project_id: str = "default",
        force: bool = False,
        progress: ProgressCallback | None = None,
        should_stop: StopCheck | None = None,
        embed: bool = True,
        fence: repo_store.Fence | None = None,
    ) -> Progress:
        """Index (or re-index) the repository at ``path``. Every batch commits on its own, so whatever
        stops the run (an error, a cancel, a full disk) leaves the files committed so far searchable."""
        try:
            return await self._index(path, project_id, force, progress, should_stop, embed, fence)
        except psycopg.Error as exc:
            refused = write_refused(exc)
            if refused is None:
                raise
            raise refused from exc

    async def _index(
        self,
        path: str | os.PathLike[str],
        project_id: str,
        force: bool,
        progress: ProgressCallback | None,
        should_stop: StopCheck | None,
        embed: bool,
        fence: repo_store.Fence | None,
    ) -> Progress:
        root = validate_root(path)
        state = Progress(phase="scanning")
        notify = progress or (lambda _p: None)
        stop = should_stop or (lambda: False)

        async with self.db.connection() as conn:
            await repo_store.ensure_project(conn, project_id)
            repo_id = await repo_store.ensure_repository(conn, project_id, str(root), root.name)
            model_id = await repo_store.ensure_model(conn, self.model.name, self.model.dimension)
            if force:
                await repo_store.clear_repository(conn, repo_id)
            await repo_store.drop_foreign_embeddings(conn, repo_id, model_id)

        started = time.perf_counter()
        notify(state)
        result = await asyncio.to_thread(scan, root, self.settings.max_file_bytes)
        state.seconds["scan"] = time.perf_counter() - started
        skipped: list[tuple[str, str]] = list(result.skipped)
        state.files_total = len(result.files)

        async with self.db.connection() as conn:
            known = await repo_store.file_states(conn, repo_id)
        on_disk = {entry.rel_path for entry in result.files}
        gone = [p for p in known if p not in on_disk]
        if gone:
            async with self.db.connection() as conn:
                await repo_store.delete_files(conn, repo_id, gone)
            state.files_deleted = len(gone)

        to_read: list[FileEntry] = []
        for entry in result.files:
            old = known.get(entry.rel_path)
            if old is not None and old[0] == entry.size and old[1] == entry.mtime_ns:
                state.files_unchanged += 1
            else:
                to_read.append(entry)
        state.files_done = state.files_unchanged
        state.phase = "chunking"
        notify(state)

        started = time.perf_counter()
        batch_size = self.settings.store_batch_files
        batches = [to_read[i : i + batch_size] for i in range(0, len(to_read), batch_size)]
        # pipeline: the next batch is read and chunked in a thread while PostgreSQL stores this one
        pending: asyncio.Future[list[_Prepared]] | None = None
        try:
            for index, batch in enumerate(batches):
                if stop():
                    raise Cancelled("Indexing was cancelled; the files stored so far stay indexed.")
                prepared = await (pending or asyncio.to_thread(self._prepare, batch, known))
                pending = None
                if index + 1 < len(batches):
                    pending = asyncio.ensure_future(asyncio.to_thread(self._prepare, batches[index + 1], known))
                async with self.db.connection() as conn:
                    stats = await repo_store.store_batch(conn, repo_id, prepared, fence, self._batch_timeout_ms)
                state.files_indexed += stats.files_written
                state.files_unchanged += stats.files_touched
                state.chunks_created += stats.chunks_written
                state.files_deleted += stats.files_dropped
                skipped.extend((p.entry.rel_path, p.skip_reason) for p in prepared if p.skip_reason)
                state.files_done += len(batch)
                notify(state)
        finally:
            if pending is not None:
                pending.cancel()
        state.seconds["store"] = time.perf_counter() - started

        state.files_skipped = len(skipped)
        counts: dict[str, int] = {}
        for _, reason in skipped:
            counts[reason] = counts.get(reason, 0) + 1
        state.skip_reasons = counts
        async with self.db.connection() as conn:
            await repo_store.replace_skipped(conn, repo_id, skipped)
            if state.chunks_created >= ANALYZE_AFTER_CHUNKS:
                # fresh statistics keep keyword search fast on a big new index (search/keyword.py)
                await conn.execute("ANALYZE chunks")
                await conn.commit()

        if embed:
            state.phase = "embedding"
            notify(state)
            await self.embed_pending(repo_id, model_id, state, notify, stop, fence)

        state.phase = "finalizing"
        notify(state)
        async with self.db.connection() as conn:
            await repo_store.mark_indexed(conn, repo_id)
        state.phase = "done"
        notify(state)
        return state

    def _prepare(self, batch: Sequence[FileEntry], known: dict[str, tuple[int, int, bytes]]) -> list[_Prepared]:
        out: list[_Prepared] = []
        for entry in batch:
            text, reason = load_file(entry, self.settings.max_line_length)
            if text is None:
                out.append(_Prepared(entry, None, reason, None, []))
                continue
            digest = text_hash(text)
            old = known.get(entry.rel_path)
            if old is not None and old[2] == digest:
                out.append(_Prepared(entry, text, None, digest, [], unchanged=True))
                continue
            language = language_for(entry.rel_path)
            chunks = chunk_file(text, language, self.settings.chunk_max_chars)
            rows = self._chunk_rows(entry.rel_path, language, chunks)
            out.append(_Prepared(entry, text, None, digest, chunks, rows=rows))
        return out

    @staticmethod
    def _chunk_rows(rel_path: str, language: str, chunks: list[Chunk]) -> list[tuple[Any, ...]]:
        rows = []
        for ordinal, c in enumerate(chunks):
            rows.append(
                (
                    ordinal,
                    c.start_line,
                    c.end_line,
                    c.kind,
                    c.symbol,
                    language,
                    c.content,
                    text_hash(embedding_text(rel_path, c.symbol, c.content)),
                    search_text(c.content, rel_path, c.symbol),
                )
            )
        return rows

    async def embed_pending(
        self,
        repo_id: int,
        model_id: int,
        state: Progress,
        notify: ProgressCallback,
        stop: StopCheck,
        fence: repo_store.Fence | None = None,
    ) -> None:
        started = time.perf_counter()
        async with self.db.connection() as conn:
            state.chunks_total_to_embed = await repo_store.count_unembedded(conn, repo_id)
            async with conn.transaction():
                cached = await repo_store.fill_from_cache(conn, repo_id, model_id, None)
                if fence is not None:
                    await fence(conn, repo_store.BatchStats(), cached)
        state.embeddings_from_cache += cached
        state.chunks_embedded += cached
        notify(state)
        batch_size = max(self.settings.embedding_batch_size * 4, 64)
        while True:
            if stop():
                raise Cancelled("Indexing was cancelled; embedded chunks are kept, the rest resume later.")
            async with self.db.connection() as conn:
                pending = await repo_store.unembedded_batch(conn, repo_id, batch_size)
            if not pending:
                break
            unique: dict[bytes, str] = {}
            for _chunk_id, embed_hash, rel_path, symbol, content in pending:
                unique.setdefault(embed_hash, embedding_text(rel_path, symbol, content))
            hashes = list(unique)
            vectors = await asyncio.to_thread(self.model.embed_batch, [unique[h] for h in hashes], "document")
            async with self.db.connection() as conn, conn.transaction():
                await repo_store.bound_statements(conn, self._batch_timeout_ms)
                await repo_store.add_to_cache(conn, model_id, hashes, vectors)
                filled = await repo_store.fill_from_cache(conn, repo_id, model_id, [row[0] for row in pending])
                if fence is not None:
                    await fence(conn, repo_store.BatchStats(), filled)
            state.chunks_embedded += filled
            notify(state)
        state.seconds["embed"] = time.perf_counter() - started
