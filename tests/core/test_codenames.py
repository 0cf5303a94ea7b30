"""Names in code (core/codenames.py): tails, qualified forms, members' symbols and defining lines, and the
Python tail against the SQL function ``symbol_tail()`` of migration 0005 on the test server, over the
symbols the chunker gives this repository and its fixtures and over synthetic names."""

from __future__ import annotations

import random
from pathlib import Path

import psycopg
import pytest

from codebase_mcp.core.codenames import (
    defined_names,
    defines,
    definition_line,
    fold,
    qualified,
    qualified_parts,
    qualify,
    segments,
    spelled_tail,
    tail,
    without_call,
)
from codebase_mcp.core.languages import language_for
from codebase_mcp.indexing.chunker import chunk_file
from codebase_mcp.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "spelled"),
    [
        ("Foo::Bar", "Bar"),
        ("Foo::Bar()", "Bar()"),  # symbol_tail() keeps a call's parentheses; queries drop them first
        ("a.b.c", "c"),
        ("Foo#bar", "bar"),
        ("Foo->bar", "bar"),
        ("x/y", "y"),
        ("x\\y", "y"),
        ("stale?", "stale?"),
        ("TextUtils.stale?", "stale?"),
        ("reset!", "reset!"),
        ("InvoiceCalculator.compute_total", "compute_total"),
        ("Widget:draw", "draw"),  # a Lua method
        ("Guide > Quick start", "start"),  # a Markdown section: symbol_tail() cuts at spaces too
        ("Foo.", ""),
        ("plain", "plain"),
        ("", ""),
        ("a\nb.c", "c"),  # PostgreSQL's '.' crosses newlines
    ],
)
def test_tails(name: str, spelled: str) -> None:
    assert spelled_tail(name) == spelled
    assert tail(name) == spelled.lower()


def test_lower_case_as_postgresql_makes_it() -> None:
    assert fold("ParseHeader") == "parseheader" and tail("linalg::Matrix") == "matrix"
    assert fold("İndex") == "index"  # str.lower gives "i̇ndex", with a combining dot
    assert fold("ΟΔΟΣ") == "οδοσ"  # str.lower gives a final "ς"
    assert fold("ÄRGER_ẞ") == "ärger_ß"


def test_qualified_forms() -> None:
    assert without_call("Foo.bar()") == "Foo.bar" and without_call("bar") == "bar"
    for spelling in ("Foo::bar()", "Foo#bar", "Foo->bar", "foo.bar", "Foo:bar", "Foo/bar", "Foo\\bar", "::Foo::bar"):
        assert qualified(spelling) == "foo.bar", spelling
    assert segments("pkg::Type#method()") == ("pkg", "Type", "method")
    assert segments("a.b.C") == ("a", "b", "C") and segments("") == ()
    assert qualified_parts("Linalg::Matrix") == ("linalg", "matrix")
    assert qualified("Quick start") == "quick start"  # spaces separate the words of a title, not segments
    assert qualified("TokenBucket.Allow").endswith("." + qualified("Allow"))


def test_members_are_written_owner_dot_name() -> None:
    assert qualify("InvoiceCalculator", "compute_total") == "InvoiceCalculator.compute_total"
    assert qualify(None, "main") == "main" and qualify("", "main") == "main"
    assert tail(qualify("linalg::Matrix", "Determinant")) == "determinant"
    assert qualified_parts(qualify("App", "Mail")) == ("app", "mail")


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("pub struct MergeLte;", "MergeLte"),
        ("pub(crate) fn merge_lte(a: u8) -> bool {", "merge_lte"),
        ("pub const SPACING_MARK: &[(char, char)] = &[", "SPACING_MARK"),
        ("macro_rules! forward_to_deserialize_any {", "forward_to_deserialize_any"),
        ("  def self.stale?(nonce)", "stale?"),
        ("module Concat", "Concat"),
        ("const isUndefined = typeOfTest('undefined');", "isUndefined"),
        ("  function defaultToConfig2(a, b) {", "defaultToConfig2"),
        ("  formatItem(term, width, description) {", "formatItem"),
        ("  static async loadConfig(path) {", "loadConfig"),
        ("export const matchRoute = (path) => {", "matchRoute"),
        ("  isFunction: function (thing) {", "isFunction"),
        ("func (b *TokenBucket) Allow() bool {", "Allow"),
        ("export interface RouteMatch {", "RouteMatch"),
        ("class InvoiceCalculator:", "InvoiceCalculator"),
        ("#define MAX_RETRIES 3", "MAX_RETRIES"),
        ("typedef struct Node {", "Node"),
        ("defmodule Billing.Invoice do", "Invoice"),
        ("macro assert_close(a, b)", "assert_close"),
    ],
)
def test_defining_lines(line: str, name: str) -> None:
    assert defines(f"// header\n{line}\n  body\n", name)
    assert definition_line(f"// header {name}\n{line}\n  body\n", name) == 1


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("impl<I: Iterator> Iterator for MergeLte<I> {", "MergeLte"),
        ("impl fmt::Display for WordError {", "WordError"),
        ("extension Temperature {", "Temperature"),
        ("  formatItem(term, width);", "formatItem"),
        ("class Foo extends Base {", "Base"),
        ("result = parse_header(raw)", "parse_header"),
        ("fn dedup(self) -> Dedup<Self> {", "Dedup"),
        ("package billing", "billing"),
        ("// fn parse_header(raw: &str) {", "parse_header"),
        ("# def compute_total(self):", "compute_total"),
        ("  * class Invoice {", "Invoice"),
    ],
)
def test_lines_that_do_not_define(line: str, name: str) -> None:
    assert not defines(line, name)
    assert definition_line(line, name) is None


