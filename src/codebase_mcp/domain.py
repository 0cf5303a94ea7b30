"""The types that cross layers: what indexing writes, what storage returns, what search answers and
what a job is. Frozen dataclasses and enums only (``Progress`` is the one mutable record: a running
index updates it in place and observers read it). Storage turns table rows into these types, so a
migration cannot change what the CLI or an MCP client sees without a change here.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

SearchMode = Literal["hybrid", "keyword", "dense"]


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        return self in (JobStatus.PENDING, JobStatus.RUNNING)


class RunKind(StrEnum):
    """How an index run came about; every run is a row of the job table, of one of these kinds."""

    INDEX = "index"  # a queued job: any worker claims it, and hands it back when it stops
    FOREGROUND = "foreground"  # `codebase-mcp index` in the command's own process
    SYNC = "sync"  # the daemon's watcher following a repository's edits


class JobPhase(StrEnum):
    QUEUED = "queued"
    SCANNING = "scanning"
    CHUNKING = "chunking"
    EMBEDDING = "embedding"
    FINALIZING = "finalizing"
    DONE = "done"


# --- indexing → storage ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FileState:
    """What the index knows of a stored file, to decide whether it must be read again."""

    size: int
    mtime_ns: int
    content_hash: bytes


@dataclass(frozen=True)
class ChunkRow:
    """One chunk as stored: its place in the file, what it is, its text and the derived keys."""

    ordinal: int
    start_line: int  # 1-based, inclusive
    end_line: int
    kind: str
    symbol: str | None
    language: str
    content: str
    embed_hash: bytes  # hash of the text the model embeds (embedding cache key)
    search_text: str  # code-aware keyword tokens
    tsv: bytes  # search_text analysed (core/analysis.py): its tsvector in PostgreSQL's binary format
    doc_len: int  # its BM25 length: the positions the tsvector keeps
    lexicon: int  # the analysis lexicon's generation it was analysed with (analysis.Analysed.generation)
    # 0 definitions in non-test code, 1 other code, 2 tests: embedded in this order; KEYWORD_ONLY: never
    embed_priority: int = 1


#: ``ChunkRow.embed_priority`` of a chunk searched by keyword only (indexing/embed_policy.py)
KEYWORD_ONLY = 3


@dataclass(frozen=True)
class FileWrite:
    """What one batch writes for one scanned file. Exactly one of three things happens to it:
    ``skip_reason`` set: it leaves the index (now binary, minified, a secret...);
    ``unchanged``: only its size and mtime are updated (same content hash);
    otherwise: its text and ``chunks`` replace whatever was stored for ``path``."""

    path: str
    size: int
    mtime_ns: int
    language: str
    text: str | None = None
    content_hash: bytes | None = None
    chunks: tuple[ChunkRow, ...] = ()
    skip_reason: str | None = None
    unchanged: bool = False

    @property
    def changed(self) -> bool:
        return self.text is not None and not self.unchanged and self.skip_reason is None


@dataclass(frozen=True)
class BatchStats:
    """What one committed batch did (a job's counters add these up)."""

    files_written: int = 0
    files_touched: int = 0
    files_dropped: int = 0
    chunks_written: int = 0
    chunks_embedded: int = 0

    @property
    def wrote(self) -> bool:
        """Whether the batch changed the index (a file touched only in its mtime does not count)."""
        return bool(self.files_written or self.files_dropped or self.chunks_written or self.chunks_embedded)


@dataclass(frozen=True)
class SkippedFile:
    path: str  # folders end in "/"
    reason: str


@dataclass(frozen=True)
class PendingChunk:
    """A chunk that still needs a vector, with what the model is shown."""

    chunk_id: int
    embed_hash: bytes
    path: str
    symbol: str | None
    content: str


@dataclass
class Progress:
    """Live progress of one index run."""

    phase: JobPhase
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
    # the repository's chunks with a vector / all its chunks, known from the embedding phase on
    chunks_with_vectors: int = 0
    chunks_in_repository: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    skip_reasons: dict[str, int] = field(default_factory=dict)


# --- repositories ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Repository:
    id: int
    project_id: str
    name: str
    root_path: str
    last_indexed_at: datetime | None
    host: str | None = None  # the machine whose files are indexed (None: indexed before this was kept)
    watch: bool = True  # whether that machine's daemon keeps the index in step with edits


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 0):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h" if seconds < 172800 else f"{seconds / 86400:.0f} d"


