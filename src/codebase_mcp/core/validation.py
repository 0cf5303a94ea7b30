"""Checks on what users and clients send: project ids, repository paths, job ids, free text that
must be storable. Each failure is an ``InvalidInput`` whose message says what to send instead."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

from codebase_mcp.errors import InvalidInput

PROJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_project_id(project_id: str) -> str:
    if not isinstance(project_id, str) or not PROJECT_ID.match(project_id):
        raise InvalidInput(
            f"Invalid project id {str(project_id)[:80]!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return project_id


def validate_root(path: str | os.PathLike[str]) -> Path:
    """An absolute, existing, readable directory, or an error that says which of these it is not."""
    raw = os.fspath(path)
    if not raw or not raw.strip():
        raise InvalidInput("The repository path is empty. Give the path of a directory to index.")
    if "\x00" in raw:
        raise InvalidInput("The repository path contains a NUL character.")
    shown = raw[:300].encode("utf-8", "backslashreplace").decode()
    try:
        candidate = Path(raw).expanduser()
        if not candidate.exists():
            raise InvalidInput(f"The path {shown} does not exist. Check the spelling, or give an absolute path.")
        if not candidate.is_dir():
            raise InvalidInput(f"The path {shown} is not a directory. Give the repository's root directory.")
        root = candidate.resolve()
    except (UnicodeError, ValueError, OSError) as exc:  # undecodable names, names too long, loops
        raise InvalidInput(f"The path {shown} cannot be used: {type(exc).__name__}.") from None
    if not os.access(root, os.R_OK | os.X_OK):
        raise InvalidInput(f"The directory {root} cannot be read (permission denied).")
    return root


def validate_client_path(raw: str) -> Path:
    """A repository path from a remote client: also absolute, without any ``..`` component."""
    if not isinstance(raw, str) or not os.path.isabs(raw) or ".." in Path(raw).parts:
        shown = str(raw)[:200].encode("utf-8", "backslashreplace").decode()
        raise InvalidInput(f"The path {shown!r} must be absolute and must not contain '..'.")
    return validate_root(raw)


def parse_job_id(job_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(job_id))
    except (ValueError, TypeError, AttributeError):
        raise InvalidInput(f"{str(job_id)[:80]!r} is not a job id: job ids are UUIDs.") from None


def printable(text: str, limit: int) -> str:
    """Text PostgreSQL can store whatever a client sent: no NUL, no lone surrogates, bounded."""
    return text[:limit].replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
