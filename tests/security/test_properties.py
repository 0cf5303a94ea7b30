"""Property-based tests (hypothesis) over what clients control: repository paths, queries, filters
and job ids. Whatever comes in, the answer is a result or a clear InvalidInput, never a crash."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codebase_mcp.core.tokens import query_terms
from codebase_mcp.core.validation import parse_job_id, printable, validate_client_path
from codebase_mcp.domain import SearchFilters
from codebase_mcp.errors import InvalidInput, NotFound
from codebase_mcp.search.engine import check_limit, check_query
from codebase_mcp.storage.search_store import conditions, glob_to_regex

HOSTILE = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(list("./\\%2e~$*?[]'\";-_ \x00\u202e\ud800")), max_size=40),
    st.sampled_from(
        [
            "../../etc/passwd",
            "/tmp/../etc",
            "%2e%2e/%2e%2e/etc",
            "..\\..\\windows",
            "/etc/passwd",
            "/dev/null",
            "~",
            "' OR '1'='1",
            "; DROP TABLE chunks; --",
            "%",
            "_",
            "\\",
        ]
    ),
)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(HOSTILE)
def test_client_paths_are_absolute_directories_without_traversal_or_refused(raw: str) -> None:
    try:
        root = validate_client_path(raw)
    except InvalidInput as exc:
        assert exc.message and "Traceback" not in exc.message
        return
    assert root.is_absolute() and root.is_dir() and ".." not in root.parts
    assert os.path.isabs(raw) and ".." not in Path(raw).parts


@FAST
@given(st.text(max_size=3000))
def test_queries_are_accepted_or_refused_clearly(query: str) -> None:
    try:
        cleaned = check_query(query)
    except InvalidInput as exc:
        assert exc.message
        return
    assert cleaned.strip() and len(cleaned) <= 2000 and "\x00" not in cleaned
    assert all(re.fullmatch(r"[a-z0-9_]+", t) for t in query_terms(cleaned)), "terms are plain words"


@FAST
@given(st.one_of(st.integers(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=5), st.none()))
def test_limits_are_whole_numbers_in_range(limit: object) -> None:
    try:
        value = check_limit(limit)  # type: ignore[arg-type]
    except InvalidInput:
        return
    assert isinstance(value, int) and 1 <= value <= 50


@FAST
@given(HOSTILE, HOSTILE, HOSTILE, HOSTILE)
def test_filters_become_parameters_never_sql(language: str, ext: str, prefix: str, glob: str) -> None:
    try:
        conds, params = conditions(SearchFilters(language=language, file_type=ext, path_prefix=prefix, path_glob=glob))
    except InvalidInput:
        return
    rendered = " ".join(repr(c) for c in conds)
    for value in (language, ext, prefix, glob):
        if len(value.strip()) > 3:
            assert value.strip() not in rendered, "a filter value reached the SQL text"
    assert all(isinstance(v, str | int) for v in params.values())


@FAST
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60))
def test_glob_regex_is_valid_and_matches_literal_paths(glob: str) -> None:
    pattern = glob_to_regex(glob)
    compiled = re.compile(pattern)
    if not any(ch in glob for ch in "*?"):
        assert compiled.fullmatch(glob)


@FAST
@given(HOSTILE)
def test_job_ids_are_uuids_or_refused(raw: str) -> None:
    try:
        parsed = parse_job_id(raw)
    except (InvalidInput, NotFound) as exc:
        assert "not a job id" in exc.message
        return
    assert isinstance(parsed, uuid.UUID)


@FAST
@given(st.text())
def test_anything_can_be_stored_as_text(raw: str) -> None:
    out = printable(raw, 100)
    assert "\x00" not in out
    out.encode("utf-8")  # no lone surrogates left
