"""Search filters, turned into SQL conditions with every value as a parameter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from codebase_mcp.errors import InvalidInput


@dataclass(frozen=True)
class SearchFilters:
    repository: str | None = None  # id, root path or name
    language: str | None = None
    file_type: str | None = None  # extension, with or without the dot
    path_prefix: str | None = None  # folder or path prefix, relative to the repository root
    path_glob: str | None = None  # e.g. "src/**/*.py"


def glob_to_regex(glob: str) -> str:
    """A POSIX regular expression (PostgreSQL ``~``) for a path glob: ``**`` crosses folders, ``*`` and
    ``?`` do not; everything else is literal."""
    out = ["^"]
    i = 0
    while i < len(glob):
        ch = glob[i]
        if glob.startswith("**/", i):
            out.append("(.*/)?")
            i += 3
            continue
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch.isalnum() or ch in "/_-":
            out.append(ch)
        else:
            out.append("\\" + ch)
        i += 1
    out.append("$")
    return "".join(out)


def _clean(value: str | None, what: str, max_len: int = 500) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > max_len or "\x00" in value:
        raise InvalidInput(f"The {what} filter is too long or contains a NUL character.")
    return value


def conditions(filters: SearchFilters) -> tuple[list[sql.Composable], dict[str, Any]]:
    """SQL conditions on ``c`` (chunks) and ``f`` (files), and their parameters."""
    conds: list[sql.Composable] = []
    params: dict[str, Any] = {}
    language = _clean(filters.language, "language", 64)
    if language:
        conds.append(sql.SQL("c.language = %(f_language)s"))
        params["f_language"] = language.lower()
    ext = _clean(filters.file_type, "file type", 32)
    if ext:
        suffix = "." + ext.lstrip(".").lower()
        conds.append(sql.SQL("lower(right(f.path, %(f_ext_len)s)) = %(f_ext)s"))
        params.update(f_ext=suffix, f_ext_len=len(suffix))
    prefix = _clean(filters.path_prefix, "directory")
    if prefix:
        prefix = prefix.replace("\\", "/").lstrip("./") if prefix not in {".", "./"} else ""
        if prefix:
            conds.append(sql.SQL("starts_with(f.path, %(f_prefix)s)"))
            params["f_prefix"] = prefix
    glob = _clean(filters.path_glob, "path glob")
    if glob:
        conds.append(sql.SQL("f.path ~ %(f_glob)s"))
        params["f_glob"] = glob_to_regex(glob.replace("\\", "/"))
    return conds, params
