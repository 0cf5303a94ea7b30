"""The ``codebase-mcp`` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from codebase_mcp.core import untrusted
from codebase_mcp.domain import SearchFilters
from codebase_mcp.errors import CodebaseError, InvalidInput, NotFound
from codebase_mcp.logging_setup import setup_logging
from codebase_mcp.runtime import open_runtime
from codebase_mcp.settings import Settings
from codebase_mcp.storage import repo_store
from codebase_mcp.storage.embedded import release_embedded

app = typer.Typer(
    name="codebase-mcp",
    help="Index code repositories into PostgreSQL + pgvector and search them; serve them over MCP.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("codebase_mcp.cli")
T = TypeVar("T")

ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project the repository belongs to.")]


def _run(make: Callable[[Settings], Coroutine[Any, Any, T]], *, verbose: bool = False) -> T:
    """Run one command: user errors become a message and exit code 2 (bad input) or 1."""
    try:
        settings = Settings()
    except Exception as exc:  # pydantic validation of environment variables
        err.print(f"[red]error:[/] invalid setting: {exc}")
        raise typer.Exit(2) from None
    log_file = setup_logging(settings.home, verbose=verbose)
    try:
        return asyncio.run(make(settings))
    except (InvalidInput, NotFound) as exc:
        err.print(f"[red]error:[/] {exc.message}", highlight=False)
        raise typer.Exit(2) from None
    except CodebaseError as exc:
        err.print(f"[red]error:[/] {exc.message}", highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("interrupted; what was committed stays indexed.")
        raise typer.Exit(130) from None
    except Exception as exc:
        log.exception("internal error")
        where = f" Details are in {log_file}." if log_file else ""
        err.print(f"[red]internal error:[/] {type(exc).__name__}: {exc}.{where}", highlight=False)
        raise typer.Exit(1) from None


@app.command()
def index(
    path: Annotated[str, typer.Argument(help="Root directory of the repository.")],
    project: ProjectOpt = "default",
    force: Annotated[bool, typer.Option("--force", help="Re-read and re-embed every file.")] = False,
    no_embed: Annotated[bool, typer.Option("--no-embed", help="Store text and keyword index only.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Index (or re-index, incrementally) a repository."""

    from codebase_mcp.cli.progress import progress_reporter  # rich.progress: only indexing shows one

    async def go(settings: Settings) -> None:
        async with open_runtime(settings) as rt:
            with progress_reporter(err) as report:
                state = await rt.indexer.index(
                    path, project_id=project, force=force, progress=report, embed=not no_embed
                )
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(state.skip_reasons.items())) or "none"
        out.print(
            f"indexed {path}: {state.files_indexed} files written, {state.files_unchanged} unchanged, "
            f"{state.files_deleted} removed, {state.chunks_created} chunks, "
            f"{state.chunks_embedded} embedded ({state.embeddings_from_cache} from cache); "
            f"skipped: {skipped}",
            highlight=False,
        )

    _run(go, verbose=verbose)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Natural-language description or identifier.")],
    project: ProjectOpt = "default",
    repo: Annotated[str | None, typer.Option("--repo", "-r", help="Repository id, path or name.")] = None,
    language: Annotated[str | None, typer.Option("--language", "-l")] = None,
    file_type: Annotated[str | None, typer.Option("--type", "-t", help="File extension, e.g. py.")] = None,
    directory: Annotated[str | None, typer.Option("--path", help="Path prefix inside the repository.")] = None,
    glob: Annotated[str | None, typer.Option("--glob", help="Path glob, e.g. 'src/**/*.ts'.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=50)] = 10,
    mode: Annotated[str, typer.Option(help="hybrid, keyword or dense.")] = "hybrid",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Search indexed code."""
    if mode not in {"hybrid", "keyword", "dense"}:
        err.print("[red]error:[/] --mode must be hybrid, keyword or dense.")
        raise typer.Exit(2)

    async def go(settings: Settings) -> None:
        async with open_runtime(settings, load_model=mode != "keyword") as rt:
            filters = SearchFilters(repo, language, file_type, directory, glob)
            result = await rt.search.search(query, project_id=project, filters=filters, limit=limit, mode=mode)  # type: ignore[arg-type]
        if as_json:
            payload = {
                "query": result.query,
                "total_count": result.total_count,
                "latency_ms": result.latency_ms,
                "results": [h.to_dict() for h in result.hits],
            } | ({"warning": result.warning} if result.warning else {})
            sys.stdout.write(json.dumps(payload, indent=2) + "\n")
            return
        if result.warning:
            err.print(f"[yellow]note:[/] {escape(result.warning)}", highlight=False)
        if not result.hits:
            out.print("no results")
            return
        for n, hit in enumerate(result.hits, 1):
            # paths, symbols and names come from the repository: never let them act as markup
            symbol = f" {escape(hit.symbol)}" if hit.symbol else ""
            out.print(
                f"[bold]{n}. {escape(hit.path)}:{hit.start_line}-{hit.end_line}[/]{symbol} "
                f"[dim]({hit.kind}, {hit.language}, {escape(hit.repository)}, score {hit.score:.3f})[/]",
                highlight=False,
            )
            snippet = hit.content.splitlines()[:12]
            for line in snippet:
                out.print("    " + line, highlight=False, markup=False)
            if len(hit.content.splitlines()) > 12 or hit.truncated:
                out.print("    …", highlight=False)
        out.print(f"[dim]{len(result.hits)} of {result.total_count} candidates in {result.latency_ms} ms[/]")

    _run(go)


@app.command()
def repos(
    project: Annotated[str | None, typer.Option("--project", "-p", help="Only this project.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List indexed repositories."""

    async def go(settings: Settings) -> None:
        async with open_runtime(settings) as rt, rt.db.connection() as conn:
            rows = await repo_store.list_repositories(conn, project)
        if as_json:
            sys.stdout.write(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
            return
        if not rows:
            out.print("no repositories indexed yet: run `codebase-mcp index PATH`")
            return
        # three short lines per repository: readable at 80 columns whatever the path's length
        for r in rows:
            repo = r.repository
            last = repo.last_indexed_at.strftime("%Y-%m-%d %H:%M") if repo.last_indexed_at else "never"
            out.print(f"[bold]{repo.id}  {escape(repo.name)}[/bold]  (project {escape(repo.project_id)})")
            out.print(f"    {escape(repo.root_path)}", highlight=False)
            out.print(
                f"    {r.files} files, {r.chunks} chunks, {r.embedded} embedded "
                f"({100.0 * r.embedded / max(r.chunks, 1):.0f}%), {r.skipped} skipped, {last}",
                highlight=False,
            )

    _run(go)


@app.command()
def forget(
    repository: Annotated[str, typer.Argument(help="Repository id, path or name.")],
    project: ProjectOpt = "default",
) -> None:
    """Remove a repository and everything indexed from it."""

    async def go(settings: Settings) -> None:
        async with open_runtime(settings) as rt, rt.db.connection() as conn:
            repo = await repo_store.find_repository(conn, project, _repo_ref(repository))
            await repo_store.forget_repository(conn, repo.id)
        out.print(f"forgot {escape(repo.root_path)} (id {repo.id})", highlight=False)

    _run(go)


@app.command()
def skipped(
    repository: Annotated[str, typer.Argument(help="Repository id, path or name.")],
    project: ProjectOpt = "default",
    reason: Annotated[str | None, typer.Option(help="Only this reason.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show what the last index of a repository left out, and why."""

    async def go(settings: Settings) -> None:
        async with open_runtime(settings) as rt, rt.db.connection() as conn:
            repo = await repo_store.find_repository(conn, project, _repo_ref(repository))
            rows = await repo_store.skipped_files(conn, repo.id)
        if reason:
            rows = [r for r in rows if r.reason == reason]
        if as_json:
            sys.stdout.write(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
            return
        for why, n in sorted(Counter(r.reason for r in rows).items()):
            out.print(f"{why}: {n}", highlight=False)
        for r in rows:
            out.print(f"  {r.reason:<24} {untrusted.clean(r.path, 1000)}", highlight=False, markup=False)

    _run(go)


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show the database in use and what is indexed."""

    async def go(settings: Settings) -> None:
        async with open_runtime(settings) as rt, rt.db.connection() as conn:
            row: dict[str, Any] = asdict(await repo_store.database_status(conn))
        row["database"] = "embedded" if rt.db.embedded else "external"
        row["data_dir"] = str(settings.home) if rt.db.embedded else None
        row["embedding_model"] = f"{rt.model.name} ({rt.model.dimension} dimensions)"
        if as_json:
            sys.stdout.write(json.dumps(row, indent=2) + "\n")
            return
        for key, value in row.items():
            out.print(f"{key:<16} {value}", highlight=False)

    _run(go)


@app.command()
def serve(
    transport: Annotated[str, typer.Option(help="stdio or http (streamable HTTP).")] = "stdio",
    host: Annotated[str, typer.Option(help="HTTP bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8765,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Do not run a job worker in-process.")] = False,
) -> None:
    """Run the MCP server (stdio by default: stdout carries only MCP messages)."""
    try:
        settings = Settings()
    except Exception as exc:  # pydantic validation of environment variables
        err.print(f"[red]error:[/] invalid setting: {exc}")
        raise typer.Exit(2) from None
    if no_worker:
        settings.run_worker = False
    setup_logging(settings.home)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_now)
    _serve(settings, transport, host, port)


def _exit_now(signum: int, _frame: object) -> None:
    """SIGTERM or SIGINT of ``serve`` (a process manager, an MCP client closing its server, Ctrl-C):
    exit at once, and stop the embedded PostgreSQL if no other process uses it. A graceful shutdown
    would wait on the stdio reader, which blocks until the client closes stdin. A job in flight loses
    its uncommitted batch only; the next start on this machine resumes it at once (its worker's PID is
    gone), other machines after the heartbeat timeout."""
    log.info("server stopped by %s", signal.Signals(signum).name)
    release_embedded()
    logging.shutdown()
    os._exit(0)


def _serve(settings: Settings, transport: str, host: str, port: int) -> None:
    from codebase_mcp.server import http
    from codebase_mcp.server.app import build_server

    if transport == "stdio":
        build_server(settings).run("stdio")
    elif transport == "http":
        try:
            http.check_http_settings(settings, host)
        except InvalidInput as exc:
            err.print(f"[red]error:[/] {exc.message}", highlight=False)
            raise typer.Exit(2) from None
        server = build_server(settings, http=http.auth_settings(settings, host, port))
        server.run(
            "streamable-http",
            host=host,
            port=port,
            transport_security=http.transport_security(settings, host),
            max_request_body_size=settings.http_max_body_bytes,
        )
    else:
        err.print("[red]error:[/] --transport must be stdio or http.")
        raise typer.Exit(2)


@app.command()
def worker() -> None:
    """Run a standalone job worker against the configured database."""
    from codebase_mcp.jobs.worker import Worker

    async def go(settings: Settings) -> None:
        async with open_runtime(settings) as rt:
            w = Worker(rt)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                # stop claiming, finish or roll back the batch in flight, hand the job back (resumable)
                loop.add_signal_handler(sig, w.stop)
            log.info("worker %s started", w.worker_id)
            await w.run()
            log.info("worker %s stopped", w.worker_id)

    _run(go)


def _repo_ref(value: str) -> str:
    path = Path(value).expanduser()
    if path.is_dir():
        return str(path.resolve())
    return value


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