@dataclass(frozen=True)
class RepositoryFreshness:
    """How fresh a searched repository's index is: when it was last indexed or synced, and why it may be
    behind its files (``None``: nothing pending: no file change seen and not stored, no active job)."""

    repository_id: int
    repository: str
    synced_at: datetime | None
    why: str | None = None

    @classmethod
    def read(
        cls,
        repository_id: int,
        repository: str,
        synced_at: datetime | None,
        changed_seconds_ago: float | None,
        job: str | None,
    ) -> RepositoryFreshness:
        """From what the database holds: the age of the latest file change not yet stored (None: none)
        and the status of an active indexing job (None: none)."""
        reasons = []
        if changed_seconds_ago is not None:
            reasons.append(f"files changed {_ago(changed_seconds_ago)} ago")
        if job is not None:
            reasons.append("indexing job " + ("queued" if job == "pending" else job))
        return cls(repository_id, repository, synced_at, "; ".join(reasons) or None)

    @property
    def pending(self) -> bool:
        return self.why is not None

    def to_dict(self) -> dict[str, Any]:
        synced = self.synced_at.isoformat(timespec="seconds") if self.synced_at else None
        out = {"repository": self.repository, "repository_id": self.repository_id, "synced_at": synced}
        return out | {"pending": self.pending} | ({"why": self.why} if self.why else {})

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> RepositoryFreshness:
        synced = record.get("synced_at")
        return cls(
            int(record["repository_id"]),
            str(record["repository"]),
            datetime.fromisoformat(synced) if synced else None,
            record.get("why"),
        )


