"""The repository and session tools: what is indexed, forgetting a repository, the session's project."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, cast

from mcp.server.mcpserver import Context
from pydantic import Field

from codebase_mcp.core.validation import check_project_id
from codebase_mcp.errors import InvalidInput
from codebase_mcp.server.params import ProjectArg
from codebase_mcp.server.schemas import Forgotten, RepositoryList, RepositoryRecord, WorkingDirectory
from codebase_mcp.server.state import app_of
from codebase_mcp.server.tooling import DESTRUCTIVE, READ_ONLY, WRITES, ToolSpec
from codebase_mcp.storage import repo_store


async def list_repositories(ctx: Context, project_id: ProjectArg = None) -> RepositoryList:
    """Indexed repositories of a project: id, name, root path, file and chunk counts, embedding coverage
    and when each was last indexed."""
    app = app_of(ctx)
    project = await app.project(ctx, project_id, must_exist=True)
    async with app.runtime.db.connection() as conn:
        repos = await repo_store.list_repositories(conn, project)
    return {"repositories": [cast(RepositoryRecord, r.to_dict()) for r in repos]}


async def forget_repository(
    ctx: Context,
    repository: Annotated[
        str,
        Field(
            min_length=1,
            max_length=4096,
            description="Its id, root path or name, e.g. 'payments'.",
        ),
    ],
    project_id: ProjectArg = None,
) -> Forgotten:
    """Remove a repository and everything indexed from it (files on disk are not touched)."""
    app = app_of(ctx)
    project = await app.project(ctx, project_id, must_exist=True)
    async with app.runtime.db.connection() as conn:
        repo = await repo_store.find_repository(conn, project, repository)
        await repo_store.forget_repository(conn, repo.id)
    return {"forgotten": repo.root_path, "repository_id": repo.id}


async def set_working_directory(
    ctx: Context,
    directory: Annotated[
        str,
        Field(
            min_length=1,
            max_length=4096,
            description="Absolute path of the folder you work in, e.g. '/home/me/src/api'.",
        ),
    ],
) -> WorkingDirectory:
    """Use the project named in .codebase-mcp/config.json ({"project_id": "..."}) of this directory or a
    parent, for this session only; 'default' when there is none."""
    session = app_of(ctx).session(ctx)
    path = Path(directory)
    if not path.is_absolute() or not path.is_dir():
        raise InvalidInput(f"{directory[:200]!r} is not an absolute path to a directory.")
    for candidate in [path, *path.parents]:
        config = candidate / ".codebase-mcp" / "config.json"
        if config.is_file():
            try:
                data = json.loads(config.read_text(encoding="utf-8"))
                project = check_project_id(str(data["project_id"]))
            except (ValueError, KeyError, TypeError, OSError) as exc:
                raise InvalidInput(f'{config} is not valid: it needs {{"project_id": "..."}}.') from exc
            session.working_project = project
            return {"project_id": project, "config": str(config)}
    session.working_project = None
    return {"project_id": "default", "config": None}


# registered in this order (tools/list lists them so), each with what it does to the index
TOOLS: list[ToolSpec] = [
    (list_repositories, READ_ONLY),
    (forget_repository, DESTRUCTIVE),
    (set_working_directory, WRITES),
]
