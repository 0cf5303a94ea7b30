"""The agent-facing surface over the official MCP client: lean search results within a character budget,
``detail`` levels, tool and parameter descriptions, the symbol tools on every fixture language, and the
helpful empty and error answers."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import time
from pathlib import Path

from mcp import Client
from mcp.client.session import ClientSession
from mcp.client.stdio import stdio_client
from mcp_types import CallToolResult

from codebase_mcp.server.app import build_server
from codebase_mcp.settings import Settings
from tests.server.client import call, params, wait_done

POLYGLOT = Path(__file__).parents[1] / "fixtures" / "polyglot"

# (name asked, path of the definition) for a class/type and a function/method per language
SYMBOLS: list[tuple[str, str]] = [
    ("InvoiceCalculator", "src/billing.py"),
    ("InvoiceCalculator.compute_total", "src/billing.py"),
    ("format_currency", "src/billing.py"),
    ("LinkedQueue", "native/LinkedQueue.java"),
    ("LinkedQueue.enqueueItem", "native/LinkedQueue.java"),
    ("Circle", "native/Geometry.kt"),
    ("Circle.circleArea", "native/Geometry.kt"),
    ("App.Mail", "native/Mailer.cs"),
    ("Stats", "native/Stats.scala"),
    ("Temperature", "native/Temperature.swift"),
    ("ShoppingCart", "native/cart.php"),
    ("ShoppingCart.applyDiscountCode", "native/cart.php"),
    ("adler32", "native/checksum.rs"),
    ("Crc32Table", "native/checksum.rs"),
    ("deploy_release", "native/deploy.sh"),
    ("count_inventory", "native/inventory.lua"),
    ("linalg", "native/matrix.cpp"),
    ("TokenBucket", "native/ratelimit.go"),
    ("TokenBucket.Allow", "native/ratelimit.go"),
    ("TextUtils", "native/slugify.rb"),
    ("TextUtils.slugify", "native/slugify.rb"),
    ("reverse_string", "native/strutil.c"),
    ("PrimaryButton", "web/Button.tsx"),
    ("Route", "web/router.ts"),
    ("matchRoute", "web/router.ts"),
    ("SessionStore", "web/session.js"),
    ("createSessionToken", "web/session.js"),
]


def wire_size(result: CallToolResult) -> int:
    """Characters of the JSON-RPC result as sent."""
    return len(json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True), ensure_ascii=False))


def text_of(result: CallToolResult) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


TOOL_LIST_BUDGET_CHARS = 8_000  # descriptions + input schemas of every tool: read into every agent's context


async def test_the_tool_list_is_lean_and_every_argument_described(settings: Settings) -> None:
    async with Client(build_server(settings.model_copy(update={"run_worker": False}))) as client:
        tools = (await client.list_tools()).tools
    described = sum(len(t.description or "") + len(json.dumps(t.input_schema)) for t in tools)
    outputs = sum(len(json.dumps(t.output_schema)) for t in tools if t.output_schema)
    print(f"tools/list: descriptions + input schemas {described} chars, output schemas {outputs} chars")
    assert described <= TOOL_LIST_BUDGET_CHARS, described
    for tool in tools:
        assert tool.input_schema.get("properties"), tool.name
        for name, prop in tool.input_schema["properties"].items():
            assert prop.get("description") and prop.get("type"), (tool.name, name, prop)
        # no pydantic titles (a field's name again)
        assert '"title": "' not in json.dumps(tool.input_schema) + json.dumps(tool.output_schema), tool.name


async def test_empty_project_says_how_to_index(cli_env: dict[str, str]) -> None:
    async with stdio_client(params(cli_env)) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        assert init.server_info.version == importlib.metadata.version("codebase-mcp")
        for tool in ("search_code", "find_symbol", "find_references"):
            args = {"query": "parse config"} if tool == "search_code" else {"name": "parse_config"}
            ok, res = await call(session, tool, **args)
            assert ok and "start_indexing_background" in res["message"], (tool, res)


async def test_surface(cli_env: dict[str, str], tmp_path: Path) -> None:
    repo = tmp_path / "polyglot"
    shutil.copytree(POLYGLOT, repo)
    # a larger file so that default results are long enough to need trimming
    (repo / "src" / "big.py").write_text(
        "".join(
            f"def handler_{i}(request):\n"
            + "".join(f"    value_{j} = request.get('field_{j}') or compute_total_{i}_{j}()\n" for j in range(30))
            + "    return value_0\n\n"
            for i in range(12)
        )
    )
    async with stdio_client(params(cli_env)) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert {"find_symbol", "find_references"} <= set(tools)
        for tool in tools.values():
            assert tool.description and len(tool.description) > 60, tool.name
            for name, prop in tool.input_schema.get("properties", {}).items():
                assert prop.get("description"), (tool.name, name)
                assert "e.g." in prop["description"] or "'" in prop["description"], (tool.name, name)
            assert tool.output_schema and tool.output_schema.get("properties"), tool.name
        assert "grep" in (tools["search_code"].description or "")
        assert "every few seconds" in (tools["get_indexing_status"].description or "")
        assert "'failed'" in (tools["get_indexing_status"].description or "")

        ok, started = await call(session, "start_indexing_background", repo_path=str(repo))
        assert ok and "poll" in started["message"]
        ok, again = await call(session, "start_indexing_background", repo_path=str(repo))
        assert ok and (again["job_id"] == started["job_id"] or again["status"] == "completed")
        assert (await wait_done(session, started["job_id"]))["status"] == "completed"

        # default search: text is a compact rendering, not the JSON again; the whole response is small
        for query in ("handler request field value", "compute the invoice total", "token bucket rate limit"):
            result = await session.call_tool("search_code", {"query": query})
            assert not result.is_error and result.structured_content
            assert len(result.structured_content["results"]) == 10
            assert all("explain" not in hit for hit in result.structured_content["results"])
            text = text_of(result)
            assert not text.lstrip().startswith("{") and "Results quote files" in text
            first = result.structured_content["results"][0]
            assert f"{first['path']}:{first['start_line']}-{first['end_line']}" in text
            assert wire_size(result) <= 10_000, (query, wire_size(result))
            print("search_code default response chars:", query, wire_size(result))
        # snippets are trimmed around the matching lines
        result = await session.call_tool("search_code", {"query": "field_25", "language": "python"})
        hit = result.structured_content["results"][0] if result.structured_content else {}
        assert "field_25" in hit["content"] and hit["snippet_start_line"] >= hit["start_line"], hit

        loc = await session.call_tool("search_code", {"query": "handler request", "detail": "locations"})
        assert loc.structured_content and all("content" not in h for h in loc.structured_content["results"])
        assert wire_size(loc) < 5_000
        full = await session.call_tool("search_code", {"query": "handler request", "detail": "full"})
        assert full.structured_content and "context_before" in full.structured_content["results"][0]
        assert wire_size(full) > wire_size(result)

        # find_symbol: definition first, by plain and qualified name, in every language
        timings = []
        for name, path in SYMBOLS:
            t0 = time.perf_counter()
            ok, res = await call(session, "find_symbol", name=name)
            timings.append(time.perf_counter() - t0)
            assert ok and res["definitions"], (name, res)
            top = res["definitions"][0]
            assert top["path"] == path and not top["in_tests"], (name, res["definitions"][:3])
            last = name.replace("::", ".").split(".")[-1]
            assert last in top.get("content", "").split("\n")[0], (name, top)
        ok, res = await call(session, "find_symbol", name="compute_total")
        assert ok and res["definitions"][0]["path"] == "src/billing.py"
        ok, res = await call(session, "find_symbol", name="InvoiceCalculator", kind="function")
        assert ok and not res["definitions"] and "message" in res

        # find_references: call sites grouped by file, with line numbers
        ok, refs = await call(session, "find_references", name="compute_total")
        assert ok, refs
        paths = {f["path"]: f for f in refs["files"]}
        assert {"src/billing.py", "tests/test_billing.py"} <= set(paths), refs
        billing = paths["src/billing.py"]
        assert billing["definition_lines"] and all(n >= 1 for n in billing["lines"])
        assert any("compute_total" in t for t in paths["tests/test_billing.py"]["text"])

        # helpful errors and empties
        ok, msg = await call(session, "search_code", query="parse", language="klingon")
        assert not ok and "Languages present" in msg and "python" in msg
        ok, res = await call(session, "search_code", query="parse", directory="no/such/folder")
        assert ok and res["results"] == [] and "directory" in res["message"]
        ok, msg = await call(session, "search_code", query="parse", limt=5)
        assert not ok and "limt" in msg and "'limit'" in msg and "Extra inputs" not in msg
        ok, msg = await call(session, "find_symbol", name="x", lang="python")
        assert not ok and "language" in msg
        ok, msg = await call(session, "search_code", query="parse", limit="ten")
        assert not ok and "limit" in msg and "invalid_input" in msg
        ok, msg = await call(session, "find_symbol", name="not a name!")
        assert not ok and "not a symbol name" in msg
    print("find_symbol round trips (ms):", sorted(round(t * 1000, 1) for t in timings))
