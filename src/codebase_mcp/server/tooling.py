"""How a tool function becomes an MCP tool: one error wrapper (``guarded``), arguments that refuse
unknown names, lean published schemas, and argument errors an agent can act on (``CodebaseServer``)."""

from __future__ import annotations

import difflib
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, InputRequiredResult, ToolAnnotations
from pydantic import ValidationError

from codebase_mcp.core import untrusted
from codebase_mcp.errors import CodebaseError, DatabaseUnavailable
from codebase_mcp.server.schemas import lean_schema
from codebase_mcp.server.state import app_of

log = logging.getLogger(__name__)
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
WRITES = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True)

P = ParamSpec("P")
T = TypeVar("T")
ToolFunction = Callable[..., Awaitable[Any]]
# a tool: an ``async def`` taking ``ctx: Context``, whose docstring is its description, and what it does
ToolSpec = tuple[ToolFunction, ToolAnnotations]


def guarded(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Every tool runs through this: a dropped database connection is retried once on a fresh one
    (restarting the embedded server if it stopped), our errors reach the client as their code and
    message, anything else is logged and reported as an internal error."""

    @functools.wraps(fn)
    async def tool(*args: P.args, **kwargs: P.kwargs) -> T:
        ctx = kwargs["ctx"]
        assert isinstance(ctx, Context)
        try:
            try:
                return await fn(*args, **kwargs)
            except DatabaseUnavailable:
                await app_of(ctx).runtime.db.recover()
                return await fn(*args, **kwargs)
        except DatabaseUnavailable as exc:
            log.warning("database unavailable: %s", exc.message[:300])
            raise ToolError(exc.for_client()) from None
        except CodebaseError as exc:
            raise ToolError(exc.for_client()) from None
        except Exception as exc:
            log.exception("tool failed")
            raise ToolError(
                f"internal_error: Internal error ({type(exc).__name__}); details are in the server log."
            ) from None

    return tool


def make_tool(fn: ToolFunction, annotations: ToolAnnotations) -> Tool:
    """``fn`` as a tool, through ``guarded``. A misspelt argument (``limt=5``) is an error, not silently
    ignored: its argument model forbids extra fields, and its published schema says
    ``additionalProperties: false`` (the SDK has no option for this; it validates with the model the
    tool holds, so tightening it before the tool is registered takes effect). Both published schemas
    are written shortly (``schemas.lean_schema``): tools/list is read into every agent's context."""
    # one line per paragraph: the docstring's indentation is noise in an agent's context
    description = " ".join((fn.__doc__ or "").split())
    tool = Tool.from_function(guarded(fn), description=description, annotations=annotations)
    model = tool.fn_metadata.arg_model
    model.model_config["extra"] = "forbid"
    model.model_rebuild(force=True)
    tool.parameters = lean_schema(model.model_json_schema(by_alias=True), nullable=False)
    if tool.fn_metadata.output_schema is not None:
        tool.fn_metadata.output_schema = lean_schema(tool.fn_metadata.output_schema, nullable=True)
    return tool


class CodebaseServer(MCPServer[Any]):
    """The SDK's server with argument errors an agent can act on: an unknown argument is named with the
    valid ones, and a wrong value names the argument and what it must be (instead of pydantic's raw
    report, which also echoes the value back). Its tools are given at construction (the SDK's public
    ``tools=``), which is how it knows their argument schemas without reaching into the SDK."""

    def __init__(self, name: str, *, tools: Sequence[Tool], **kwargs: Any) -> None:
        super().__init__(name, tools=list(tools), **kwargs)
        self.argument_schemas: dict[str, dict[str, Any]] = {tool.name: tool.parameters for tool in tools}

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context | None = None
    ) -> CallToolResult | InputRequiredResult:
        schema = self.argument_schemas.get(name)
        if schema is not None:
            valid = list(schema.get("properties", {}))
            unknown = [key for key in arguments if key not in valid]
            if unknown:
                names = ", ".join(repr(untrusted.clean(k, 60)) for k in unknown[:5])
                hint = "".join(
                    f" Did you mean {close[0]!r} instead of {untrusted.clean(k, 60)!r}?"
                    for k in unknown[:5]
                    if (close := difflib.get_close_matches(k, valid, n=1))
                )
                raise ToolError(
                    f"invalid_input: {name} has no argument {names}.{hint} Its arguments are: {', '.join(valid)}."
                )
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError) and schema is not None:
                raise ToolError(_argument_errors(name, exc.__cause__, schema)) from None
            raise


FIRST_SENTENCE = re.compile(r"(?<!e\.g)\. ")  # the end of a description's first sentence ("e.g. x" goes on)


def _argument_errors(tool: str, error: ValidationError, schema: dict[str, Any]) -> str:
    problems = []
    for err in error.errors()[:5]:
        loc = ".".join(str(part) for part in err["loc"]) or "arguments"
        top = str(err["loc"][0]) if err["loc"] else ""
        described = schema.get("properties", {}).get(top, {}).get("description", "")
        example = f" ({FIRST_SENTENCE.split(described)[0][:160]})" if described else ""
        problems.append(f"{loc}: {err['msg']}{example}")
    return f"invalid_input: bad arguments for {tool}: " + "; ".join(problems)
