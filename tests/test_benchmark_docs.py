"""docs/benchmarks.md and its pages stay navigable and their commands runnable: every page is listed on the
index, every relative link reaches a file and, with an anchor, one of its headings, and every
``python [bench/]SCRIPT.py --flag`` quoted names a script of bench/ that defines that flag."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
INDEX = ROOT / "docs" / "benchmarks.md"
PAGES = sorted((ROOT / "docs" / "benchmarks").glob("*.md"))
BENCH = ROOT / "bench"

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_CODE = re.compile(r"```.*?```|`[^`]+`", re.DOTALL)
_COMMAND = re.compile(r"\bpython3?\s+(?:bench/)?(\w+)\.py\b(.*?)(?=&&|;|\||#|\bpython3?\s+\S+\.py|$)", re.DOTALL)
_FLAG = re.compile(r"(?<![\w-])--[a-z][\w-]*")


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in page.read_text().splitlines() if line.startswith("#")}


def test_every_page_is_listed_on_the_index() -> None:
    assert PAGES, "docs/benchmarks/ holds the pages"
    listed = {(INDEX.parent / target.split("#")[0]).resolve() for target in _LINK.findall(INDEX.read_text())}
    assert [p.name for p in PAGES if p.resolve() not in listed] == []


@pytest.mark.parametrize("page", [INDEX, *PAGES], ids=lambda p: p.name)
def test_links_reach_a_file_and_a_heading(page: Path) -> None:
    broken = []
    for target in _LINK.findall(page.read_text()):
        if "://" in target:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or (anchor and anchor not in anchors(file)):
            broken.append(target)
    assert broken == []


def test_slug_follows_github() -> None:
    assert slug("Issue 11's targets") == "issue-11s-targets"
    assert slug("While a 3,000-file job runs") == "while-a-3000-file-job-runs"
    assert slug("Python evaluation: model precision and input budget") == (
        "python-evaluation-model-precision-and-input-budget"
    )


@pytest.mark.parametrize("page", [INDEX, *PAGES], ids=lambda p: p.name)
def test_quoted_commands_use_existing_scripts_and_flags(page: Path) -> None:
    wrong = []
    for span in _CODE.findall(page.read_text()):
        for script, arguments in _COMMAND.findall(span.replace("\\\n", " ")):
            source = BENCH / f"{script}.py"
            if not source.exists():
                wrong.append(f"{script}.py")
                continue
            defined = source.read_text()
            wrong += [f"{script}.py {flag}" for flag in _FLAG.findall(arguments) if f'"{flag}"' not in defined]
    assert wrong == []
