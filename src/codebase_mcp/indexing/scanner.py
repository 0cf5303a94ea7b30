"""Walk a repository: what to index, and what was left out and why.

The walk never follows symbolic links, honours ``.gitignore`` files at every level,
``.git/info/exclude`` and the project ignore file ``.codebase-mcp-ignore``, and skips dependency,
build and VCS folders, binaries, huge, minified or generated files and anything that looks like a
secret. A file that is skipped is never read past the few kilobytes needed to classify it, and never
stored.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pathspec

from codebase_mcp.core.languages import BINARY_EXTENSIONS
from codebase_mcp.core.secrets import secret_by_name, secret_in_text
from codebase_mcp.domain import SkippedFile

PROJECT_IGNORE_FILE = ".codebase-mcp-ignore"

SKIP_DIRS: frozenset[str] = frozenset(
    [
        ".git",
        ".hg",
        ".svn",
        ".bzr",
        "_darcs",
        "CVS",
        "node_modules",
        "bower_components",
        "jspm_packages",
        ".yarn",
        ".pnpm-store",
        "vendor",
        "Pods",
        "Carthage",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".eggs",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        "site-packages",
        ".ipynb_checkpoints",
        "dist",
        "build",
        "out",
        "target",
        ".gradle",
        ".next",
        ".nuxt",
        ".svelte-kit",
        ".parcel-cache",
        ".turbo",
        ".cache",
        ".terraform",
        "DerivedData",
        ".build",
        "coverage",
        "htmlcov",
        ".idea",
        ".vscode",
        ".vs",
    ]
)

GENERATED_NAMES: frozenset[str] = frozenset(
    [
        "package-lock.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "npm-shrinkwrap.json",
        "poetry.lock",
        "Pipfile.lock",
        "uv.lock",
        "Cargo.lock",
        "Gemfile.lock",
        "composer.lock",
        "go.sum",
        "mix.lock",
        "pubspec.lock",
        "packages.lock.json",
        "flake.lock",
    ]
)
_GENERATED_SUFFIXES = (
    ".min.js",
    ".min.css",
    ".map",
    ".bundle.js",
    "_pb2.py",
    "_pb2_grpc.py",
    ".pb.go",
    ".pb.cc",
    ".pb.h",
    ".g.dart",
    ".designer.cs",
)
# written by tools but read by people: the project's own manifest (crates.io rewrites Cargo.toml and
# heads it "automatically generated", yet it is the crate's only list of dependencies and features)
_MANIFESTS = frozenset({"cargo.toml"})
_GENERATED_MARKER = re.compile(
    r"(?i)(?:code generated .* do not edit|@generated\b|auto-?generated (?:file|code)|"
    r"this file (?:is|was) (?:automatically )?generated)"
)

CLASSIFY_BYTES = 8192


@dataclass(frozen=True)
class FileEntry:
    rel_path: str  # POSIX separators, relative to the root
    abs_path: Path
    size: int
    mtime_ns: int


@dataclass
class ScanResult:
    files: list[FileEntry] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


class _IgnoreRules:
    """gitignore semantics across nested ignore files: deeper files override shallower ones."""

    def __init__(self) -> None:
        self._specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []

    def push(self, base: str, lines: list[str]) -> _IgnoreRules:
        rules = _IgnoreRules()
        rules._specs = [*self._specs, (base, pathspec.GitIgnoreSpec.from_lines(lines))]
        return rules

    def ignored(self, rel_path: str, is_dir: bool) -> bool:
        verdict = None
        for base, spec in self._specs:
            if base and not rel_path.startswith(base + "/"):
                continue
            sub = rel_path[len(base) + 1 :] if base else rel_path
            result = spec.check_file(sub + "/" if is_dir else sub)
            if result.include is not None:
                verdict = result.include
        return bool(verdict)


def _read_lines(path: Path) -> list[str]:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            return fh.read(1_000_000).splitlines()
    except OSError:
        return []


def _is_regular_file(path: Path) -> bool:
    """A regular file, not a link; False for anything unreachable (e.g. a path past PATH_MAX)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except (OSError, ValueError):
        return False


