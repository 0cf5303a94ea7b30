"""The ``codebase-mcp`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from codebase_mcp.core import untrusted
from codebase_mcp.daemon import client as daemon_client
from codebase_mcp.daemon.paths import database_key
from codebase_mcp.domain import Progress, SearchFilters, SearchResponse
from codebase_mcp.errors import CodebaseError, DaemonError, InvalidInput, NotFound
from codebase_mcp.logging_setup import setup_logging
from codebase_mcp.search import freshness
from codebase_mcp.settings import Settings

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

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from codebase_mcp.runtime import Runtime


# The database driver, numpy and the model code are imported by the commands that use them, not at
# start: a search answered by the daemon needs none of them.
def open_runtime(settings: Settings, **kwargs: Any) -> AbstractAsyncContextManager[Runtime]:
    from codebase_mcp.runtime import open_runtime as open_it

    return open_it(settings, **kwargs)


def release_embedded() -> None:
    from codebase_mcp.storage.embedded import release_embedded as release

    release()


ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project the repository belongs to.")]


#: What a terminal, a process manager or a closed session sends to stop a command: each stops it with
#: its clean-up (the embedded PostgreSQL released, stopped when no other process uses it).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def _run(make: Callable[[Settings], Coroutine[Any, Any, T]], *, verbose: bool = False) -> T:
    """Run one command: user errors become a message and exit code 2 (bad input) or 1; a stop signal
    cancels the command, whose clean-up runs (a batch in flight rolls back: a later run redoes it)."""
    try:
        settings = Settings()
    except Exception as exc:  # pydantic validation of environment variables
        err.print(f"[red]error:[/] invalid setting: {escape(str(exc))}")
        raise typer.Exit(2) from None
    log_file = setup_logging(settings.home, verbose=verbose)
    received: list[int] = []

    async def until_stopped() -> T:
        main = asyncio.current_task()
        assert main is not None

        def stop(signum: int) -> None:
            if received:  # a second signal: stop waiting for the clean-up
                release_embedded()
                os._exit(128 + signum)
            received.append(signum)
            main.cancel()

        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, stop, sig)
        return await make(settings)

    try:
        return asyncio.run(until_stopped())
    except asyncio.CancelledError:
        if not received:
            raise
        name = signal.Signals(received[0]).name
        log.info("stopped by %s", name)
        with contextlib.suppress(Exception):  # the terminal may be gone (SIGHUP)
            err.print(f"stopped by {name}; what was committed stays indexed.")
        raise typer.Exit(128 + received[0]) from None
    except (InvalidInput, NotFound) as exc:
        err.print(f"[red]error:[/] {escape(exc.message)}", highlight=False)
        raise typer.Exit(2) from None
    except CodebaseError as exc:
        err.print(f"[red]error:[/] {escape(exc.message)}", highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("interrupted; what was committed stays indexed.")
        raise typer.Exit(130) from None
    except Exception as exc:
        log.exception("internal error")
        where = f" Details are in {log_file}." if log_file else ""
        err.print(f"[red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}.{escape(where)}", highlight=False)
        raise typer.Exit(1) from None
    finally:
        # the event loop's handlers are gone with it: a signal during the exit's own clean-up still
        # lets the clean-up (atexit: release the embedded server) run
        for sig in STOP_SIGNALS:
            signal.signal(sig, _exit_cleanly)


def _exit_cleanly(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@app.command()
def index(
    path: Annotated[str, typer.Argument(help="Root directory of the repository.")],
    project: ProjectOpt = "default",
    force: Annotated[bool, typer.Option("--force", help="Re-read and re-embed every file.")] = False,
    no_embed: Annotated[bool, typer.Option("--no-embed", help="Store text and keyword index only.")] = False,
    background: Annotated[
        bool,
        typer.Option("--background", "-b", help="Queue a job for the background daemon (started on demand); return."),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Index (or re-index, incrementally) a repository."""
    if background:
        if no_embed:
            err.print("[red]error:[/] --no-embed applies to foreground runs only.")
            raise typer.Exit(2)
        _run(lambda settings: _queue_job(settings, path, project, force), verbose=verbose)
        return

    async def go(settings: Settings) -> None:
        state = await _index_here(settings, path, project, force, not no_embed)
        # a running daemon watches the repository from now on, not from its next periodic look
        with contextlib.suppress(daemon_client.NotRunning, CodebaseError):
            await daemon_client.request(settings.home, "wake", timeout=5.0)
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(state.skip_reasons.items())) or "none"
        out.print(
            f"indexed {path}: {state.files_indexed} files written, {state.files_unchanged} unchanged, "
            f"{state.files_deleted} removed, {state.chunks_created} chunks, "
            f"{state.chunks_embedded} embedded ({state.embeddings_from_cache} from cache); "
            f"skipped: {skipped}",
            highlight=False,
        )

    _run(go, verbose=verbose)


