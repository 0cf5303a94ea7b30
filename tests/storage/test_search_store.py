"""BM25 keyword retrieval: statistics kept right under incremental indexing and deletion, rankings that
do not move with ANALYZE, inverse document frequency, the exact top under a row budget, filters and
SQL metacharacters on the keyword arm, stemming on both sides of the index."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any

import pytest

from codebase_mcp.core.analysis import query_lexemes
from codebase_mcp.domain import SearchFilters
from codebase_mcp.embeddings.fake import FakeEmbeddingModel
from codebase_mcp.indexing.indexer import Indexer
from codebase_mcp.search.engine import SearchEngine
from codebase_mcp.settings import Settings
from codebase_mcp.storage import index_store, retrieval, search_store
from codebase_mcp.storage.database import Database
from codebase_mcp.storage.retrieval import keyword_candidates
from codebase_mcp.storage.search_store import tsquery_any
from tests.conftest import StopAfter


async def _stats(db: Database, repo_name: str) -> tuple[dict[str, Any], dict[str, int]]:
    """Stored statistics of one repository, and those recomputed from its chunks."""
    async with db.connection() as conn:
        cur = await conn.execute("SELECT id FROM repositories WHERE name = %s", (repo_name,))
        row = await cur.fetchone()
        assert row is not None
        rid = row["id"]
        cur = await conn.execute("SELECT chunks, total_len FROM bm25_docs WHERE repository_id = %s", (rid,))
        docs = dict(await cur.fetchone() or {})
        cur = await conn.execute("SELECT lexeme, df FROM bm25_terms WHERE repository_id = %s", (rid,))
        terms = {r["lexeme"]: r["df"] for r in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT count(*) AS chunks, sum(doc_len) AS total_len FROM chunks WHERE repository_id = %s", (rid,)
        )
        fresh_docs = dict(await cur.fetchone() or {})
        cur = await conn.execute(
            "SELECT u.lexeme, count(*) AS df FROM chunks c, unnest(c.tsv) u WHERE c.repository_id = %s GROUP BY 1",
            (rid,),
        )
        fresh_terms = {r["lexeme"]: r["df"] for r in await cur.fetchall()}
        postings_sql = (
            "SELECT lexeme, chunk_id, tf, doc_len, impact FROM bm25_posting_rows WHERE repository_id = %s "
            "ORDER BY lexeme, chunk_id"
        )
        cur = await conn.execute(postings_sql, (rid,))
        postings = [tuple(r.values()) for r in await cur.fetchall()]
        cur = await conn.execute(
            "SELECT u.lexeme, c.id, cardinality(u.positions) AS tf, c.doc_len, "
            " bm25_impact(cardinality(u.positions), c.doc_len) AS impact "
            "FROM chunks c, unnest(c.tsv) u WHERE c.repository_id = %s ORDER BY 1, 2",
            (rid,),
        )
        fresh_postings = [tuple(r.values()) for r in await cur.fetchall()]
        # tsv and doc_len are written by the indexer (migration 0009): the same as computing them here
        cur = await conn.execute(
            "SELECT count(*) AS n FROM chunks WHERE repository_id = %s "
            "AND (tsv <> to_tsvector('english', search_text) OR doc_len <> tsvector_token_count(tsv))",
            (rid,),
        )
        assert (await cur.fetchone() or {})["n"] == 0
        cur = await conn.execute("SELECT count(*) AS n FROM bm25_bulk WHERE repository_id = %s", (rid,))
        assert (await cur.fetchone() or {})["n"] == 0
    assert docs == fresh_docs and terms == fresh_terms
    assert postings == fresh_postings and len(postings) == sum(terms.values())
    return docs, terms


async def test_statistics_follow_reindexing_and_deletion(db: Database, settings: Settings, tmp_path: Path) -> None:
    repo = tmp_path / "work"
    repo.mkdir()
    for i in range(6):
        (repo / f"mod{i}.py").write_text(f"def handler_{i}(request):\n    return parse_request(request, {i})\n")
    (repo / "ledger.py").write_text("def reconcile_records(ledger):\n    return sorted(ledger)\n")
    indexer = Indexer(db, FakeEmbeddingModel(), settings)
    await indexer.index(repo)
    first, _ = await _stats(db, "work")
    assert first["chunks"] == 7
    (repo / "ledger.py").write_text("def reconcile_accounts(book):\n    '''Balance every account.'''\n    return 0\n")
    (repo / "mod1.py").unlink()
    (repo / "mod2.py").unlink()
    await indexer.index(repo)
    docs, terms = await _stats(db, "work")
    assert docs["chunks"] == 5 and "record" not in terms and terms["account"] == 1
    # a full rebuild of the same tree, as another repository, has the same statistics
    rebuilt = tmp_path / "rebuilt" / "work"
    shutil.copytree(repo, rebuilt)
    await indexer.index(rebuilt, project_id="other")
    async with db.connection() as conn:
        await conn.execute("UPDATE repositories SET name = 'rebuilt' WHERE project_id = 'other'")
    assert await _stats(db, "rebuilt") == (docs, terms)
    # a deleted repository leaves nothing behind
    async with db.connection() as conn:
        await conn.execute("DELETE FROM repositories WHERE name = 'rebuilt'")
        cur = await conn.execute(
            "SELECT count(*) AS n FROM bm25_terms t "
            "WHERE NOT EXISTS (SELECT 1 FROM repositories r WHERE r.id = t.repository_id)"
        )
        assert (await cur.fetchone() or {})["n"] == 0
        cur = await conn.execute(
            "SELECT count(*) AS n FROM bm25_docs t "
            "WHERE NOT EXISTS (SELECT 1 FROM repositories r WHERE r.id = t.repository_id)"
        )
        assert (await cur.fetchone() or {})["n"] == 0
        cur = await conn.execute(
            "SELECT count(*) AS n FROM bm25_posting_rows p "
            "WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.id = p.chunk_id)"
        )
        assert (await cur.fetchone() or {})["n"] == 0


def _write_tree(repo: Path, files: int, seed: int = 0) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (repo / f"m{i}.py").write_text(
            f"def handler_{i}_{seed}(request):\n    return parse_request(request, {i * seed})\n\n"
            f"class Ledger{i % 7}:\n    def reconcile_{i % 5}(self, book):\n        return sorted(book)\n"
        )


async def test_bulk_loads_build_the_same_postings(
    db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that writes a large share of a repository skips per-statement postings and builds them in
    one pass at the end; the statistics are those of a rebuild, before and after smaller runs."""
    from codebase_mcp.indexing import indexer as indexer_module

    monkeypatch.setattr(indexer_module, "BULK_MIN_FILES", 10)
    repo = tmp_path / "bulk"
    _write_tree(repo, 30)
    indexer = Indexer(db, FakeEmbeddingModel(), settings)
    bulk_runs: list[int] = []
    real_begin = index_store.begin_bulk_postings

    async def counting_begin(conn: Any, repo_id: int) -> None:
        bulk_runs.append(repo_id)
        await real_begin(conn, repo_id)

    monkeypatch.setattr(index_store, "begin_bulk_postings", counting_begin)
    await indexer.index(repo)  # first index: bulk
    assert len(bulk_runs) == 1
    await _stats(db, "bulk")
    (repo / "m3.py").write_text("def settle_accounts(book):\n    return 0\n")
    (repo / "m4.py").unlink()
    await indexer.index(repo)  # two files: per statement
    assert len(bulk_runs) == 1
    _, terms = await _stats(db, "bulk")
    assert terms["settl"] == 1
    for i in range(12, 30):  # more than a third of the files: bulk again
        (repo / f"m{i}.py").unlink()
    _write_tree(repo / "pkg", 20, seed=3)
    await indexer.index(repo)
    assert len(bulk_runs) == 2
    await _stats(db, "bulk")
    await indexer.index(repo, force=True)
    assert len(bulk_runs) == 3
    await _stats(db, "bulk")


