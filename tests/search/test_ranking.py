"""The ranking stage's definition rule: the chunk that defines the asked name comes first, read from its
defining line when the text is known (an ``impl`` block named after a type is not its definition; a
method of a small class and a constant inside a larger chunk are)."""

from __future__ import annotations

import pytest

from codebase_mcp.search.query import analyse, asked_names, asked_spellings, is_question, query_kind
from codebase_mcp.search.ranking import DEFAULT, Candidate, rerank


def _candidate(chunk_id: int, symbol: str | None, score: float, kind: str = "class") -> Candidate:
    c = Candidate(chunk_id, chunk_id, f"src/f{chunk_id}.rs", symbol, kind, "rust", lines=10)
    c.score = score
    return c


def test_the_defining_chunk_outranks_blocks_named_after_it() -> None:
    texts = {
        1: "impl fmt::Display for WordError {\n    fn fmt(&self) {}\n}",
        2: "pub struct WordError {\n    kind: u8,\n}",
        3: "pub mod tables {\n    pub const WORD_CHARS: &[u8] = &[1, 2];\n}",
        4: "pub fn word_error() -> u8 { 1 }",
    }
    cands = [_candidate(1, "WordError", 1.0), _candidate(2, "WordError", 0.6), _candidate(3, "tables", 0.9)]
    cands.append(_candidate(4, "word_error", 0.95, "function"))
    for c in cands:
        c.text = texts[c.chunk_id]
    ranked = rerank(cands, analyse("WordError"), DEFAULT)
    assert ranked[0].chunk_id == 2  # the struct, not its impl block, nor the function of another case
    again = [_candidate(i, c.symbol, c.score) for i, c in enumerate(cands, 1)]
    for c in again:
        c.text = texts[c.chunk_id]
    ranked = rerank(again, analyse("WORD_CHARS"), DEFAULT)
    assert ranked[0].chunk_id == 3  # a constant inside a larger chunk, found by its defining line
    assert ranked[0].signals["definition"] == pytest.approx(DEFAULT.keyword_definition)


def test_ruby_names_with_a_question_mark_are_symbol_lookups() -> None:
    assert query_kind("stale?") == "identifier" and asked_names("stale?") == [("stale?", 1.0)]
    assert asked_spellings("Foo::BarBaz()") == [("BarBaz", 1.0)]
    # in a sentence, the question mark is punctuation
    assert asked_names("where is parse_header called?") == [("parse_header", 0.5)]


def test_a_question_gets_one_slot_per_file_a_description_its_best_chunks() -> None:
    """Questions ask how something works across files: a file's further chunks give way to other files.
    A description of one piece of code keeps the best chunks wherever they are."""

    def candidates() -> list[Candidate]:
        out = [
            Candidate(i, 1, "lib/router.py", f"route_{i}", "function", "python", lines=20, score=1.0 - i / 100)
            for i in range(1, 4)
        ]
        out.append(Candidate(9, 2, "lib/handlers.py", "dispatch", "function", "python", lines=20, score=0.9))
        return out

    asked = rerank(candidates(), analyse("how is a request routed to its handler?"))
    described = rerank(candidates(), analyse("route a request to its handler"))
    assert [c.path for c in asked[:2]] == ["lib/router.py", "lib/handlers.py"]
    assert [c.path for c in described[:3]] == ["lib/router.py"] * 3


@pytest.mark.parametrize(
    ("query", "question"),
    [
        ("how are retries configured", True),
        ("Where is the session token validated?", True),
        ("does the parser keep comments", True),
        ("parse the configuration file", False),
        ("Return the number of retries.", False),
        ("RetryPolicy", False),
        ("", False),
    ],
)
def test_what_a_question_is(query: str, question: bool) -> None:
    assert is_question(query) is question