async def _index_here(settings: Settings, path: str, project: str, force: bool, embed: bool) -> Progress:
    """A foreground run: in this process, recorded in the job table as kind ``foreground`` (listed by
    ``jobs``, cancellable by id), at normal CPU priority, with no time limit."""
    from codebase_mcp.cli.progress import progress_reporter  # rich.progress: only indexing shows one
    from codebase_mcp.core.validation import validate_root
    from codebase_mcp.domain import JobStatus
    from codebase_mcp.errors import Cancelled, LostOwnership, Signal
    from codebase_mcp.indexing.run import RecordedRun

    root = validate_root(path)  # a bad path is an input error: nothing to record
    async with open_runtime(settings) as rt:
        with progress_reporter(err) as report:
            run = RecordedRun.foreground(rt.db, settings, project, str(root), on_progress=report)
            outcome = await run.execute(
                lambda: rt.indexer.index(root, run=run, project_id=project, force=force, embed=embed)
            )
    if outcome.status is JobStatus.COMPLETED and outcome.progress is not None:
        return outcome.progress
    cause, job = outcome.cause, f"job {run.job.id}" if run.job is not None else "this run"
    if isinstance(cause, CodebaseError):
        raise cause
    if isinstance(cause, Cancelled):
        raise CodebaseError(f"Indexing was cancelled ({job}); what it stored stays indexed: run it again to continue.")
    if isinstance(cause, LostOwnership):
        raise CodebaseError(
            f"Indexing stopped ({job}): its record was ended while this process did not answer (paused?); "
            "what it stored stays indexed: run it again to continue."
        )
    if cause is None or isinstance(cause, Signal):
        raise CodebaseError(f"Indexing stopped ({job}): {outcome.message}.")
    raise cause  # a defect: reported as an internal error, its traceback in the log


async def _queue_job(settings: Settings, path: str, project: str, force: bool) -> None:
    from codebase_mcp.cli.background import queue_job

    queued = await queue_job(settings, path, project, force)
    already = "" if queued.created else " (a job for this repository was already active: this is that job)"
    out.print(f"job {queued.job.id} queued{already}; the daemon (pid {queued.daemon['pid']}) runs it.", highlight=False)
    out.print(f"follow it with: codebase-mcp jobs {queued.job.id}", highlight=False)


