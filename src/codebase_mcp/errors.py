"""The one exception type whose message is meant for the user (CLI) or the client (MCP).

Anything else that escapes is an internal error: it is logged with its traceback and the user
sees a short generic message instead.
"""

from __future__ import annotations


class CodebaseError(Exception):
    """An error with a message that says what was wrong and what to do about it."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0])


class InvalidInput(CodebaseError):
    code = "invalid_input"


class NotFound(CodebaseError):
    code = "not_found"


class DatabaseUnavailable(CodebaseError):
    code = "database_unavailable"


class EmbeddingError(CodebaseError):
    code = "embedding_error"


class DatabaseFull(CodebaseError):
    code = "database_full"


class DatabaseReadOnly(CodebaseError):
    code = "database_read_only"
