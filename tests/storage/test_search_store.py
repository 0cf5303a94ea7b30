"""Keyword term selection: rare terms kept, very common ones dropped, all-common queries intersected;
stemming on both sides of the index."""

from __future__ import annotations

from pathlib import Path

from codebase_mcp.embeddings.fake import FakeEmbeddingModel
from codebase_mcp.indexing.indexer import Indexer
from codebase_mcp.search.engine import SearchEngine
from codebase_mcp.settings import Settings
from codebase_mcp.storage.database import Database
from codebase_mcp.storage.search_store import ROW_BUDGET, TermStats, build_tsquery, lexemes, load_stats


def test_rare_terms_are_kept_and_common_ones_dropped() -> None:
    stats = TermStats(freqs={"self": 0.4, "return": 0.38, "matrix": 0.01, "py": 0.8}, rows=300_000)
    assert stats.estimate("decomposit") < ROW_BUDGET  # absent from the list: rarer than the rarest listed
    assert build_tsquery(["self", "decomposit", "py"], stats) == "'decomposit'"
    assert build_tsquery(["self", "return"], stats) == "'return' & 'self'"
    assert build_tsquery(["self", "return"], TermStats()) == "'self' | 'return'", "no statistics yet: all terms"
    small = TermStats(freqs={"self": 0.4, "matrix": 0.01}, rows=1000)
    assert build_tsquery(["self", "matrix"], small) == "'matrix' | 'self'", "a small index ranks every term"


async def test_stemming_and_statistics(db: Database, settings: Settings, tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    (repo / "ledger.py").write_text("def reconcile_records(ledger):\n    return sorted(ledger)\n")
    (repo / "other.py").write_text("def unrelated():\n    return 1\n")
    await Indexer(db, FakeEmbeddingModel(), settings).index(repo)
    async with db.connection() as conn:
        assert await lexemes(conn, ["reconciling", "the", "records"]) == ["reconcil", "record"]
        await conn.execute("ANALYZE chunks")
        await conn.commit()
        stats = await load_stats(conn)
    assert stats.rows >= 2 and stats.freqs.get("return", 0) > 0.5
    res = await SearchEngine(db, None).search("reconciling record", mode="keyword")
    assert res.hits and res.hits[0].path == "ledger.py"
