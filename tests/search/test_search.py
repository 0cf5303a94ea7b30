from __future__ import annotations

from pathlib import Path

import pytest

from codebase_mcp.core.languages import DEFINITION_KINDS
from codebase_mcp.domain import SearchFilters, SearchMode
from codebase_mcp.embeddings.fake import FakeEmbeddingModel
from codebase_mcp.errors import InvalidInput, NotFound
from codebase_mcp.indexing.indexer import Indexer
from codebase_mcp.search.engine import PARTIAL_COVERAGE, SearchEngine
from codebase_mcp.settings import Settings
from codebase_mcp.storage import index_store, repo_store
from codebase_mcp.storage.database import Database
from codebase_mcp.storage.search_store import glob_to_regex


@pytest.fixture
async def engine(db: Database, settings: Settings, fake_model: FakeEmbeddingModel, polyglot: Path) -> SearchEngine:
    await Indexer(db, fake_model, settings).index(polyglot)
    return SearchEngine(db, fake_model)


async def test_identifier_query_finds_the_definition_first(engine: SearchEngine) -> None:
    result = await engine.search("createSessionToken")
    top = result.hits[0]
    assert (top.path, top.symbol, top.kind) == ("web/session.js", "createSessionToken", "function")
    assert top.start_line == 3 and top.end_line == 6
    assert "randomBytes" in top.content
    assert "randomBytes" in top.context_before  # context comes from the stored text
    assert result.total_count >= len(result.hits)


async def test_natural_language_query(engine: SearchEngine) -> None:
    result = await engine.search("rate limit requests token bucket", limit=3)
    assert result.hits[0].path == "native/ratelimit.go"


async def test_implementation_ranks_above_tests_unless_asked(engine: SearchEngine) -> None:
    plain = await engine.search("compute total invoice", limit=5)
    assert plain.hits[0].path == "src/billing.py"
    paths = [h.path for h in plain.hits]
    if "tests/test_billing.py" in paths:
        assert paths.index("tests/test_billing.py") > paths.index("src/billing.py")
    asked = await engine.search("test compute total", limit=5)
    assert asked.hits[0].path == "tests/test_billing.py"


async def test_modes_all_answer(engine: SearchEngine) -> None:
    for mode in ("keyword", "dense", "hybrid"):
        result = await engine.search("adler32 checksum", mode=mode, limit=3)
        assert result.hits and result.hits[0].path == "native/checksum.rs", mode


async def test_filters(engine: SearchEngine) -> None:
    by_lang = await engine.search("session", filters=SearchFilters(language="javascript"))
    assert by_lang.hits and {h.language for h in by_lang.hits} == {"javascript"}
    by_ext = await engine.search("route", filters=SearchFilters(file_type=".ts"))
    assert by_ext.hits and all(h.path.endswith(".ts") for h in by_ext.hits)
    by_dir = await engine.search("invoice", filters=SearchFilters(path_prefix="src/"))
    assert by_dir.hits and all(h.path.startswith("src/") for h in by_dir.hits)
    by_glob = await engine.search("invoice total", filters=SearchFilters(path_glob="**/*.md"))
    assert by_glob.hits and all(h.path.endswith(".md") for h in by_glob.hits)
    by_repo = await engine.search("invoice", filters=SearchFilters(repository="polyglot"))
    assert by_repo.hits


async def test_metacharacters_are_literal(engine: SearchEngine, db: Database) -> None:
    for hostile in ("' OR '1'='1", "%", "_", "\\", "; DROP TABLE chunks; --"):
        result = await engine.search(hostile, filters=SearchFilters(path_prefix=hostile, file_type=hostile))
        assert result.hits == ()
        with pytest.raises(InvalidInput, match=r"Languages present: .*python"):  # not a language indexed here
            await engine.search(hostile, filters=SearchFilters(language=hostile))
    assert (await engine.search("invoice")).hits  # tables intact


async def test_projects_are_isolated(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, polyglot: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "secret_algo.py").write_text("def quantum_flux_capacitor():\n    return 42\n")
    indexer = Indexer(db, fake_model, settings)
    await indexer.index(polyglot, project_id="alpha")
    await indexer.index(other, project_id="beta")
    engine = SearchEngine(db, fake_model)
    alpha = await engine.search("quantum flux capacitor", project_id="alpha")
    assert all(h.repository == "polyglot" for h in alpha.hits)
    beta = await engine.search("quantum flux capacitor", project_id="beta")
    assert beta.hits[0].symbol == "quantum_flux_capacitor"
    assert all(h.repository == "other" for h in beta.hits)
    with pytest.raises(NotFound):
        await engine.search("x", project_id="gamma")


