"""Two exception families that never mix.

``CodebaseError`` and its subclasses are for people: the message says what was wrong and what to do,
and ``code`` is a stable identifier that MCP clients receive with it (``invalid_input: ...``). The CLI
prints the message; the server returns it as the tool error.

``Signal`` and its subclasses are control flow between our own layers (a job was cancelled, taken
over, or ran out of time). They are caught by the job worker and never shown to anyone as such, so
an ``except CodebaseError`` can never swallow one by accident.

Anything else that escapes is an internal error: logged with its traceback; the user sees a short
generic message instead. Driver errors are translated into these types in one place
(``storage.database.translate``).
"""

from __future__ import annotations


class CodebaseError(Exception):
    """An error with a message that says what was wrong and what to do about it."""

    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)

    @property
    def message(self) -> str:
        return str(self.args[0])

    def for_client(self) -> str:
        """What an MCP client receives: the stable code, then the message."""
        return f"{self.code}: {self.message}"


class InvalidInput(CodebaseError):
    code = "invalid_input"


class NotFound(CodebaseError):
    code = "not_found"


class Conflict(CodebaseError):
    """The request clashes with what is stored (a model name reused with another dimension...)."""

    code = "conflict"


class DatabaseUnavailable(CodebaseError):
    """The database cannot be reached, or dropped the connection (it may be restarting)."""

    code = "database_unavailable"


class DatabaseMisconfigured(CodebaseError):
    """The database server answers but cannot serve us as it is set up (no pgvector, no right to
    install it): it will not heal by itself, so nothing retries it; the message says what to change."""

    code = "database_misconfigured"


class DatabaseFull(CodebaseError):
    code = "database_full"


class DatabaseReadOnly(CodebaseError):
    code = "database_read_only"


class EmbeddingError(CodebaseError):
    code = "embedding_error"


class DaemonError(CodebaseError):
    """The background daemon could not be started or reached."""

    code = "daemon_unavailable"


def error_for_code(code: str, message: str) -> CodebaseError:
    """The error of a stable code (one received from another process), with its message."""
    known: tuple[type[CodebaseError], ...] = (
        InvalidInput,
        NotFound,
        Conflict,
        DatabaseUnavailable,
        DatabaseMisconfigured,
        DatabaseFull,
        DatabaseReadOnly,
        EmbeddingError,
        DaemonError,
    )
    for cls in known:
        if cls.code == code:
            return cls(message)
    return CodebaseError(message)


class Signal(Exception):
    """Control flow between our layers; not an error for a user."""


class Cancelled(Signal):
    """The run was asked to stop (a cancel, or the worker shutting down) at a batch boundary."""


class LostOwnership(Signal):
    """This worker's attempt is no longer the job's current one: another worker took it over."""


class JobTimedOut(Signal):
    """The job ran past its time limit; the message says so for the job's record."""
