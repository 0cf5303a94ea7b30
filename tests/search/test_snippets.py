"""Snippets are trimmed around the lines that matched the query, within a character allowance."""

from __future__ import annotations

from codebase_mcp.search.snippets import trim_snippet
from codebase_mcp.search.symbols import parse_name

BODY = "\n".join(f"line {i} filler text" for i in range(1, 41)).replace("line 25 filler", "line 25 parse_config here")


def test_window_starts_just_before_the_matching_line() -> None:
    snip = trim_snippet(BODY, 100, "parse_config", max_chars=2000, max_lines=5)
    assert snip.start_line == 100 + 23 and snip.end_line == snip.start_line + 4
    assert "parse_config" in snip.text.split("\n")[1] and snip.truncated


def test_no_match_keeps_the_start() -> None:
    snip = trim_snippet(BODY, 1, "zebra", max_chars=2000, max_lines=3)
    assert snip.text.split("\n") == ["line 1 filler text", "line 2 filler text", "line 3 filler text"]
    assert snip.start_line == 1 and snip.end_line == 3 and snip.truncated


def test_character_allowance_and_long_lines() -> None:
    snip = trim_snippet(BODY, 1, "parse_config", max_chars=60, max_lines=10)
    assert len(snip.text) <= 60 and "parse_config" in snip.text
    long = trim_snippet("x" * 1000, 1, "x", max_chars=5000)
    assert len(long.text) <= 160 and long.truncated


def test_short_chunk_is_whole() -> None:
    snip = trim_snippet("def a():\n    return 1\n", 7, "a", max_chars=500)
    assert snip.text == "def a():\n    return 1" and (snip.start_line, snip.end_line) == (7, 8) and not snip.truncated


def test_symbol_names_as_asked() -> None:
    assert parse_name("linalg::Matrix").parts == ("linalg", "Matrix")
    assert parse_name("a.b.C").qualifier == ("a", "b")
    assert parse_name("Parser.parse()").parts == ("Parser", "parse")  # written as a call
    assert parse_name("Widget:draw").parts == ("Widget", "draw")  # a Lua method