def scan(root: Path, max_file_bytes: int) -> ScanResult:
    """List the files under ``root`` worth reading, and the ones left out with their reasons."""
    result = ScanResult()
    rules = _IgnoreRules()
    root_rules: list[str] = []
    root_rules += _read_lines(root / ".git" / "info" / "exclude")
    root_rules += _read_lines(root / PROJECT_IGNORE_FILE)
    if root_rules:
        rules = rules.push("", root_rules)
    stack: list[tuple[str, Path, _IgnoreRules]] = [("", root, rules)]
    while stack:
        rel_dir, abs_dir, dir_rules = stack.pop()
        gitignore = abs_dir / ".gitignore"
        if _is_regular_file(gitignore):
            dir_rules = dir_rules.push(rel_dir, _read_lines(gitignore))
        try:
            with os.scandir(abs_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            result.skipped.append(SkippedFile(rel_dir + "/" if rel_dir else "./", "unreadable"))
            continue
        subdirs: list[tuple[str, Path, _IgnoreRules]] = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            reason = _classify_entry(entry, rel, dir_rules, max_file_bytes, result)
            if reason == "dir":
                subdirs.append((rel, Path(entry.path), dir_rules))
            elif reason is not None:
                result.skipped.append(SkippedFile(rel + "/" if reason.endswith("_dir") else rel, reason))
        stack.extend(reversed(subdirs))
    return result


def _classify_entry(
    entry: os.DirEntry[str], rel: str, rules: _IgnoreRules, max_file_bytes: int, result: ScanResult
) -> str | None:
    """``"dir"`` to descend, a skip reason, or None after adding a file to ``result``."""
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return "unreadable"
    if stat.S_ISLNK(st.st_mode):
        return "symlink"
    if stat.S_ISDIR(st.st_mode):
        if entry.name in SKIP_DIRS or entry.name.endswith(".egg-info"):
            return (
                "vcs_dir"
                if entry.name in {".git", ".hg", ".svn", ".bzr", "_darcs", "CVS"}
                else "dependency_or_build_dir"
            )
        if rules.ignored(rel, is_dir=True):
            return "gitignored_dir"
        if secret_by_name(rel + "/x"):
            return "secret_dir"
        return "dir"
    if not stat.S_ISREG(st.st_mode):
        return "not_regular_file"
    if rules.ignored(rel, is_dir=False):
        return "gitignored"
    if secret_by_name(rel):
        return "secret"
    name = entry.name
    if name in GENERATED_NAMES or name.lower().endswith(_GENERATED_SUFFIXES):
        return "generated"
    if os.path.splitext(name)[1].lower() in BINARY_EXTENSIONS:
        return "binary"
    if st.st_size > max_file_bytes:
        return "too_large"
    result.files.append(FileEntry(rel, Path(entry.path), st.st_size, st.st_mtime_ns))
    return None


def decode_text(data: bytes) -> str | None:
    """Text of a file's bytes, or None when they look binary (by content, not by name)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    if b"\x00" in data[:CLASSIFY_BYTES]:
        return None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        # mostly valid text with a few stray bytes is kept; noise is binary
        if text.count("\ufffd") > max(8, len(text) // 100):
            return None
        return text


def classify_text(rel_path: str, text: str, max_line_length: int) -> str | None:
    """A skip reason for a file's decoded text, or None when it should be indexed."""
    if not text.strip():
        return "empty"
    lines = text.splitlines()
    longest = max((len(line) for line in lines), default=0)
    average = len(text) / max(1, len(lines))
    # minified: long lines on average, or one giant line that is most of the file (a source file with
    # one long literal among ordinary lines is still source)
    if average > max_line_length or (longest > 20 * max_line_length and longest > len(text) / 2):
        return "minified"
    if PurePosixPath(rel_path).name.lower() not in _MANIFESTS and _GENERATED_MARKER.search("\n".join(lines[:5])):
        return "generated"
    if secret_in_text(text):
        return "secret_content"
    return None


def load_file(entry: FileEntry, max_line_length: int) -> tuple[str | None, str | None]:
    """Read and classify one file: ``(text, None)`` to index it, ``(None, reason)`` to skip it."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        # O_NOFOLLOW and the S_ISREG check close the race of a file swapped for a link or a FIFO
        # between the scan and the read.
        fd = os.open(entry.abs_path, flags)
    except OSError:
        return None, "unreadable"
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None, "not_regular_file"
        try:
            data = fh.read(entry.size + 1)
        except OSError:
            return None, "unreadable"
    text = decode_text(data)
    if text is None:
        return None, "binary"
    reason = classify_text(entry.rel_path, text, max_line_length)
    if reason is not None:
        return None, reason
    return text.replace("\x00", ""), None