@dataclass(frozen=True)
class RepositoryStats:
    repository: Repository
    files: int
    chunks: int
    embedded: int
    skipped: int
    keyword_only: int = 0  # chunks searched by keyword only, never embedded

    def to_dict(self) -> dict[str, Any]:
        """The flat record the CLI's ``--json`` and the MCP tool return."""
        repo = self.repository
        return {
            "id": repo.id,
            "project_id": repo.project_id,
            "name": repo.name,
            "root_path": repo.root_path,
            "last_indexed_at": repo.last_indexed_at.isoformat() if repo.last_indexed_at else None,
            "watch": repo.watch,
            "files": self.files,
            "chunks": self.chunks,
            "embedded": self.embedded,
            "keyword_only": self.keyword_only,
            # the share of the chunks meant to have a vector that have one
            "coverage_percent": round(100.0 * min(self.embedded / to_embed, 1.0), 1)
            if (to_embed := self.chunks - self.keyword_only)
            else None,
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class DatabaseStatus:
    server: str
    pgvector: str | None
    schema_version: int | None
    projects: int
    repositories: int
    files: int
    chunks: int
    embedded: int
    cached_vectors: int
    size: str


# --- jobs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One index run's record (a row of ``indexing_jobs``): a queued job, or a run recorded as it ran."""

    id: uuid.UUID
    kind: RunKind
    project_id: str
    repo_path: str
    status: JobStatus
    phase: JobPhase
    status_message: str | None
    error_message: str | None
    force_reindex: bool
    files_total: int
    files_indexed: int
    files_skipped: int
    chunks_created: int
    chunks_embedded: int
    progress_percent: float
    eta_seconds: float | None
    coverage_percent: float | None  # share of the repository's chunks that have a vector
    attempt: int
    worker_id: str | None
    heartbeat_at: datetime | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """The JSON record clients receive: every field, times in ISO 8601, and ``job_id``."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, uuid.UUID | StrEnum):
                value = str(value)
            out[key] = value
        out["job_id"] = str(self.id)
        return out


@dataclass(frozen=True)
class JobUpdate:
    """Progress a worker publishes on its job (fenced by attempt). The status message is built by the
    store from the row's own counters in the same statement, so it always matches them."""

    phase: JobPhase
    files_total: int | None  # None while the scan of this attempt has not counted them
    files_skipped: int
    progress_percent: float
    eta_seconds: float | None
    coverage_percent: float | None = None


# --- search ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchFilters:
    repository: str | None = None  # id, root path or name
    language: str | None = None
    file_type: str | None = None  # extension, with or without the dot
    path_prefix: str | None = None  # folder or path prefix, relative to the repository root
    path_glob: str | None = None  # e.g. "src/**/*.py"


@dataclass(frozen=True)
class RetrievedChunk:
    """A candidate from one retriever, in that retriever's order; ``score`` is its own measure
    (keyword rank, or cosine distance for dense)."""

    chunk_id: int
    file_id: int
    path: str
    symbol: str | None
    kind: str
    language: str
    score: float
    lines: int = 0  # the chunk's line count (0: unknown), for the ranking stage's length prior
    text: str | None = None  # the chunk's stored text, when the ranking stage reads defining lines


@dataclass(frozen=True)
class Bm25Stats:
    """Keyword statistics of the searched repositories: chunk count, average length (in tokens) and the
    document frequency of each query lexeme (storage/search_store.py's docstring)."""

    chunks: int
    avgdl: float
    df: dict[str, int]
    #: the searched repositories whose postings are being built in bulk: their keyword arm reads the GIN
    #: candidates, the others' their postings
    loading: frozenset[int] = frozenset()

    def idf(self, lexeme: str) -> float:
        """Lucene's idf: ln(1 + (N - df + 0.5) / (df + 0.5))."""
        df = self.df.get(lexeme, 0)
        return math.log(1.0 + (self.chunks - df + 0.5) / (df + 0.5))


@dataclass(frozen=True)
class SearchContext:
    """What a search reads before retrieval, in one statement: whether the project exists, the
    repositories searched with their freshness (read before any content), the keyword statistics of
    the query's lexemes over them, the id of the query model's vectors, whether some chunk still waits
    for one, and the languages indexed there (only when a language filter asks)."""

    project_exists: bool
    scope: tuple[RepositoryFreshness, ...]
    stats: Bm25Stats
    model_id: int | None
    vectors_pending: bool
    languages: tuple[str, ...] | None
    stems_corrected: bool  # the server stemmed a new query word differently: analyse the query again


@dataclass(frozen=True)
class ChunkContext:
    """A chunk's stored text and a few lines around it, read back to build a hit."""

    chunk_id: int
    repository_id: int
    repository: str
    start_line: int
    end_line: int
    content: str
    before: str
    after: str


@dataclass(frozen=True)
class SearchHit:
    repository: str
    repository_id: int
    path: str
    start_line: int
    end_line: int
    symbol: str | None
    kind: str
    language: str
    score: float
    content: str
    truncated: bool
    context_before: str
    context_after: str
    #: what placed the hit, when asked (``explain``): arms' ranks and scores, ranking factors
    explain: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.explain is None:
            del out["explain"]
        return out


@dataclass(frozen=True)
class SearchResponse:
    query: str
    hits: tuple[SearchHit, ...]
    total_count: int
    latency_ms: float
    mode: SearchMode
    warning: str | None = None
    # the searched repositories that produced a hit, were asked for by name, or may be behind their files
    freshness: tuple[RepositoryFreshness, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The CLI's ``--json`` record (and what the daemon sends the CLI)."""
        return (
            {
                "query": self.query,
                "total_count": self.total_count,
                "latency_ms": self.latency_ms,
                "mode": self.mode,
                "results": [h.to_dict() for h in self.hits],
            }
            | ({"warning": self.warning} if self.warning else {})
            | ({"freshness": [f.to_dict() for f in self.freshness]} if self.freshness else {})
        )

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> SearchResponse:
        return cls(
            query=record["query"],
            hits=tuple(SearchHit(**hit) for hit in record["results"]),
            total_count=int(record["total_count"]),
            latency_ms=float(record["latency_ms"]),
            mode=record["mode"],
            warning=record.get("warning"),
            freshness=tuple(RepositoryFreshness.from_dict(f) for f in record.get("freshness", ())),
        )


# --- symbol tools ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredChunk:
    """A chunk read back whole, with where it lives: what the symbol tools search in."""

    chunk_id: int
    repository_id: int
    repository: str
    path: str
    start_line: int
    end_line: int
    kind: str
    symbol: str | None
    language: str
    content: str


@dataclass(frozen=True)
class SymbolDefinition:
    """Where a symbol is defined: ``line`` is the defining line, ``content`` the code from there."""

    repository: str
    repository_id: int
    path: str
    line: int
    end_line: int
    symbol: str
    kind: str
    language: str
    content: str
    in_tests: bool


@dataclass(frozen=True)
class ReferenceLine:
    """One line of stored file text where an identifier occurs."""

    repository: str
    repository_id: int
    path: str
    line: int
    text: str
    definition: bool