def test_defined_names_reads_only_the_lines_that_mention_the_names_asked() -> None:
    text = "class Invoice:\n    def total(self):\n        pass\n\ndef refund():\n    pass"
    assert defined_names(text) == {"Invoice", "total", "refund"}
    assert defined_names(text, ["TOTAL"]) == {"total"}
    assert defined_names(text, ["missing"]) == frozenset()
    assert defines(text, "invoice", ignore_case=True) and not defines(text, "invoice")


def test_definition_line_also_reads_typed_signatures() -> None:
    """The symbol tools' rule is ``defined_names`` plus C-style signatures that are not statements."""
    java = "class Q {\n    public void enqueueItem(T v) {\n        enqueueItem(v);"
    assert definition_line(java, "enqueueItem") == 1 and not defines(java, "enqueueItem")
    c = "/* reverse_string( */\nstatic char *reverse_string(char *s)\n{"
    assert definition_line(c, "reverse_string") == 1
    assert definition_line("class A:\n    def run(self):\n        run()", "run") == 1
    assert definition_line("    fun circleArea(): Double = 1.0", "circleArea") == 0
    assert definition_line("module T\n  def self.slugify(t)\n", "slugify") == 1
    statements = "x = compute(1)\nassert compute(2) == 1\nreturn compute(3);\nint y = compute(4);"
    assert definition_line(statements, "compute") is None


def _chunker_symbols() -> list[str]:
    """The symbols the chunker gives the fixtures and this repository's source."""
    symbols: dict[str, None] = {}
    for folder in ("tests/fixtures", "src"):
        for path in sorted((ROOT / folder).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            rel = path.relative_to(ROOT).as_posix()
            for chunk in chunk_file(text, language_for(rel), Settings().chunk_max_chars):
                if chunk.symbol:
                    symbols.setdefault(chunk.symbol, None)
    return list(symbols)


def _synthetic_names(count: int) -> list[str]:
    """Names made of identifiers, Ruby and Unicode names, and every character symbol_tail() cuts at, in
    runs, at both ends and next to the characters it does not cut at."""
    rng = random.Random(19)
    parts = ["Foo", "bar_baz", "stale?", "reset!", "$el", "x1", "İndex", "ΟΔΟΣ", "Ärger", "operator()", "Vec<T>", ""]
    separators = [".", "::", ":", "#", "->", "/", "\\", ">", " ", " > ", "\n", "\t", "-", "<", ",", "..", ":::"]
    names = []
    for _ in range(count):
        pieces = [rng.choice(parts)]
        for _ in range(rng.randint(0, 4)):
            pieces += [rng.choice(separators), rng.choice(parts)]
        names.append("".join(pieces))
    return names


def test_tail_is_symbol_tail_of_migration_0005(database_url: str) -> None:
    chunked = _chunker_symbols()
    assert len(chunked) > 300 and any("." in s for s in chunked) and any(" > " in s for s in chunked)
    names = chunked + _synthetic_names(400)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT symbol_tail(t.s), lower(t.s) FROM unnest(%s::text[]) WITH ORDINALITY AS t(s, n) ORDER BY t.n",
            (names,),
        ).fetchall()
    assert len(rows) == len(names)
    for name, (sql_tail, sql_lower) in zip(names, rows, strict=True):
        assert tail(name) == sql_tail, name
        assert fold(name) == sql_lower, name
