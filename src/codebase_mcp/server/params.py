"""The argument types tools share, with the descriptions tools/list publishes for them."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from codebase_mcp.server.schemas import Detail

ProjectArg = Annotated[
    str | None,
    Field(
        max_length=64,
        description="Project, e.g. 'acme-backend'. Omitted: the session's or 'default'.",
    ),
]
RepositoryArg = Annotated[
    str | None,
    Field(
        max_length=4096,
        description="Only this repository (id, root path or name), e.g. 'payments'.",
    ),
]
LanguageArg = Annotated[
    str | None,
    Field(max_length=64, description="Only this language, e.g. 'python' or 'typescript'."),
]
FileTypeArg = Annotated[str | None, Field(max_length=32, description="Only this file extension, e.g. 'py' or '.tsx'.")]
DirectoryArg = Annotated[
    str | None,
    Field(
        max_length=500,
        description="Only files under this repository-relative folder, e.g. 'src/api'.",
    ),
]
DetailArg = Annotated[
    Detail,
    Field(
        description="'locations' (cheapest: paths, lines, symbols), 'snippets' (lines around the match) or "
        "'full' (whole chunks, with context).",
    ),
]
JobIdArg = Annotated[
    str,
    Field(
        max_length=100,
        description="Job id from start_indexing_background, e.g. '0b9e4c1e-5d7a-4f43-9a51-2f0c3d1e8a77'.",
    ),
]
SymbolNameArg = Annotated[
    str,
    Field(
        min_length=1,
        max_length=300,
        description="Identifier or qualified name, e.g. 'parse_config', 'Invoice.total' or 'linalg::Matrix'.",
    ),
]
