"""Keyword-only files: translation catalogues and data files are searchable by keyword and never
embedded, unless the repository's ``.codebase-mcp/config.json`` says otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codebase_mcp.domain import KEYWORD_ONLY, SearchFilters
from codebase_mcp.embeddings.fake import FakeEmbeddingModel
from codebase_mcp.errors import InvalidInput
from codebase_mcp.indexing.embed_policy import DEFAULT_KEYWORD_ONLY, EmbedPolicy
from codebase_mcp.indexing.indexer import Indexer
from codebase_mcp.search.engine import SearchEngine
from codebase_mcp.settings import Settings
from codebase_mcp.storage import repo_store
from codebase_mcp.storage.database import Database

CATALOGUE = 'msgid "Enter a valid postcode"\nmsgstr "Saisissez un code postal valide"\n'


def test_catalogues_and_data_files_are_keyword_only_by_default(tmp_path: Path) -> None:
    policy = EmbedPolicy.of(tmp_path)
    assert policy.patterns == DEFAULT_KEYWORD_ONLY
    for path in ("locale/fr/LC_MESSAGES/django.po", "fixtures/users.json", "data/cities.csv", "logo.svg"):
        assert policy.keyword_only(path), path
    for path in ("src/app.py", "web/router.ts", "docs/guide.md", "json_utils.py", "schema.json.py"):
        assert not policy.keyword_only(path), path


def test_a_repository_sets_its_own_list(tmp_path: Path) -> None:
    (tmp_path / ".codebase-mcp").mkdir()
    config = tmp_path / ".codebase-mcp" / "config.json"
    config.write_text(json.dumps({"project_id": "p", "keyword_only": ["generated/**", "*.sql"]}))
    policy = EmbedPolicy.of(tmp_path)
    assert policy.keyword_only("generated/api/client.ts") and policy.keyword_only("db/schema.sql")
    assert not policy.keyword_only("locale/fr.po"), "the list replaces the default one"
    config.write_text(json.dumps({"keyword_only": []}))
    assert not EmbedPolicy.of(tmp_path).keyword_only("fixtures/users.json")
    for bad in ('{"keyword_only": "*.json"}', '{"keyword_only": [1]}', "not json"):
        config.write_text(bad)
        with pytest.raises(InvalidInput, match=r"config\.json"):
            EmbedPolicy.of(tmp_path)


async def test_keyword_only_chunks_are_found_by_keyword_and_never_embedded(
    db: Database, settings: Settings, polyglot: Path
) -> None:
    (polyglot / "locale").mkdir()
    (polyglot / "locale" / "fr.po").write_text(CATALOGUE)
    (polyglot / "fixtures.json").write_text(json.dumps([{"postcode": "75001", "city": "Paris"}]))
    model = FakeEmbeddingModel()
    result = await Indexer(db, model, settings).index(polyglot)
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT f.path, c.embed_priority, c.embedding IS NOT NULL AS has_vector FROM chunks c "
            "JOIN files f ON f.id = c.file_id"
        )
        rows = await cur.fetchall()
        [stats] = await repo_store.list_repositories(conn, "default")
    by_path = {r["path"]: (r["embed_priority"], r["has_vector"]) for r in rows}
    assert by_path["locale/fr.po"] == (KEYWORD_ONLY, False) and by_path["fixtures.json"] == (KEYWORD_ONLY, False)
    assert all(vector for path, (_, vector) in by_path.items() if path not in {"locale/fr.po", "fixtures.json"})
    assert result.chunks_embedded == len(rows) - 2 and model.texts_embedded == len(rows) - 2
    record = stats.to_dict()
    assert record["keyword_only"] == 2 and record["coverage_percent"] == 100.0
    engine = SearchEngine(db, model, 50)
    found = await engine.search("valid postcode", filters=SearchFilters(), limit=3, mode="keyword")
    assert found.hits[0].path == "locale/fr.po"
    hybrid = await engine.search("Saisissez un code postal", filters=SearchFilters(), limit=10)
    assert "locale/fr.po" in [h.path for h in hybrid.hits]
    assert hybrid.warning is None, "nothing is waiting for a vector"
    # the repository opts in to embedding everything: a forced index embeds the catalogue too
    (polyglot / ".codebase-mcp").mkdir()
    (polyglot / ".codebase-mcp" / "config.json").write_text('{"keyword_only": []}')
    await Indexer(db, model, settings).index(polyglot, force=True)
    async with db.connection() as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM chunks WHERE embedding IS NULL")
        row = await cur.fetchone()
    assert row is not None and row["n"] == 0
