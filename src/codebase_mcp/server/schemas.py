"""What the tools return (their published output schemas) and the compact text an agent reads.

Search-like tools answer with structured content (the data) and a text rendering for the model: one
header line per hit (``path:start-end  symbol (kind)``) and a trimmed snippet, never a second copy of
the JSON. Both stay under a character budget."""

from __future__ import annotations

from typing import Any, Literal, NotRequired

from typing_extensions import TypedDict

Detail = Literal["locations", "snippets", "full"]


class JobRecord(TypedDict):
    job_id: str
    id: str
    kind: str
    project_id: str
    repo_path: str
    status: str
    phase: str
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
    coverage_percent: float | None
    attempt: int
    worker_id: str | None
    heartbeat_at: str | None
    cancel_requested: bool
    created_at: str
    started_at: str | None
    completed_at: str | None
    updated_at: str


class StartedJob(TypedDict):
    job_id: str
    status: str
    project_id: str
    message: str


class JobList(TypedDict):
    jobs: list[JobRecord]


class RepositoryRecord(TypedDict):
    id: int
    project_id: str
    name: str
    root_path: str
    last_indexed_at: str | None
    watch: bool
    files: int
    chunks: int
    embedded: int
    keyword_only: int
    coverage_percent: float | None
    skipped: int


class RepositoryList(TypedDict):
    repositories: list[RepositoryRecord]


class Forgotten(TypedDict):
    forgotten: str
    repository_id: int


class WorkingDirectory(TypedDict):
    project_id: str
    config: str | None


class Hit(TypedDict):
    repository: str
    repository_id: int
    path: str
    start_line: int
    end_line: int
    symbol: str | None
    kind: str
    language: str
    score: float
    content: NotRequired[str]  # snippets: the trimmed lines; full: the whole chunk
    snippet_start_line: NotRequired[int]
    snippet_end_line: NotRequired[int]
    truncated: NotRequired[bool]
    context_before: NotRequired[str]
    context_after: NotRequired[str]
    # asked for (``explain``): each arm's rank and raw and normalised score, the fused score and the
    # ranking stage's factors (search/ranking.py)
    explain: NotRequired[dict[str, float]]


# a searched repository's index: when it was last synced, and whether it may be behind its files (a file
# change seen and not stored yet, or an active indexing job: ``why`` says which); given for the
# repositories that may be behind, that produced a result, or that the call named (search/freshness.py)
class Freshness(TypedDict):
    repository: str
    repository_id: int
    synced_at: str | None
    pending: bool
    why: NotRequired[str]


class SearchResult(TypedDict):
    results: list[Hit]
    total_count: int
    latency_ms: float
    project_id: str
    detail: Detail
    notice: str
    message: NotRequired[str]  # why nothing was found, and what to do
    warning: NotRequired[str]
    freshness: NotRequired[list[Freshness]]


class Definition(TypedDict):
    repository: str
    repository_id: int
    path: str
    line: int
    end_line: int
    symbol: str
    kind: str
    language: str
    in_tests: bool
    content: NotRequired[str]
    truncated: NotRequired[bool]


class SymbolResult(TypedDict):
    definitions: list[Definition]
    latency_ms: float
    project_id: str
    detail: Detail
    notice: str
    message: NotRequired[str]
    freshness: NotRequired[list[Freshness]]


class ReferenceFile(TypedDict):
    repository: str
    path: str
    lines: list[int]
    text: list[str]
    definition_lines: list[int]


class ReferenceResult(TypedDict):
    files: list[ReferenceFile]
    total_count: int
    shown: int
    latency_ms: float
    project_id: str
    notice: str
    message: NotRequired[str]
    freshness: NotRequired[list[Freshness]]


# --- published schemas ------------------------------------------------------------------------------


def lean_schema(schema: dict[str, Any], *, nullable: bool) -> dict[str, Any]:
    """A pydantic JSON schema as an agent reads it, with the same meaning for what it accepts: no
    ``title`` (a repeat of the field's name), and ``anyOf: [X, {"type": "null"}]`` written shortly —
    as ``type: [X, "null"]`` (``nullable``: output schemas, whose values may be null), or as X alone
    for an argument whose omission means the same as null (the server still accepts an explicit null:
    its argument models, not this schema, validate calls)."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title":
            continue
        if key in ("properties", "$defs"):
            out[key] = {name: lean_schema(sub, nullable=nullable) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = lean_schema(value, nullable=nullable)
        elif key in ("anyOf", "oneOf", "allOf"):
            out[key] = [lean_schema(sub, nullable=nullable) for sub in value]
        else:
            out[key] = value
    options = out.get("anyOf")
    if options and len(options) == 2 and {"type": "null"} in options:
        other = options[0] if options[1] == {"type": "null"} else options[1]
        if isinstance(other.get("type"), str) and not set(other) & set(out):
            del out["anyOf"]
            if nullable:
                out |= {**other, "type": [other["type"], "null"]}
            else:
                if out.get("default", ...) is None:
                    del out["default"]
                out |= other
    return out