@app.command()
def init(
    path: Annotated[str, typer.Argument(help="A folder of the repository (its git top level is used).")] = ".",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change and start nothing.")
    ] = False,
    mcp_json: Annotated[
        bool, typer.Option("--mcp-json", help="Also register the server in the repository's .mcp.json (merged).")
    ] = False,
    no_index: Annotated[bool, typer.Option("--no-index", help="Do not queue an indexing job.")] = False,
    agents_file: Annotated[
        list[str] | None,
        typer.Option(
            "--agents-file",
            help="Instruction file to write the block to (repeatable). Default: the existing AGENTS.md and "
            "CLAUDE.md, else a new CLAUDE.md.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Set a repository up for AI assistants: a usage block in AGENTS.md/CLAUDE.md, the server registered
    with Claude Code (.mcp.json on request), and an indexing job in the background. Safe to re-run."""
    from codebase_mcp.cli.init import init_repository

    async def go(settings: Settings) -> bool:
        report = await init_repository(
            settings, path, dry_run=dry_run, mcp_json=mcp_json, index=not no_index, chosen_files=agents_file
        )
        if as_json:
            sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
            return report.failed
        title = "dry run, nothing changed" if dry_run else "init"
        out.print(f"{title}: {escape(report.root)}", highlight=False)
        for step in report.steps:
            colour = "red" if step.failed else "dim" if step.action in {"unchanged", "already_registered"} else "green"
            out.print(f"  [{colour}]{step.step:<12}[/] {escape(step.message)}", highlight=False)
        for step in report.steps:
            if step.diff:
                out.print(step.diff, highlight=False, markup=False, end="")
        for note in report.notes:
            err.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
        return report.failed

    if _run(go):
        raise typer.Exit(1)


@app.command()
def jobs(
    job_id: Annotated[str | None, typer.Argument(help="One job's id; omitted: the most recent jobs.")] = None,
    project: Annotated[str | None, typer.Option("--project", "-p", help="Only this project.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=500)] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Index runs: one run's progress, or the most recent ones (kind: index, a queued job; foreground, an
    `index` run in its own process; sync, the daemon following edits)."""
    from codebase_mcp.storage import job_store
    from codebase_mcp.storage.database import open_database

    async def go(settings: Settings) -> None:
        db = await open_database(settings, max_size=2)
        try:
            async with db.connection() as conn:
                found = (
                    [await job_store.get_job(conn, job_id, project)]
                    if job_id
                    else await job_store.list_jobs(conn, project, None, limit)
                )
        finally:
            await db.close()
        records = [j.to_dict() for j in found]
        if as_json:
            sys.stdout.write(json.dumps(records[0] if job_id else records, indent=2, default=str) + "\n")
            return
        if not records:
            out.print("no jobs yet: `codebase-mcp index PATH --background` queues one")
        for r in records:
            out.print(
                f"[bold]{r['job_id']}[/]  {r['kind']:<10}  {r['status']}  {escape(str(r['repo_path']))}  "
                f"({r['project_id']})",
                highlight=False,
            )
            out.print(f"    {escape(str(r['status_message'] or ''))}", highlight=False)
            if r.get("error_message"):
                out.print(f"    [red]{escape(str(r['error_message']))}[/]", highlight=False)

    _run(go)


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
    explain: Annotated[
        bool, typer.Option("--explain", help="Show why each hit ranks where it does: per-arm scores, factors.")
    ] = False,
) -> None:
    """Search indexed code."""
    if mode not in {"hybrid", "keyword", "dense"}:
        err.print("[red]error:[/] --mode must be hybrid, keyword or dense.")
        raise typer.Exit(2)

    async def go(settings: Settings) -> None:
        filters = SearchFilters(repo, language, file_type, directory, glob)
        try:  # the running daemon has the model loaded and the pool open: ask it
            record = await daemon_client.request(
                settings.home,
                "search",
                database_key=database_key(settings.database_url),
                query=query,
                project=project,
                filters=asdict(filters),
                limit=limit,
                mode=mode,
                explain=explain,
            )
            result = SearchResponse.from_dict(record)
        except daemon_client.NotRunning:
            async with open_runtime(settings, load_model=mode != "keyword") as rt:
                result = await rt.search.search(
                    query,
                    project_id=project,
                    filters=filters,
                    limit=limit,
                    mode=mode,  # type: ignore[arg-type]
                    explain=explain,
                )
            if settings.daemon:  # the next search is answered by a daemon with the model loaded
                daemon_client.spawn(settings.home)
        if as_json:
            sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
            return
        if result.warning:
            err.print(f"[yellow]note:[/] {escape(result.warning)}", highlight=False)
        if stale := freshness.stale_note(result.freshness):  # "note: changes not yet indexed in ..."
            err.print(f"[yellow]note:[/]{escape(stale.removeprefix('note:'))}", highlight=False)
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
            if hit.explain is not None:
                why = "  ".join(f"{k} {v:g}" for k, v in hit.explain.items())
                out.print(f"    [dim]why: {escape(why)}[/]", highlight=False)
        out.print(f"[dim]{len(result.hits)} of {result.total_count} candidates in {result.latency_ms} ms[/]")

    _run(go)


RepoOpt = Annotated[str | None, typer.Option("--repo", "-r", help="Repository id, path or name.")]
LanguageOpt = Annotated[str | None, typer.Option("--language", "-l")]
PathOpt = Annotated[str | None, typer.Option("--path", help="Path prefix inside the repository.")]


async def _lookup_scope(conn: Any, project: str, filters: SearchFilters) -> list[int]:
    """The repositories a symbol lookup covers (all of the project's, or the one named)."""
    from codebase_mcp.storage import repo_store

    if filters.repository:
        return [(await repo_store.find_repository(conn, project, filters.repository)).id]
    return await repo_store.repository_ids(conn, project)


@app.command()
def symbol(
    name: Annotated[str, typer.Argument(help="Identifier or qualified name, e.g. Invoice.total.")],
    kind: Annotated[str | None, typer.Option("--kind", "-k", help="class, function, method, type or module.")] = None,
    project: ProjectOpt = "default",
    repo: RepoOpt = None,
    language: LanguageOpt = None,
    directory: PathOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=50)] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Where a name is defined (the MCP tool find_symbol): non-test code first."""

    async def go(settings: Settings) -> None:
        from codebase_mcp.search import symbols

        filters = SearchFilters(repo, language, None, directory)
        async with open_runtime(settings, load_model=False) as rt, rt.db.connection() as conn:
            defs = await symbols.find_definitions(
                conn, await _lookup_scope(conn, project, filters), filters, name, kind, limit
            )
        if as_json:
            sys.stdout.write(json.dumps({"definitions": [asdict(d) for d in defs]}, indent=2) + "\n")
            return
        if not defs:
            out.print(f"no definition of {escape(untrusted.clean(name, 100))!r}: try `codebase-mcp search` or `refs`")
        for d in defs:
            out.print(
                f"[bold]{escape(d.path)}:{d.line}-{d.end_line}[/] {escape(d.symbol)} "
                f"[dim]({d.kind}, {d.language}, {escape(d.repository)})[/]",
                highlight=False,
            )
            for line in d.content.splitlines()[:6]:
                out.print("    " + line, highlight=False, markup=False)

    _run(go)


@app.command()
def refs(
    name: Annotated[str, typer.Argument(help="Identifier; 'Parser.parse' is looked for as the word 'parse'.")],
    project: ProjectOpt = "default",
    repo: RepoOpt = None,
    language: LanguageOpt = None,
    directory: PathOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=200)] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Where an identifier occurs (the MCP tool find_references): one line each, by file."""

    async def go(settings: Settings) -> None:
        from codebase_mcp.search import symbols

        filters = SearchFilters(repo, language, None, directory)
        async with open_runtime(settings, load_model=False) as rt, rt.db.connection() as conn:
            lines, total = await symbols.find_references(
                conn, await _lookup_scope(conn, project, filters), filters, name, limit
            )
        if as_json:
            record = {"references": [asdict(r) for r in lines], "total_count": total}
            sys.stdout.write(json.dumps(record, indent=2) + "\n")
            return
        for r in lines:
            mark = "  [dim](definition)[/]" if r.definition else ""
            out.print(f"{escape(r.path)}:{r.line}: {escape(r.text)}{mark}", highlight=False)
        out.print(f"[dim]{len(lines)} of {total} lines[/]")

    _run(go)


