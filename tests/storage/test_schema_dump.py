"""docs/schema.sql is what the migrations add up to: a dump of the test session's migrated database
equals the committed file byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from codebase_mcp.storage.schema_dump import REGENERATE, SCHEMA_FILE, dump_schema, normalise

ROOT = Path(__file__).parents[2]


def test_schema_file_is_current(database_url: str) -> None:
    committed = (ROOT / SCHEMA_FILE).read_text(encoding="utf-8")
    fresh = dump_schema(database_url)  # a copy of the session's template database: every migration applied
    assert fresh == committed, (
        f"{SCHEMA_FILE} is not what the migrations add up to: run `{REGENERATE}` from the repository root "
        "and commit the result"
    )


def test_normalise_drops_what_varies() -> None:
    dump = (
        "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc123\n\n"
        "-- Dumped from database version 18.6\n-- Dumped by pg_dump version 18.6\n\n"
        "SET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\n\n"
        "--\n-- Name: t; Type: TABLE; Schema: public; Owner: -\n--\n\n"
        "SET default_tablespace = '';\n\nSET default_table_access_method = heap;\n\n"
        "CREATE TABLE public.t (\n    id integer\n);\n\n\n"
        "--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc123\n\n"
    )
    body = normalise(dump).split("\n\n", 1)[1]  # after the header
    assert body == (
        "--\n-- Name: t; Type: TABLE; Schema: public; Owner: -\n--\n\nCREATE TABLE public.t (\n    id integer\n);\n"
    )


def test_normalise_refuses_an_unexpected_shape() -> None:
    with pytest.raises(ValueError):
        normalise("pg_dump: error: something else\n")
