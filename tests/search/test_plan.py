"""A search is one plan (search/engine.py): at most three database round trips for a hybrid search
with everything the ranking stage reads, and ``explain`` shows what placed each hit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from codebase_mcp.embeddings.fake import FakeEmbeddingModel
from codebase_mcp.indexing.indexer import Indexer
from codebase_mcp.search.engine import SearchEngine
from codebase_mcp.search.query import analyse
from codebase_mcp.settings import Settings
from codebase_mcp.storage.database import Database
from codebase_mcp.storage.search_store import impact_bound


@pytest.fixture
async def engine(db: Database, settings: Settings, fake_model: FakeEmbeddingModel, polyglot: Path) -> SearchEngine:
    await Indexer(db, fake_model, settings).index(polyglot)
    return SearchEngine(db, fake_model)


class _Counter:
    def __init__(self) -> None:
        self.statements: list[str] = []


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> _Counter:
    """Every statement sent to the server through psycopg's async cursors (one round trip each)."""
    counter = _Counter()
    real = psycopg.AsyncCursor.execute

    async def counting(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        counter.statements.append(query.as_string(self) if hasattr(query, "as_string") else str(query))
        return await real(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", counting)
    return counter


@pytest.mark.parametrize(
    ("query", "mode"),
    [
        ("where is parse_header called", "hybrid"),  # a name inside a question: definitions and texts
        ("TokenBucket", "hybrid"),
        ("compute the invoice total", "hybrid"),
        ("compute the invoice total", "keyword"),
    ],
)
async def test_a_search_takes_at_most_three_round_trips(
    engine: SearchEngine, statements: _Counter, query: str, mode: str
) -> None:
    await engine.search(query, mode=mode)  # type: ignore[arg-type]  # new words have their stems checked
    statements.statements.clear()
    result = await engine.search(query, mode=mode)  # type: ignore[arg-type]
    assert result.hits
    assert len(statements.statements) <= 3, [s[:80] for s in statements.statements]
    # the context, the keyword arm and the definitions in the first; the vectors in their own, sent as
    # soon as the query is embedded (on a second connection: the two run side by side)
    first = [s for s in statements.statements if "cx_facts" in s]
    assert len(first) == 1 and "dn_near" not in first[0] and "kw_top" in first[0]
    assert sum("dn_near" in s for s in statements.statements) == (mode != "keyword")


async def test_explain_shows_each_arm_and_factor(engine: SearchEngine) -> None:
    plain = await engine.search("TokenBucket Allow")
    assert all(h.explain is None for h in plain.hits)
    explained = await engine.search("TokenBucket Allow", explain=True)
    assert [h.path for h in explained.hits] == [h.path for h in plain.hits]
    first = explained.hits[0].explain
    assert first is not None and first["definition"] == 1.0  # the query spells its qualified name
    assert {"keyword", "dense", "fused", "prior"} <= set(first)
    assert first["keyword_rank"] >= 1 and 0.0 <= first["keyword"] <= 1.0
    dense_only = await engine.search("TokenBucket Allow", mode="dense", explain=True)
    assert all("keyword" not in (h.explain or {}) for h in dense_only.hits)


def test_the_query_is_analysed_once_into_what_every_stage_reads() -> None:
    q = analyse("where is parseHeader called?")
    assert q.kind == "natural" and q.question and q.names == (("parseHeader", 0.5),)
    assert q.tails == ["parseheader"] and "header" in q.tokens and "pars" in q.lexemes
    assert analyse("TokenBucket Allow").qualified == "tokenbucket.allow"
    ident = analyse("Foo::Bar()")
    assert ident.kind == "identifier" and ident.names == (("Bar", 1.0),) and not ident.words


async def test_bm25_is_one_function_and_the_python_bound_holds_against_it(db: Database) -> None:
    """``bm25()`` (migration 0012) scores both keyword paths; ``bm25_impact()`` is its tf part at the
    reference length; ``impact_bound`` never underestimates what an unread posting could add."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT tf, dl, a.avgdl, bm25(1, tf, dl, a.avgdl) AS part, bm25_impact(tf, dl) AS impact, "
            " bm25(1, tf, dl, 100)::real AS at_reference "
            "FROM generate_series(1, 12) tf, generate_series(1, 400, 7) dl, "
            " unnest(ARRAY[20.0, 64.5, 100.0, 180.0]::float8[]) AS a(avgdl)"
        )
        rows = await cur.fetchall()
    assert len(rows) > 2000
    for r in rows:
        assert r["impact"] == r["at_reference"]
        # a posting whose impact is at most this one's cannot score more than the bound
        assert r["part"] <= impact_bound(r["impact"], r["avgdl"]) * (1 + 1e-6) + 1e-9
    tight = [r for r in rows if r["tf"] == 1 and r["avgdl"] < 100]
    assert all(abs(impact_bound(r["impact"], r["avgdl"]) - r["part"]) < 1e-5 for r in tight)


async def test_a_remembered_model_id_gone_stale_is_read_again(engine: SearchEngine, statements: _Counter) -> None:
    """The dense statement is sent with the model id remembered from an earlier search; when the
    context reads another one (the database was recreated under a running process), it runs again."""
    fresh = await engine.search("compute the invoice total", mode="dense")
    assert engine.model is not None and fresh.hits
    right = engine._model_ids[engine.model.name]
    engine._model_ids[engine.model.name] = right + 1000
    statements.statements.clear()
    again = await engine.search("compute the invoice total", mode="dense")
    assert [h.path for h in again.hits] == [h.path for h in fresh.hits]
    assert engine._model_ids[engine.model.name] == right
    assert sum("dn_near" in s for s in statements.statements) == 2


async def test_a_failed_dense_statement_forgets_the_remembered_id(
    engine: SearchEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await engine.search("compute the invoice total")
    assert engine.model is not None and engine.model.name in engine._model_ids

    async def failing(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the vectors' statement failed")

    with monkeypatch.context() as patched:
        patched.setattr(engine, "_near", failing)
        with pytest.raises(RuntimeError, match="vectors' statement failed"):
            await engine.search("compute the invoice total")
    assert engine.model.name not in engine._model_ids  # read again by the next search
    assert (await engine.search("compute the invoice total")).hits
    assert engine.model.name in engine._model_ids


async def test_the_blocks_nulls_are_typed(db: Database) -> None:
    """UNION ALL resolves column types two inputs at a time: a block's NULLs carry their column's type,
    so the statement does not depend on the blocks' order."""
    from codebase_mcp.storage.retrieval import COLUMN_NAMES, select_row

    async with db.connection() as conn:
        text = select_row("x", "t").as_string(conn)
    assert text.count("NULL::") == len(COLUMN_NAMES) - 1
    assert "NULL::bigint" in text and "NULL::json" in text and "NULL," not in text
