"""The import table of docs/architecture.md ("What may import what") holds for the code: the test reads
the table from the document (it is written once, there) and every import of every module under
src/codebase_mcp from the source (``ast``: imports inside functions and under ``TYPE_CHECKING`` count)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOC = ROOT / "docs" / "architecture.md"
SRC = ROOT / "src"
PACKAGE = "codebase_mcp"
HEADER = "| package or module | may import |"
ROOT_MODULE = "__init__"  # how the table names src/codebase_mcp/__init__.py


@dataclass(frozen=True)
class Row:
    names: tuple[str, ...]
    may_import: frozenset[str]


def read_table(text: str) -> list[Row]:
    """The rows of the table under ``HEADER``: the backquoted names of each cell; "anything above" in the
    second cell stands for every name of the rows above."""
    lines = text.splitlines()
    try:
        start = lines.index(HEADER)
    except ValueError:
        raise AssertionError(f"{DOC.name} has no line {HEADER!r}: the import table is read from it") from None
    rows: list[Row] = []
    for line in lines[start + 2 :]:  # after the header and its |---| line
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == 2, f"a row of the import table has {len(cells)} cells: {line!r}"
        names = tuple(re.findall(r"`([^`]+)`", cells[0]))
        assert names, f"a row of the import table names nothing: {line!r}"
        allowed = set(re.findall(r"`([^`]+)`", cells[1]))
        if "anything above" in cells[1]:
            allowed.update(name for row in rows for name in row.names)
        rows.append(Row(names, frozenset(allowed)))
    assert rows, "the import table has no rows"
    return rows


def modules() -> dict[str, Path]:
    """Every module of the package by its name relative to the package (``storage.index_store``; a
    package's ``__init__`` by the package's name, the top one's as ``__init__``)."""
    found: dict[str, Path] = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC / PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()
        found[".".join(parts)] = path
    return found


def relative(dotted: str) -> str | None:
    """``codebase_mcp.x.y`` as ``x.y`` (``__init__`` for the package itself); None outside it."""
    if dotted == PACKAGE:
        return ROOT_MODULE
    if dotted.startswith(PACKAGE + "."):
        return dotted[len(PACKAGE) + 1 :]
    return None


def imports_of(name: str, path: Path, known: set[str]) -> set[tuple[int, str]]:
    """(line, module) of each of our modules that ``path`` imports. ``from a import b`` imports
    ``a.b`` when that is a module, ``a`` otherwise."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    if name == ROOT_MODULE:
        package = []
    found: set[tuple[int, str]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            targets = []
            if node.level:  # relative: from the package ``level - 1`` above this module's
                base = [PACKAGE, *package[: len(package) - node.level + 1]]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                sub = relative(f"{module}.{alias.name}")
                targets.append(f"{module}.{alias.name}" if sub in known else module)
        else:
            continue
        for target in targets:
            ours = relative(target)
            if ours is not None:
                found.add((node.lineno, ours))
    return found


def unit_of(module: str, units: set[str]) -> str | None:
    """The most specific name of the table that covers ``module``."""
    covering = [u for u in units if module == u or module.startswith(u + ".")]
    return max(covering, key=len) if covering else None


@pytest.fixture(scope="module")
def table() -> list[Row]:
    return read_table(DOC.read_text(encoding="utf-8"))


def test_the_table_names_real_modules_once(table: list[Row]) -> None:
    known = set(modules())
    names = [name for row in table for name in row.names]
    assert len(names) == len(set(names)), f"a name has two rows in the import table: {sorted(names)}"
    for row in table:
        for name in (*row.names, *row.may_import):
            assert name in known, f"the import table of {DOC.name} names {name!r}, which is no module of ours"


def test_every_module_has_a_row(table: list[Row]) -> None:
    units = {name for row in table for name in row.names}
    missing = sorted(m for m in modules() if unit_of(m, units) is None)
    assert not missing, f"add these modules (or their packages) to the import table of {DOC.name}: {missing}"


def test_the_table_has_no_cycle(table: list[Row]) -> None:
    edges = {name: set(row.may_import) - {name} for row in table for name in row.names}
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = [*path[path.index(node) :], node]
            raise AssertionError(f"the import table of {DOC.name} has a cycle: {' -> '.join(cycle)}")
        if node in done:
            return
        for nxt in sorted(edges.get(node, ())):
            visit(nxt, [*path, node])
        done.add(node)

    for start in sorted(edges):
        visit(start, [])


def test_imports_follow_the_table(table: list[Row]) -> None:
    allowed = {name: row.may_import for row in table for name in row.names}
    units = set(allowed)
    found = modules()
    wrong: list[str] = []
    for name, path in found.items():
        mine = unit_of(name, units)
        if mine is None:
            continue  # test_every_module_has_a_row says so
        for line, target in sorted(imports_of(name, path, set(found))):
            theirs = unit_of(target, units)
            if theirs != mine and theirs not in allowed[mine]:
                where = path.relative_to(ROOT)
                wrong.append(f"{where}:{line} imports {target} ({theirs}), which `{mine}` may not import")
    assert not wrong, (
        f"imports that the table of {DOC.name} does not allow (fix the import, or the table if the design "
        "changed):\n" + "\n".join(wrong)
    )


DRIVER = ("psycopg", "psycopg_pool", "pgvector")


def test_only_storage_imports_the_driver() -> None:
    wrong: list[str] = []
    for name, path in modules().items():
        if name == "storage" or name.startswith("storage."):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                targets = [node.module or ""]
            else:
                continue
            wrong += [
                f"{path.relative_to(ROOT)}:{node.lineno} imports {t}" for t in targets if t.split(".")[0] in DRIVER
            ]
    assert not wrong, "only storage/ may use the database driver:\n" + "\n".join(wrong)


def test_the_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    """Imports inside functions, under TYPE_CHECKING, relative and by ``from package import module``."""
    module = tmp_path / "worker.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "from codebase_mcp.storage import job_store\n"
        "import codebase_mcp.errors as errors\n"
        "from . import other\n"
        "from ..search.engine import SearchEngine\n"
        "if TYPE_CHECKING:\n"
        "    from codebase_mcp.runtime import Runtime\n"
        "def f():\n"
        "    from codebase_mcp import package_version\n"
    )
    known = {"storage", "storage.job_store", "errors", "runtime", "jobs", "jobs.other", "search.engine"}
    got = {target for _, target in imports_of("jobs.worker", module, known)}
    assert got == {"storage.job_store", "errors", "jobs.other", "search.engine", "runtime", "__init__"}
