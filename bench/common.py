"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import resource
import shutil
import statistics
import sys
import sysconfig
from pathlib import Path

CORPUS_DIR = Path(__file__).parent / ".corpus"
# Large projects nobody here wrote, taken from the installed PyPI distributions.
THROUGHPUT_PACKAGES = [
    "transformers",
    "torch",
    "sympy",
    "scipy",
    "sklearn",
    "networkx",
    "numpy",
    "mypy",
    "hypothesis",
    "pydantic",
    "mcp",
    "rich",
]


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def build_corpus(name: str, packages: list[str]) -> Path:
    """Copy the packages' installed sources side by side under bench/.corpus/NAME (once)."""
    dest = CORPUS_DIR / name
    if dest.exists():
        return dest
    dest.mkdir(parents=True)
    for pkg in packages:
        src = site_packages() / pkg
        if not src.is_dir():
            sys.exit(f"package {pkg} is not installed in this environment: pip install it first")
        shutil.copytree(src, dest / pkg, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def count_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file())


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def table(rows: list[tuple[str, str]], title: str) -> str:
    width = max(len(k) for k, _ in rows)
    lines = [f"## {title}", "", f"| {'metric':<{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k:<{width}} | {v} |" for k, v in rows]
    return "\n".join(lines)


def grid(header: list[str], rows: list[list[str]], title: str) -> str:
    """A Markdown table with several columns, padded to line up in a terminal."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"## {title}", "", "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join(lines)