async def test_postings_blocks_follow_deletes_and_inserts(
    db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bulk load stores postings in blocks (migration 0014); later runs delete postings from their
    blocks (an emptied block goes) and add new ones to the delta. Every posting stays stored once, the
    blocks stay in read order under their keys, and reads cut to a small depth across blocks and delta
    give the scores and, when proven, the top of scoring every GIN candidate."""
    from codebase_mcp.indexing import indexer as indexer_module

    monkeypatch.setattr(indexer_module, "BULK_MIN_FILES", 10)
    monkeypatch.setattr(index_store, "POSTINGS_PER_BLOCK", 3)
    monkeypatch.setattr(indexer_module, "POSTINGS_BUILDERS", 3)  # three ranges of lexemes, built at once
    repo = tmp_path / "blocks"
    _write_tree(repo, 40)
    indexer = Indexer(db, FakeEmbeddingModel(), settings)
    await indexer.index(repo)
    async with db.connection() as conn:
        cur = await conn.execute("SELECT id FROM repositories WHERE name = 'blocks'")
        splits = await index_store.lexeme_splits(conn, (await cur.fetchone() or {})["id"], 3)
        assert len(splits) == 2 and splits == sorted(splits)
    block_rows = (
        "SELECT b.lexeme, b.last_impact, b.last_chunk, e.chunk_id, e.impact, bm25_impact(e.tf, e.doc_len) AS due "
        "FROM bm25_blocks b JOIN repositories r ON r.id = b.repository_id, "
        " unnest(b.chunk_ids, b.tfs, b.doc_lens, b.impacts) WITH ORDINALITY AS e(chunk_id, tf, doc_len, impact, n) "
        "WHERE r.name = 'blocks' ORDER BY b.lexeme, b.last_impact DESC, b.last_chunk, e.n"
    )
    async with db.connection() as conn:
        before = await (await conn.execute(block_rows)).fetchall()
        cur = await conn.execute("SELECT count(*) AS n FROM bm25_postings")
        assert (await cur.fetchone() or {})["n"] == 0  # all in blocks
        # a run that lost its job to one that built the postings finds the repository off the bulk
        # list, and drops nothing
        cur = await conn.execute("SELECT id FROM repositories WHERE name = 'blocks'")
        await index_store.drop_postings(conn, (await cur.fetchone() or {})["id"])
        assert len(await (await conn.execute(block_rows)).fetchall()) == len(before)
    for i in range(5):
        (repo / f"m{i}.py").unlink()
    for i in range(5, 9):
        (repo / f"m{i}.py").write_text(f"def handler_{i}(request):\n    return reconcile(request, ledger_{i})\n")
    (repo / "fresh.py").write_text("class Ledger2:\n    def reconcile_1(self, book):\n        return book\n")
    await indexer.index(repo)
    await _stats(db, "blocks")  # every posting stored once, in a block or the delta
    async with db.connection() as conn:
        after = await (await conn.execute(block_rows)).fetchall()
        cur = await conn.execute("SELECT count(*) AS n FROM bm25_postings")
        assert (await cur.fetchone() or {})["n"] > 0  # the new chunks' postings
        cur = await conn.execute("SELECT count(*) AS n FROM bm25_blocks WHERE cardinality(chunk_ids) = 0")
        assert (await cur.fetchone() or {})["n"] == 0
        keys_before = {(r["lexeme"], r["last_chunk"]) for r in before}
        keys_after = {(r["lexeme"], r["last_chunk"]) for r in after}
        assert keys_after < keys_before  # blocks emptied by the deletes are gone, none was added
        assert len(after) < len(before)
        for lexeme, rows in itertools.groupby(after, key=lambda r: r["lexeme"]):
            listed = list(rows)
            order = [(-r["impact"], r["chunk_id"]) for r in listed]
            assert order == sorted(order), lexeme
            assert all(r["impact"] == r["due"] for r in listed)
            assert all((-r["impact"], r["chunk_id"]) <= (-r["last_impact"], r["last_chunk"]) for r in listed)
        cur = await conn.execute("SELECT array_agg(id) AS ids FROM repositories WHERE name = 'blocks'")
        repos = (await cur.fetchone() or {})["ids"]
        monkeypatch.setattr(retrieval, "POSTINGS_DEPTH", 5)
        monkeypatch.setattr(retrieval, "MIN_DEPTH", 4)
        for terms in (["reconcile"], ["reconcile", "ledger", "book"], ["request", "parse"]):
            lexes = query_lexemes(terms)
            exact = await search_store.keyword_candidates_gin(conn, repos, SearchFilters(), lexes, 3)
            cut, cut_exact = await retrieval.keyword_search(conn, repos, SearchFilters(), lexes, 3)
            found = {c.chunk_id: round(c.score, 9) for c in exact}
            assert cut and all(found.get(c.chunk_id, round(c.score, 9)) == round(c.score, 9) for c in cut)
            if cut_exact:
                assert [c.chunk_id for c in cut] == [c.chunk_id for c in exact]


async def test_migration_0014_moves_the_postings_into_blocks(db: Database, settings: Settings, tmp_path: Path) -> None:
    """An index made before migration 0014 holds its postings one per row: the migration's statement
    moves them into blocks of 128, and keyword searches return the same chunks and scores."""
    from codebase_mcp.storage.migrate import available_migrations

    repo = tmp_path / "older"
    _write_tree(repo, 70)  # fewer files than a bulk load: every posting in bm25_postings
    await Indexer(db, FakeEmbeddingModel(), settings).index(repo)
    engine = SearchEngine(db, None)
    queries = ("reconcile ledger book", "handler request", "parse_request", "sorted")

    async def results() -> list[list[tuple[str, int, float]]]:
        found = [await engine.search(q, mode="keyword", limit=10) for q in queries]
        return [[(h.path, h.start_line, round(h.score, 9)) for h in r.hits] for r in found]

    before = await results()
    text = next(sql for version, _, sql in available_migrations() if version == 14)
    move = text[text.index("-- postings indexed before this migration") : text.index("-- reads (a lexeme's blocks")]
    async with db.connection() as conn:
        await conn.execute(move.encode())
        cur = await conn.execute("SELECT count(*) AS n FROM bm25_postings")
        assert (await cur.fetchone() or {})["n"] == 0
        cur = await conn.execute("SELECT max(cardinality(chunk_ids)) AS most, count(*) AS n FROM bm25_blocks")
        row = await cur.fetchone() or {}
        assert row["most"] == 128 and row["n"] > 0  # "return" is in more than 128 chunks
    await _stats(db, "older")
    assert await results() == before and all(before)


async def test_keyword_search_works_while_postings_are_built(
    db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run stopped in the middle of a bulk load leaves its files searchable (from the GIN candidates)
    and the next run builds the postings."""
    from codebase_mcp.errors import Cancelled
    from codebase_mcp.indexing import indexer as indexer_module

    monkeypatch.setattr(indexer_module, "BULK_MIN_FILES", 10)
    monkeypatch.setattr(settings, "store_batch_files", 10)
    repo = tmp_path / "halfway"
    _write_tree(repo, 40)
    (repo / "m0.py").write_text("def zephyr_window():\n    return 'zephyr'\n")
    indexer = Indexer(db, FakeEmbeddingModel(), settings)
    with pytest.raises(Cancelled):
        await indexer.index(repo, run=StopAfter(2))
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM bm25_posting_rows p JOIN repositories r ON r.id = p.repository_id "
            "WHERE r.name = 'halfway'"
        )
        assert (await cur.fetchone() or {})["n"] == 0
        cur = await conn.execute("SELECT count(*) AS n FROM bm25_bulk")
        assert (await cur.fetchone() or {})["n"] == 1
    engine = SearchEngine(db, None)
    during = await engine.search("zephyr window", mode="keyword", limit=5)
    assert during.hits and during.hits[0].path == "m0.py"
    during_common = await engine.search("reconcile ledger book", mode="keyword", limit=10)
    assert len(during_common.hits) == 10
    await indexer.index(repo)
    await _stats(db, "halfway")
    after = await engine.search("zephyr window", mode="keyword", limit=5)
    assert [(h.path, h.score) for h in after.hits][:1] == [(h.path, h.score) for h in during.hits][:1]


