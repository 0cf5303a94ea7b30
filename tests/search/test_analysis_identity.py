"""Chunks analysed in Python (core/analysis.py) search exactly as chunks analysed by PostgreSQL's
``to_tsvector('english', search_text)`` did. The fixture repositories (and this repository's src/) are
indexed on the new path; then every chunk's tsvector and length are compared with ``to_tsvector``'s, and
the top 10 of a set of queries (keyword: identical; hybrid, fake model: the same hits but for the dense
arm's approximate neighbours) with the top 10 after the index is rebuilt the old way (``to_tsvector`` in
SQL, statistics and postings recomputed from it) and the queries' lexemes are computed the old way
(``to_tsvector`` per term)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from codebase_mcp.core import analysis
from codebase_mcp.core.tokens import query_terms
from codebase_mcp.embeddings.fake import FakeEmbeddingModel
from codebase_mcp.indexing.indexer import Indexer
from codebase_mcp.search import query as query_module
from codebase_mcp.search.engine import SearchEngine
from codebase_mcp.settings import Settings
from codebase_mcp.storage.database import Database

# words on which PyStemmer and PostgreSQL's english_stem disagree, beside ordinary code
DIVERGENT = '''"""Organization of the university's internal evening courses."""


def organize_internal_intervals(organizations, universities):
    """Organizing intervals: the internal organization of every university, evenings included."""
    for organization in organizations:
        if organization.internal and organization.universal:
            yield organization.evening_interval


class PsychologistRegistry:
    """Psychologists, sociologists and biologists, organized internally by university."""

    def register_biologist(self, biologist):
        self.internal[biologist.university] = biologist
'''

QUERIES = [
    "createSessionToken",
    "rate limit requests token bucket",
    "compute total invoice",
    "adler32 checksum",
    "session",
    "route handler",
    "organization",
    "organizations internal",
    "university evening intervals",
    "psychologist registry",
    "register biologist",
    "where is the internal organization of universities",
    "linked queue",
    "parse config yaml",
    "return",
    "1e5x v1 0x1f",
    "the",
    "keyword search bm25 postings",
    "embedding model batch",
    "store_batch",
    "daemon watcher",
    "migrate database schema",
]

OLD_REBUILD = [
    "UPDATE chunks SET tsv = to_tsvector('english', search_text), "
    "doc_len = tsvector_token_count(to_tsvector('english', search_text))",
    "DELETE FROM bm25_postings",
    "DELETE FROM bm25_blocks",
    "DELETE FROM bm25_terms",
    "DELETE FROM bm25_docs",
    "INSERT INTO bm25_docs (repository_id, chunks, total_len) "
    "SELECT repository_id, count(*), sum(doc_len) FROM chunks GROUP BY 1",
    "INSERT INTO bm25_terms (repository_id, lexeme, df) "
    "SELECT c.repository_id, u.lexeme, count(*) FROM chunks c, unnest(c.tsv) u GROUP BY 1, 2",
    "INSERT INTO bm25_postings (repository_id, lexeme, chunk_id, tf, doc_len, impact) "
    "SELECT c.repository_id, u.lexeme, c.id, cardinality(u.positions), c.doc_len, "
    "bm25_impact(cardinality(u.positions), c.doc_len) FROM chunks c, unnest(c.tsv) u",
]


@pytest.fixture
def fresh_lexicon(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that has checked no stem yet: the corrections happen during this test's indexing."""
    monkeypatch.setattr(analysis, "_lexemes_of", {})
    monkeypatch.setattr(analysis, "_server_stem", {})
    monkeypatch.setattr(analysis, "_checked", set())
    monkeypatch.setattr(analysis, "_unchecked", set())


async def top10(engine: SearchEngine) -> dict[tuple[str, str], list[tuple[str, int, float]]]:
    out = {}
    for query in QUERIES:
        for mode in ("keyword", "hybrid"):
            res = await engine.search(query, mode=mode, limit=10)
            out[(query, mode)] = [(h.path, h.start_line, round(h.score, 9)) for h in res.hits]
    return out


async def test_search_results_equal_the_to_tsvector_index(
    db: Database,
    settings: Settings,
    fake_model: FakeEmbeddingModel,
    polyglot: Path,
    tmp_path: Path,
    fresh_lexicon: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = tmp_path / "divergent"
    other.mkdir()
    (other / "organization.py").write_text(DIVERGENT)
    (other / "numbers.py").write_text("X_1E5X = v1 = 0x1f\n_1e5x = __0e1a__ = 12abc34\n")
    own = tmp_path / "own"  # this repository's source: a larger, real code base
    shutil.copytree(Path(__file__).resolve().parents[2] / "src", own, ignore=shutil.ignore_patterns("__pycache__"))
    for repo in (polyglot, other, own):
        await Indexer(db, fake_model, settings).index(repo)
    assert analysis._server_stem, "indexing corrected no stem: the divergent words were not exercised"

    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n, count(*) FILTER (WHERE tsv <> to_tsvector('english', search_text) "
            " OR tsv::text <> to_tsvector('english', search_text)::text "
            " OR doc_len <> tsvector_token_count(to_tsvector('english', search_text))) AS differ FROM chunks"
        )
        row = await cur.fetchone()
    assert row is not None and row["n"] > 500 and row["differ"] == 0

    engine = SearchEngine(db, fake_model)
    new = await top10(engine)
    assert new[("organization", "keyword")], "the divergent words are searchable"

    # the old path: to_tsvector in SQL for the chunks, and for each query term
    async with db.connection() as conn:
        for statement in OLD_REBUILD:
            await conn.execute(statement)
        old_lexemes: dict[tuple[str, ...], list[str]] = {}
        for query in QUERIES:
            terms = query_terms(query)
            cur = await conn.execute(
                "SELECT array(SELECT lexeme FROM unnest(to_tsvector('english', t.term))) AS lex "
                "FROM unnest(%s::text[]) WITH ORDINALITY AS t(term, ord) ORDER BY t.ord",
                (terms,),
            )
            seen: dict[str, None] = {}
            for r in await cur.fetchall():
                seen.update(dict.fromkeys(r["lex"]))
            old_lexemes[tuple(terms)] = list(seen)
    monkeypatch.setattr(query_module, "query_lexemes", lambda terms: old_lexemes[tuple(terms)])
    old = await top10(SearchEngine(db, fake_model))
    keyword = [key for key in new if key[1] == "keyword"]
    assert {k: new[k] for k in keyword} == {k: old[k] for k in keyword}
    # hybrid adds the dense arm, whose HNSW graph gained entries when every row was rewritten above, so
    # its approximate neighbours may differ a little: the same hits, nearly all of them
    overlaps = []
    for key in (k for k in new if k[1] == "hybrid"):
        hits_new, hits_old = {h[:2] for h in new[key]}, {h[:2] for h in old[key]}
        overlaps.append(len(hits_new & hits_old) / max(len(hits_new), len(hits_old), 1))
    assert sum(overlaps) / len(overlaps) >= 0.9, overlaps