@app.command()
def repos(
    project: Annotated[str | None, typer.Option("--project", "-p", help="Only this project.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List indexed repositories."""

    async def go(settings: Settings) -> None:
        from codebase_mcp.storage import repo_store

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
                f"    {r.files} files, {r.chunks} chunks ({r.keyword_only} keyword-only), {r.embedded} embedded "
                f"({r.to_dict()['coverage_percent'] or 0:.0f}%), {r.skipped} skipped, "
                f"last synced {last}{'' if repo.watch else ', not watched'}",
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
        from codebase_mcp.storage import repo_store

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
        from codebase_mcp.storage import repo_store

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
        from codebase_mcp.storage import repo_store

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
        err.print(f"[red]error:[/] invalid setting: {escape(str(exc))}")
        raise typer.Exit(2) from None
    if no_worker:
        settings.run_worker = False
    setup_logging(settings.home)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _exit_now)
    _serve(settings, transport, host, port)


def _exit_now(signum: int, _frame: object) -> None:
    """SIGTERM, SIGHUP or SIGINT of ``serve`` (a process manager, an MCP client closing its server, a
    closed terminal, Ctrl-C): exit at once, and stop the embedded PostgreSQL if no other process uses
    it. A graceful shutdown would wait on the stdio reader, which blocks until the client closes stdin.
    A job in flight loses its uncommitted batch only; the next start on this machine resumes it at once
    (its worker's PID is gone), other machines after the heartbeat timeout."""
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
            err.print(f"[red]error:[/] {escape(exc.message)}", highlight=False)
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


daemon_app = typer.Typer(
    help="The background daemon of the data directory: runs indexing jobs, keeps watched repositories in "
    "step with edits, answers CLI searches on a warm model. Started on demand; exits when idle.",
    no_args_is_help=True,
)
app.add_typer(daemon_app, name="daemon")


def _print_daemon(info: dict[str, Any] | None, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(info if info is not None else {"running": False}, indent=2) + "\n")
        return
    if info is None:
        out.print("daemon: not running (started on demand by `serve`, `index --background` and `search`)")
        return
    job = info["current_job"]
    out.print(
        f"daemon: running, pid {info['pid']}, since {info['started_at']}, {info['attached_servers']} MCP "
        f"server(s) attached, idle {info['idle_seconds']} s (exits after {info['idle_exit_seconds']:g} s idle)",
        highlight=False,
    )
    out.print(f"job: {escape(job['repo_path'])} ({job['job_id']})" if job else "job: none running", highlight=False)
    if not info["watching"]:
        out.print("watching: off (CODEBASE_MCP_WATCH=false)")
    for r in info["repositories"]:
        extra = f" - {escape(r['note'])}" if r["note"] else ""
        error = f" [red]last sync failed: {escape(r['last_error'])}[/]" if r["last_error"] else ""
        out.print(
            f"  {r['id']}  {escape(r['root_path'])}: {r['mode']}, last synced {r['last_synced_at'] or 'never'}"
            f"{extra}{error}",
            highlight=False,
        )


@daemon_app.command("status")
def daemon_status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Whether the daemon runs, what it runs and what it watches."""

    async def go(settings: Settings) -> None:
        _print_daemon(await daemon_client.status(settings.home), as_json)

    _run(go)


@daemon_app.command("start")
def daemon_start(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Start the daemon if it is not running."""

    async def go(settings: Settings) -> None:
        _print_daemon(await daemon_client.ensure_running(settings.home), as_json)

    _run(go)


@daemon_app.command("stop")
def daemon_stop(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0, help="Seconds to wait for it to hand its job back and exit.")
    ] = 60.0,
) -> None:
    """Stop the daemon: a job in flight is handed back at its next batch boundary and resumes on the
    next start."""

    async def go(settings: Settings) -> None:
        try:
            reply = await daemon_client.request(settings.home, "stop")
        except daemon_client.NotRunning:
            reply = None
        stopped = reply is None
        if reply is not None:
            # gone means its process has exited, the embedded PostgreSQL released, not just its socket
            deadline = time.monotonic() + timeout
            while not (stopped := not _alive(int(reply["pid"]))):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
        if as_json:
            sys.stdout.write(json.dumps({"was_running": reply is not None, "stopped": stopped}) + "\n")
        elif reply is None:
            out.print("daemon: not running")
        elif stopped:
            out.print(f"daemon (pid {reply['pid']}) stopped")
        if not stopped:
            raise DaemonError(
                f"The daemon (pid {reply['pid']}) was asked to stop but still runs after {timeout:g} s (it hands "
                "a job in flight back first); `codebase-mcp daemon status` shows whether it has stopped since."
            )

    _run(go)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