async def test_a_project_searches_loading_and_ready_repositories_together(
    db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one repository of a project is bulk-loaded (no postings yet), the others are still read
    from their postings, the loading one from its GIN candidates, and the merged top is the exact one."""
    from codebase_mcp.errors import Cancelled
    from codebase_mcp.indexing import indexer as indexer_module

    monkeypatch.setattr(indexer_module, "BULK_MIN_FILES", 10)
    monkeypatch.setattr(settings, "store_batch_files", 10)
    indexer = Indexer(db, FakeEmbeddingModel(), settings)
    _write_tree(tmp_path / "ready", 12, seed=1)
    (tmp_path / "ready" / "m0.py").write_text("def zephyr_window():\n    return 'zephyr'\n")
    await indexer.index(tmp_path / "ready")
    _write_tree(tmp_path / "loading", 40, seed=2)
    (tmp_path / "loading" / "m0.py").write_text("def quokka_window():\n    return 'quokka'\n")
    with pytest.raises(Cancelled):
        await indexer.index(tmp_path / "loading", run=StopAfter(2))
    postings_read: list[int] = []  # the chunks the postings statement scored
    gin_read: list[list[int]] = []  # the repositories whose GIN candidates were scored
    real_top, real_gin = retrieval._keyword_top, search_store.gin_top

    async def spying_top(conn: Any, postings: Any, by_arm: dict[str, list[dict[str, Any]]], *args: Any) -> Any:
        postings_read.extend(int(r["id"]) for r in by_arm.get("keyword", []))
        return await real_top(conn, postings, by_arm, *args)

    async def spying_gin(conn: Any, repo_ids: list[int], *args: Any, **kwargs: Any) -> Any:
        gin_read.append(list(repo_ids))
        return await real_gin(conn, repo_ids, *args, **kwargs)

    monkeypatch.setattr(retrieval, "_keyword_top", spying_top)
    monkeypatch.setattr(retrieval, "gin_top", spying_gin)
    async with db.connection() as conn:
        cur = await conn.execute("SELECT name, id FROM repositories")
        ids = {r["name"]: r["id"] for r in await cur.fetchall()}
        repos = [ids["ready"], ids["loading"]]
        cur = await conn.execute("SELECT id, repository_id FROM chunks")
        repo_of = {r["id"]: r["repository_id"] for r in await cur.fetchall()}
        for terms in (["zephyr", "quokka", "window"], ["reconcile", "book"], ["handler", "request"]):
            lexes = query_lexemes(terms)
            found, exact = await retrieval.keyword_search(conn, repos, SearchFilters(), lexes, 8)
            reference = await search_store.keyword_candidates_gin(conn, repos, SearchFilters(), lexes, 8)
            assert exact
            assert [(c.chunk_id, round(c.score, 9)) for c in found] == [
                (c.chunk_id, round(c.score, 9)) for c in reference
            ]
            if "quokka" in terms:
                assert {repo_of[c.chunk_id] for c in found[:2]} == set(repos)
    assert postings_read and {repo_of[c] for c in postings_read} == {ids["ready"]}
    assert gin_read and all(r == [ids["loading"]] for r in gin_read)
    # a loading repository's candidates are capped: a common word scores at most LOADING_MAX_ROWS chunks
    monkeypatch.setattr(retrieval, "LOADING_MAX_ROWS", 3)
    async with db.connection() as conn:
        lexes = query_lexemes(["reconcile"])
        capped, capped_exact = await retrieval.keyword_search(conn, [ids["loading"]], SearchFilters(), lexes, 8)
    assert not capped_exact and 0 < len(capped) <= 3


async def test_a_large_run_refreshes_the_planner_statistics_while_it_stores(
    db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repository that grows from nothing is analysed each time its stored chunks double, not only
    at the end: plans made from the empty table's statistics read all its rows."""
    from codebase_mcp.indexing import indexer as indexer_module

    monkeypatch.setattr(indexer_module, "ANALYZE_AFTER_CHUNKS", 20)
    monkeypatch.setattr(settings, "store_batch_files", 5)
    analysed_at: list[int] = []
    real_analyze = index_store.analyze_chunks

    async def counting(conn: Any, *, rows_only: bool = False) -> None:
        cur = await conn.execute("SELECT count(*) AS n FROM chunks")
        analysed_at.append((await cur.fetchone())["n"])
        await real_analyze(conn, rows_only=rows_only)

    monkeypatch.setattr(index_store, "analyze_chunks", counting)
    _write_tree(tmp_path / "grow", 60)
    await Indexer(db, FakeEmbeddingModel(), settings).index(tmp_path / "grow", embed=False)
    async with db.connection() as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM chunks")
        total = (await cur.fetchone() or {})["n"]
    assert analysed_at[-1] == total  # at the end
    during = analysed_at[:-1]
    assert len(during) >= 2 and during[0] >= 20 and during[0] < total
    assert all(b >= 2 * a for a, b in itertools.pairwise(during))  # each time the count doubled


async def test_ranking_does_not_move_with_analyze(db: Database, settings: Settings, polyglot: Path) -> None:
    await Indexer(db, FakeEmbeddingModel(), settings).index(polyglot)
    engine = SearchEngine(db, FakeEmbeddingModel())
    queries = ["compute total invoice", "session token", "rate limit requests", "checksum", "return value"]

    async def rankings() -> list[list[tuple[str, int, float]]]:
        out = []
        for q in queries:
            for mode in ("keyword", "hybrid"):
                res = await engine.search(q, mode=mode, limit=20)
                out.append([(h.path, h.start_line, h.score) for h in res.hits])
        return out

    before = await rankings()
    async with db.connection() as conn:
        await conn.execute("ANALYZE")
    assert await rankings() == before


async def test_rare_term_outranks_common_one(db: Database, settings: Settings, tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    for i in range(8):
        (repo / f"w{i}.py").write_text(f"def build_{i}():\n    widget = widget_factory(widget)\n    return widget\n")
    (repo / "z.py").write_text("def other():\n    zephyr = 1\n    return zephyr + 2\n")
    await Indexer(db, FakeEmbeddingModel(), settings).index(repo)
    res = await SearchEngine(db, None).search("widget zephyr", mode="keyword")
    assert res.hits[0].path == "z.py"


async def test_exact_top_under_a_small_row_budget(
    db: Database, settings: Settings, polyglot: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await Indexer(db, FakeEmbeddingModel(), settings).index(polyglot)
    async with db.connection() as conn:
        cur = await conn.execute("SELECT array_agg(id) AS ids FROM repositories")
        repos = (await cur.fetchone() or {})["ids"]
        lexes = query_lexemes(["return", "total", "invoice", "session", "self", "token"])
        full = await keyword_candidates(conn, repos, SearchFilters(), lexes, 5)
        monkeypatch.setattr(search_store, "ROW_BUDGET", 1)
        budgeted = await keyword_candidates(conn, repos, SearchFilters(), lexes, 5)
    assert [(c.chunk_id, round(c.score, 9)) for c in budgeted] == [(c.chunk_id, round(c.score, 9)) for c in full]
    assert full and all(a.score >= b.score for a, b in itertools.pairwise(full))


async def test_postings_read_to_a_depth_match_the_exact_top(
    db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading each lexeme's postings only to a small depth (its best impacts) gives the exact top when
    the search says so, and the same scores as scoring every GIN candidate."""
    repo = tmp_path / "r"
    repo.mkdir()
    for i in range(40):
        words = " ".join(["value"] * (1 + i % 5) + ["parse"] * (i % 3) + ["token"] * (i % 7 == 0))
        (repo / f"m{i}.py").write_text(f"def fn_{i}(value):\n    # {words}\n    return value + {i}\n")
    for i in range(2):  # far above the rest for "value" and "parse"
        (repo / f"hot{i}.py").write_text(f"def hot_{i}(value):\n    # {'value parse ' * 30}\n    return value\n")
    await Indexer(db, FakeEmbeddingModel(), settings).index(repo)
    async with db.connection() as conn:
        cur = await conn.execute("SELECT array_agg(id) AS ids FROM repositories")
        repos = (await cur.fetchone() or {})["ids"]
        proven = 0
        queries: list[list[str]] = [["value"], ["value", "parse"], ["parse", "token", "return"]]
        for terms in queries:
            lexes = query_lexemes(terms)
            exact = await search_store.keyword_candidates_gin(conn, repos, SearchFilters(), lexes, 5)
            full, full_exact = await retrieval.keyword_search(conn, repos, SearchFilters(), lexes, 5)
            assert full_exact
            assert [(c.chunk_id, round(c.score, 9)) for c in full] == [(c.chunk_id, round(c.score, 9)) for c in exact]
            monkeypatch.setattr(retrieval, "POSTINGS_DEPTH", 6)
            monkeypatch.setattr(retrieval, "MIN_DEPTH", 3)
            cut, cut_exact = await retrieval.keyword_search(conn, repos, SearchFilters(), lexes, 2)
            proven += cut_exact
            monkeypatch.undo()
            found = {c.chunk_id: round(c.score, 9) for c in exact}
            assert all(found.get(c.chunk_id, round(c.score, 9)) == round(c.score, 9) for c in cut)
            if cut_exact:
                assert [c.chunk_id for c in cut] == [c.chunk_id for c in exact[:2]]
        assert proven  # the lists were cut, and the bound still proved the top
        # a filter that leaves too few chunks among the postings read falls back to every candidate
        monkeypatch.setattr(retrieval, "POSTINGS_DEPTH", 2)
        monkeypatch.setattr(retrieval, "MIN_DEPTH", 2)
        lexes = query_lexemes(["value"])
        glob = SearchFilters(path_glob="m3*.py")
        narrow, _ = await retrieval.keyword_search(conn, repos, glob, lexes, 5)
        assert len(narrow) == 5 and all(c.path.startswith("m3") for c in narrow)


async def test_keyword_arm_filters_and_literals(db: Database, settings: Settings, polyglot: Path) -> None:
    await Indexer(db, FakeEmbeddingModel(), settings).index(polyglot)
    engine = SearchEngine(db, None)
    by_lang = await engine.search("session", mode="keyword", filters=SearchFilters(language="javascript"))
    assert by_lang.hits and {h.language for h in by_lang.hits} == {"javascript"}
    by_dir = await engine.search("invoice", mode="keyword", filters=SearchFilters(path_prefix="src/"))
    assert by_dir.hits and all(h.path.startswith("src/") for h in by_dir.hits)
    by_glob = await engine.search("invoice total", mode="keyword", filters=SearchFilters(path_glob="**/*.md"))
    assert by_glob.hits and all(h.path.endswith(".md") for h in by_glob.hits)
    for hostile in ("' OR '1'='1", "a & b | !c", "x:* <-> y", "\\'", "; DROP TABLE chunks; --"):
        await engine.search(hostile, mode="keyword")  # no syntax error
    assert tsquery_any(["it's", "a\\b"]) == "'it''s' | 'a\\\\b'"
    assert (await engine.search("invoice", mode="keyword")).hits  # tables intact


async def test_stemming(db: Database, settings: Settings, tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    (repo / "ledger.py").write_text("def reconcile_records(ledger):\n    return sorted(ledger)\n")
    (repo / "other.py").write_text("def unrelated():\n    return 1\n")
    await Indexer(db, FakeEmbeddingModel(), settings).index(repo)
    assert query_lexemes(["reconciling", "the", "records"]) == ["reconcil", "record"]
    res = await SearchEngine(db, None).search("reconciling record", mode="keyword")
    assert res.hits and res.hits[0].path == "ledger.py"
