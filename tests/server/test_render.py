"""The text an agent reads says in one line when the index may be behind the files, and nothing when it
is fresh (issue 22, item 3)."""

from __future__ import annotations

from datetime import UTC, datetime

from mcp_types import TextContent

from codebase_mcp.core import untrusted
from codebase_mcp.domain import ReferenceLine, RepositoryFreshness, SearchHit, SearchResponse, SymbolDefinition
from codebase_mcp.search.freshness import reported, stale_note
from codebase_mcp.server import render
from codebase_mcp.server.schemas import Freshness, ReferenceResult, SearchResult, SymbolResult

SYNCED = datetime(2026, 12, 4, 10, 0, 0, 123456, tzinfo=UTC)
FRESH = RepositoryFreshness.read(1, "payments", SYNCED, None, None)
EDITED = RepositoryFreshness.read(1, "payments", SYNCED, 3.2, None)
REINDEXING = RepositoryFreshness.read(2, "billing", SYNCED, 2.0, "running")
QUEUED = RepositoryFreshness.read(3, "ledger", None, None, "pending")
HIT = SearchHit(
    "payments", 1, "src/pay.py", 1, 2, "charge", "function", "python", 1.0, "def charge():\n    pass", False, "", ""
)


def text(result: object) -> str:
    content = result.content[0]  # type: ignore[attr-defined]
    assert isinstance(content, TextContent)
    return content.text


def search_text(freshness: tuple[RepositoryFreshness, ...]) -> tuple[str, SearchResult]:
    response = SearchResponse("charge", (HIT,), 1, 5.0, "hybrid", None, freshness)
    base: SearchResult = {
        "results": [],
        "total_count": 1,
        "latency_ms": 5.0,
        "project_id": "default",
        "detail": "snippets",
        "notice": untrusted.NOTICE,
    }
    if freshness:
        base["freshness"] = [Freshness(**f.to_dict()) for f in freshness]  # type: ignore[typeddict-item]
    result = render.search(base, response, "snippets")
    assert result.structured_content is not None
    structured: SearchResult = result.structured_content
    return text(result), structured


def test_why_says_what_is_pending() -> None:
    assert FRESH.why is None and not FRESH.pending
    assert EDITED.why == "files changed 3 s ago" and EDITED.pending
    assert REINDEXING.why == "files changed 2 s ago; indexing job running"
    assert QUEUED.why == "indexing job queued"
    assert RepositoryFreshness.read(4, "x", None, 600.0, None).why == "files changed 10 min ago"
    assert FRESH.to_dict() == {
        "repository": "payments",
        "repository_id": 1,
        "synced_at": "2026-12-04T10:00:00+00:00",
        "pending": False,
    }
    assert EDITED.to_dict()["why"] == "files changed 3 s ago"


def test_a_result_reports_repositories_behind_with_hits_or_asked_for() -> None:
    quiet = RepositoryFreshness.read(9, "docs", SYNCED, None, None)
    scope = [FRESH, REINDEXING, quiet]
    # billing may be behind: reported though it produced no hit (a new name finds nothing there yet)
    assert reported(scope, [1], asked=False) == (FRESH, REINDEXING)
    assert reported([quiet], [], asked=False) == ()
    assert reported([quiet], [], asked=True) == (quiet,)


def test_one_line_when_the_index_may_be_behind() -> None:
    out, structured = search_text((EDITED,))
    notes = [line for line in out.splitlines() if line.startswith("note:")]
    assert notes == ["note: changes not yet indexed in payments (files changed 3 s ago): results may be stale."]
    assert out.splitlines()[1] == notes[0], "said right under the header"
    assert structured["freshness"][0]["pending"] is True

    out, _ = search_text((EDITED, REINDEXING, QUEUED))
    notes = [line for line in out.splitlines() if line.startswith("note:")]
    assert notes == [
        "note: changes not yet indexed in payments (files changed 3 s ago), billing (files changed 2 s ago; "
        "indexing job running), ledger (indexing job queued): results may be stale."
    ]


def test_nothing_when_fresh() -> None:
    for freshness in ((FRESH,), ()):
        out, _ = search_text(freshness)
        assert "note:" not in out and "stale" not in out and "not yet indexed" not in out
    assert stale_note([FRESH]) is None


def test_symbol_and_reference_texts_say_it_too() -> None:
    definition = SymbolDefinition(
        "billing", 2, "b.py", 1, 2, "charge", "function", "python", "def charge(): ...", False
    )
    sym: SymbolResult = {
        "definitions": [],
        "latency_ms": 1.0,
        "project_id": "default",
        "detail": "snippets",
        "notice": untrusted.NOTICE,
        "freshness": [Freshness(**REINDEXING.to_dict())],  # type: ignore[typeddict-item]
    }
    assert "note: changes not yet indexed in billing" in text(render.symbols(sym, [definition], "charge", "snippets"))
    refs: ReferenceResult = {
        "files": [],
        "total_count": 1,
        "shown": 0,
        "latency_ms": 1.0,
        "project_id": "default",
        "notice": untrusted.NOTICE,
        "freshness": [Freshness(**FRESH.to_dict())],  # type: ignore[typeddict-item]
    }
    line = ReferenceLine("payments", 1, "a.py", 1, "charge()", False)
    assert "note:" not in text(render.references(refs, [line], "charge"))