@daemon_app.command("run", hidden=True)
def daemon_run() -> None:
    """Run the daemon in this process (what `daemon start` launches, detached)."""
    from codebase_mcp.daemon import service

    try:
        settings = Settings()
    except Exception as exc:
        err.print(f"[red]error:[/] invalid setting: {escape(str(exc))}")
        raise typer.Exit(2) from None
    setup_logging(settings.home, stderr=False)
    try:
        code = asyncio.run(service.serve(settings))
    except CodebaseError as exc:
        log.error("daemon could not start: %s", exc.message)
        err.print(f"error: {escape(exc.message)}", highlight=False)
        raise typer.Exit(1) from None
    except Exception:
        log.exception("daemon failed")
        raise typer.Exit(1) from None
    finally:
        release_embedded()
    raise typer.Exit(code)


@app.command()
def watch(
    repository: Annotated[str, typer.Argument(help="Repository id, path or name.")],
    project: ProjectOpt = "default",
    off: Annotated[bool, typer.Option("--off", help="Stop following this repository's edits.")] = False,
) -> None:
    """Follow a repository's edits in the daemon (the default), or not (--off)."""

    async def go(settings: Settings) -> None:
        from codebase_mcp.storage import repo_store
        from codebase_mcp.storage.database import open_database

        db = await open_database(settings, max_size=2)
        try:
            async with db.connection() as conn:
                repo = await repo_store.find_repository(conn, project, _repo_ref(repository))
                await repo_store.set_watch(conn, repo.id, not off)
        finally:
            await db.close()
        state = "no longer watched" if off else "watched while the daemon runs"
        out.print(f"{escape(repo.root_path)}: {state}", highlight=False)

    _run(go)


@app.command()
def worker() -> None:
    """Run a standalone job worker against the configured database."""
    from codebase_mcp.jobs.worker import Worker

    async def go(settings: Settings) -> None:
        async with open_runtime(settings) as rt:
            w = Worker(rt)
            loop = asyncio.get_running_loop()
            for sig in STOP_SIGNALS:
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
