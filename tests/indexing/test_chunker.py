from __future__ import annotations

from pathlib import Path

import pytest

from codebase_mcp.core.languages import language_for
from codebase_mcp.indexing.chunker import Chunk, chunk_file

POLYGLOT = Path(__file__).parents[1] / "fixtures" / "polyglot"

EXPECTED_SYMBOLS = {
    "src/billing.py": {"InvoiceCalculator", "format_currency"},
    "web/session.js": {"createSessionToken", "expireSessions", "SessionStore"},
    "web/router.ts": {"Route", "matchRoute"},
    "web/Button.tsx": {"PrimaryButton"},
    "native/ratelimit.go": {"TokenBucket", "TokenBucket.Allow"},
    "native/checksum.rs": {"adler32", "Crc32Table"},
    "native/LinkedQueue.java": {"LinkedQueue"},
    "native/strutil.c": {"reverse_string"},
    "native/matrix.cpp": {"linalg", "linalg.Matrix"},
    "native/Mailer.cs": {"App.Mail", "App.Mail.Mailer"},
    "native/slugify.rb": {"TextUtils", "TextUtils.slugify"},
    "native/cart.php": {"ShoppingCart"},
    "native/Geometry.kt": {"Circle"},
    "native/Temperature.swift": {"Temperature"},
    "native/Stats.scala": {"Stats"},
    "native/inventory.lua": {"count_inventory"},
    "native/deploy.sh": {"deploy_release"},
    "docs/guide.md": {"User guide", "User guide > Installing", "User guide > Invoices"},
}


def check_invariants(text: str, chunks: list[Chunk]) -> None:
    lines = text.splitlines()
    covered: list[int] = []
    for c in chunks:
        assert 1 <= c.start_line <= c.end_line <= len(lines)
        assert c.content == "\n".join(lines[c.start_line - 1 : c.end_line])
        covered.extend(range(c.start_line, c.end_line + 1))
    assert len(covered) == len(set(covered)), "a line is in two chunks"
    nonblank = {i + 1 for i, line in enumerate(lines) if line.strip()}
    assert nonblank <= set(covered), "a non-blank line is in no chunk"


@pytest.mark.parametrize("rel", sorted(EXPECTED_SYMBOLS))
def test_each_language_yields_its_definitions(rel: str) -> None:
    text = (POLYGLOT / rel).read_text()
    chunks = chunk_file(text, language_for(rel), 1500)
    check_invariants(text, chunks)
    assert EXPECTED_SYMBOLS[rel] <= {c.symbol for c in chunks}


def test_namespace_members_are_chunks_whatever_the_size() -> None:
    # a small namespace used to be one chunk named after it: its class was not found by name
    text = (POLYGLOT / "native/matrix.cpp").read_text()
    chunks = chunk_file(text, "cpp", 1500)
    check_invariants(text, chunks)
    matrix = next(c for c in chunks if c.symbol == "linalg.Matrix")
    assert matrix.kind == "class" and matrix.content.startswith("class Matrix {")
    assert "determinant" in matrix.content
    text = "namespace ns {\nint add(int a, int b) { return a + b; }\n}\n"
    chunks = chunk_file(text, "cpp", 1500)
    check_invariants(text, chunks)
    assert any(c.symbol == "ns.add" and c.kind == "function" for c in chunks)
    text = "mod outer;\npub mod inner {\n    pub fn helper() -> u32 { 1 }\n}\n"
    chunks = chunk_file(text, "rust", 1500)
    check_invariants(text, chunks)
    assert any(c.symbol == "inner.helper" and c.kind == "function" for c in chunks)


def big_python_class(methods: int) -> str:
    body = "\n\n".join(
        f"    def method_{i}(self, value):\n        '''Method {i}.'''\n"
        + "        value += 1\n" * 8
        + "        return value"
        for i in range(methods)
    )
    return f"import os\n\n\nclass Service:\n    name = 'svc'\n\n{body}\n\n\ndef helper():\n    return 2\n"


def test_large_class_is_split_into_qualified_methods() -> None:
    text = big_python_class(12)
    chunks = chunk_file(text, "python", 600)
    check_invariants(text, chunks)
    symbols = [c.symbol for c in chunks]
    assert "Service.method_0" in symbols and "Service.method_11" in symbols
    assert all(c.kind == "method" for c in chunks if c.symbol and c.symbol.startswith("Service.method"))
    header = next(c for c in chunks if c.symbol == "Service")
    assert header.kind == "class" and "class Service" in header.content
    assert any(c.symbol == "helper" and c.kind == "function" for c in chunks)
    assert max(len(c.content) for c in chunks) <= 600


def test_huge_function_is_split_by_lines_to_budget() -> None:
    text = "def long():\n" + "".join(f"    x{i} = {i}\n" for i in range(400))
    chunks = chunk_file(text, "python", 500)
    check_invariants(text, chunks)
    assert len(chunks) > 5
    assert {c.symbol for c in chunks} == {"long"}
    assert all(len(c.content) <= 500 for c in chunks)


def test_comments_above_a_definition_belong_to_it() -> None:
    text = "package p\n\n// Add adds two numbers.\n// It never overflows.\nfunc Add(a, b int) int { return a + b }\n"
    chunks = chunk_file(text, "go", 1500)
    add = next(c for c in chunks if c.symbol == "Add")
    assert add.start_line == 3 and "never overflows" in add.content


def test_unknown_language_is_chunked_by_lines() -> None:
    text = "\n".join(f"key{i}: value{i}" for i in range(300))
    chunks = chunk_file(text, "yaml", 800)
    check_invariants(text, chunks)
    assert len(chunks) > 3 and all(c.kind == "lines" for c in chunks)


def test_markdown_headings_inside_code_fences_are_not_sections() -> None:
    text = "# Title\n\n```bash\n# not a heading\n```\n\n## Next\n\ntext\n"
    chunks = chunk_file(text, "markdown", 1500)
    assert [c.symbol for c in chunks] == ["Title", "Title > Next"]


def test_broken_syntax_still_yields_chunks() -> None:
    text = "def ok():\n    return 1\n\ndef broken(:\n    pass\n"
    chunks = chunk_file(text, "python", 1500)
    check_invariants(text, chunks)
    assert any(c.symbol == "ok" for c in chunks)


def test_form_feed_and_unicode_line_separators_do_not_break_line_numbers() -> None:
    text = "def a():\n    return '\x0c'\n\n\ndef b():\n    return '\u2028'\n"
    chunks = chunk_file(text, "python", 1500)
    assert [(c.symbol, c.start_line, c.end_line) for c in chunks] == [("a", 1, 2), ("b", 5, 6)]