async def test_deleted_files_are_never_returned(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, polyglot: Path
) -> None:
    indexer = Indexer(db, fake_model, settings)
    await indexer.index(polyglot)
    engine = SearchEngine(db, fake_model)
    assert any(h.path == "native/inventory.lua" for h in (await engine.search("count inventory")).hits)
    (polyglot / "native" / "inventory.lua").unlink()
    await indexer.index(polyglot)
    assert all(h.path != "native/inventory.lua" for h in (await engine.search("count inventory")).hits)


@pytest.mark.parametrize("query", ["", "   ", "x" * 2001, "a\x00b"])
async def test_bad_queries(engine: SearchEngine, query: str) -> None:
    with pytest.raises(InvalidInput):
        await engine.search(query)


@pytest.mark.parametrize("limit", [0, -1, 51, 10**9])
async def test_bad_limits(engine: SearchEngine, limit: int) -> None:
    with pytest.raises(InvalidInput, match="limit"):
        await engine.search("invoice", limit=limit)


def test_glob_to_regex() -> None:
    import re

    rx = re.compile(glob_to_regex("src/**/*.py"))
    assert rx.match("src/a.py") and rx.match("src/x/y/a.py") and not rx.match("lib/a.py")
    assert re.compile(glob_to_regex("*.py")).match("a.py") and not re.compile(glob_to_regex("*.py")).match("d/a.py")
    assert re.compile(glob_to_regex("a+b(c).txt")).match("a+b(c).txt")


DEFINITIONS = [  # one symbol query per language of the fixture -> the file defining it
    ("format_currency", "src/billing.py"),
    ("InvoiceCalculator", "src/billing.py"),
    ("createSessionToken", "web/session.js"),
    ("matchRoute", "web/router.ts"),
    ("PrimaryButton", "web/Button.tsx"),
    ("TokenBucket.Allow", "native/ratelimit.go"),
    ("adler32", "native/checksum.rs"),
    ("slugify", "native/slugify.rb"),
    ("count_inventory", "native/inventory.lua"),
    ("reverse_string", "native/strutil.c"),
    ("LinkedQueue", "native/LinkedQueue.java"),
    ("SendWelcomeEmail", "native/Mailer.cs"),
    ("circleArea", "native/Geometry.kt"),
    ("medianOf", "native/Stats.scala"),
    ("applyDiscountCode", "native/cart.php"),
    ("toFahrenheit", "native/Temperature.swift"),
    ("deploy_release", "native/deploy.sh"),
]


@pytest.mark.parametrize("mode", ["hybrid", "keyword"])
async def test_symbol_query_returns_the_definition_first_in_every_language(
    engine: SearchEngine, mode: SearchMode
) -> None:
    for query, path in DEFINITIONS:
        result = await engine.search(query, limit=5, mode=mode)
        top = result.hits[0]
        name = query.rsplit(".", 1)[-1]
        assert top.path == path, (query, [(h.path, h.symbol) for h in result.hits])
        assert name in top.content, (query, top.symbol)  # the defining chunk (a small file can be one chunk)


async def test_natural_language_words_in_a_file_name_find_that_file(engine: SearchEngine) -> None:
    for query, path in [
        ("linked queue", "native/LinkedQueue.java"),
        ("temperature conversion", "native/Temperature.swift"),
        ("shopping cart", "native/cart.php"),
        ("mailer", "native/Mailer.cs"),
    ]:
        result = await engine.search(query, limit=3)
        assert result.hits and result.hits[0].path == path, (query, [h.path for h in result.hits])


async def test_semantic_coverage_arrives_definitions_first_and_search_says_when_partial(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, polyglot: Path
) -> None:
    """Chunks are embedded in priority order (definitions in non-test code, other code, tests), and a
    hybrid search over an index whose vectors are not all there yet says so; keyword search does not."""
    indexer = Indexer(db, fake_model, settings)
    await indexer.index(polyglot, embed=False)
    engine = SearchEngine(db, fake_model)
    partial = await engine.search("compute total invoice")
    assert partial.warning == PARTIAL_COVERAGE and partial.hits
    assert (await engine.search("compute total invoice", mode="keyword")).warning is None

    async with db.connection() as conn:
        repo_id = (await repo_store.repository_ids(conn, "default"))[0]
        queue = await index_store.unembedded_batch(conn, repo_id, 10_000)
        cur = await conn.execute(
            "SELECT c.id, c.kind, c.embed_priority, f.path FROM chunks c JOIN files f ON f.id = c.file_id"
        )
        rows = {r["id"]: r for r in await cur.fetchall()}
    priorities = [rows[c.chunk_id]["embed_priority"] for c in queue]
    assert priorities == sorted(priorities) and priorities[0] == 0 and priorities[-1] == 2
    for row in rows.values():
        expected = 2 if row["path"].startswith("tests/") else 0 if row["kind"] in DEFINITION_KINDS else 1
        assert row["embed_priority"] == expected, row

    await indexer.index(polyglot)  # embeds what is missing
    assert (await engine.search("compute total invoice")).warning is None
