"""The real CLI, as a subprocess, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import socketserver
import subprocess
import threading
import time
from asyncio.subprocess import PIPE
from pathlib import Path

from codebase_mcp.daemon.paths import DaemonPaths
from codebase_mcp.domain import JobPhase, JobStatus, RunKind
from codebase_mcp.storage import job_store, locks, repo_store
from codebase_mcp.storage.database import Database
from tests.conftest import cli_command


def run(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*cli_command(), *args], env=env, capture_output=True, text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def search_json(env: dict[str, str], query: str, *extra: str) -> list[dict[str, object]]:
    proc = run(env, "search", query, "--json", *extra)
    payload = json.loads(proc.stdout)
    assert payload["query"] == query and isinstance(payload["latency_ms"], float)
    results: list[dict[str, object]] = payload["results"]
    return results


def test_index_search_reindex_forget(cli_env: dict[str, str], polyglot: Path) -> None:
    (polyglot / ".env").write_text("API_TOKEN=supersecret-cli\n")
    (polyglot / "logo.bin").write_bytes(b"\x89PNG\x00\x00supersecret-bin")
    first = run(cli_env, "index", str(polyglot))
    assert "20 files written" in first.stdout and "secret 1" in first.stdout and "binary 1" in first.stdout

    hits = search_json(cli_env, "TokenBucket Allow")
    assert hits[0]["path"] == "native/ratelimit.go" and hits[0]["symbol"] == "TokenBucket.Allow"
    assert {"repository", "start_line", "end_line", "kind", "language", "score", "content"} <= set(hits[0])
    readable = run(cli_env, "search", "slugify title")
    assert "native/slugify.rb" in readable.stdout
    assert "why:" not in readable.stdout
    explained = run(cli_env, "search", "slugify title", "--explain")
    assert "why: " in explained.stdout and "fused " in explained.stdout and "prior " in explained.stdout
    why = search_json(cli_env, "TokenBucket Allow", "--explain")[0]["explain"]
    assert isinstance(why, dict) and why["definition"] == 1.0 and "keyword" in why
    assert not any("supersecret" in json.dumps(h) for h in search_json(cli_env, "supersecret API_TOKEN"))

    (polyglot / "native" / "slugify.rb").unlink()
    (polyglot / "src" / "taxes.py").write_text("def vat_for_country(code):\n    return 0.2\n")
    second = run(cli_env, "index", str(polyglot))
    assert "1 files written" in second.stdout and "1 removed" in second.stdout
    assert search_json(cli_env, "vat_for_country")[0]["path"] == "src/taxes.py"
    assert all(h["path"] != "native/slugify.rb" for h in search_json(cli_env, "slugify"))

    repos = json.loads(run(cli_env, "repos", "--json").stdout)
    assert len(repos) == 1 and repos[0]["files"] == 20 and repos[0]["embedded"] == repos[0]["chunks"]
    skipped = json.loads(run(cli_env, "skipped", str(polyglot), "--json").stdout)
    assert {"path": ".env", "reason": "secret"} in skipped

    status = json.loads(run(cli_env, "status", "--json").stdout)
    assert status["database"] == "external" and status["files"] == 20

    assert repos[0]["watch"] is True
    run(cli_env, "watch", str(polyglot), "--off")
    assert json.loads(run(cli_env, "repos", "--json").stdout)[0]["watch"] is False
    assert "not watched" in run(cli_env, "repos").stdout
    run(cli_env, "watch", str(polyglot))
    assert json.loads(run(cli_env, "repos", "--json").stdout)[0]["watch"] is True
    assert json.loads(run(cli_env, "daemon", "status", "--json").stdout) == {"running": False}
    # both runs are in the job list, as foreground runs, newest first
    listed = json.loads(run(cli_env, "jobs", "--json").stdout)
    root = str(polyglot.resolve())
    assert [(j["kind"], j["status"], j["repo_path"]) for j in listed] == [("foreground", "completed", root)] * 2
    assert [j["files_indexed"] for j in listed] == [1, 20] and listed[1]["files_total"] == 20
    assert listed[0]["phase"] == "done" and listed[0]["progress_percent"] == 100
    text = run(cli_env, "jobs").stdout
    assert f"{listed[0]['job_id']}  foreground  completed  {root}" in text
    one = json.loads(run(cli_env, "jobs", listed[1]["job_id"], "--json").stdout)
    assert one["kind"] == "foreground" and one["chunks_created"] > 0

    run(cli_env, "forget", str(polyglot))
    assert json.loads(run(cli_env, "repos", "--json").stdout) == []
    assert search_json(cli_env, "TokenBucket") == []


def test_bad_input_gives_clear_errors_and_exit_codes(cli_env: dict[str, str], polyglot: Path) -> None:
    missing = run(cli_env, "index", str(polyglot / "nope"), ok=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    # messages are printed as they are: brackets in them are not terminal markup
    bracketed = run(cli_env, "index", str(polyglot / "[fp32]"), ok=False)
    assert bracketed.returncode == 2 and "[fp32]" in bracketed.stderr
    not_dir = run(cli_env, "index", str(polyglot / "src" / "billing.py"), ok=False)
    assert not_dir.returncode == 2 and "not a directory" in not_dir.stderr
    empty = run(cli_env, "search", "   ", ok=False)
    assert empty.returncode == 2 and "query is empty" in empty.stderr
    bad_limit = run(cli_env, "search", "x", "--limit", "0", ok=False)
    assert bad_limit.returncode == 2
    unknown = run(cli_env, "forget", "no-such-repo", ok=False)
    assert unknown.returncode == 2 and "No repository" in unknown.stderr
    background_keyword_only = run(cli_env, "index", str(polyglot), "--background", "--no-embed", ok=False)
    assert background_keyword_only.returncode == 2 and "foreground" in background_keyword_only.stderr
    unknown_job = run(cli_env, "jobs", "not-a-job-id", ok=False)
    assert unknown_job.returncode == 2 and "Traceback" not in unknown_job.stderr
    bad_project = run(cli_env, "index", str(polyglot), "--project", "../etc", ok=False)
    assert bad_project.returncode == 2 and "Invalid project id" in bad_project.stderr
    assert json.loads(run(cli_env, "jobs", "--json").stdout) == [], "bad input starts no run"


async def test_a_foreground_run_is_listed_while_it_runs_and_cancelled_by_id(
    cli_env: dict[str, str], db: Database, polyglot: Path
) -> None:
    """`codebase-mcp index` is a run like a job: listed while it waits for its repository (held here by
    another run), and cancelled by id (as cancel_indexing_job does) at its next check."""
    run(cli_env, "index", str(polyglot))
    async with db.connection() as conn:
        repo = await repo_store.find_repository(conn, "default", str(polyglot.resolve()))
    (polyglot / "src" / "taxes.py").write_text("def vat_for_country(code):\n    return 0.2\n")
    async with db.session_lock(locks.REPOSITORY, repo.id):
        proc = await asyncio.create_subprocess_exec(
            *cli_command(), "index", str(polyglot), env=cli_env, stdout=PIPE, stderr=PIPE
        )
        deadline = time.monotonic() + 60
        while True:
            async with db.connection() as conn:
                active = await job_store.list_jobs(conn, None, "running", 5)
            if active:
                break
            assert proc.returncode is None and time.monotonic() < deadline, "the run is listed while it waits"
            await asyncio.sleep(0.1)
        [waiting] = active
        assert waiting.kind is RunKind.FOREGROUND and waiting.repo_path == str(polyglot.resolve())
        assert waiting.phase is JobPhase.QUEUED and waiting.worker_id is not None
        async with db.connection() as conn:
            await job_store.request_cancel(conn, str(waiting.id))
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1, err.decode()
    assert f"Indexing was cancelled (job {waiting.id})" in err.decode() and "Traceback" not in err.decode()
    async with db.connection() as conn:
        ended = await job_store.get_job(conn, str(waiting.id))
        cur = await conn.execute("SELECT count(*) AS n FROM chunks WHERE content LIKE '%%vat_for_country%%'")
        stored = await cur.fetchone()
    assert ended.status is JobStatus.CANCELLED and ended.files_indexed == 0
    assert stored is not None and stored["n"] == 0, "it stopped before storing anything"


def test_unreachable_database_is_a_clear_error(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nothing?connect_timeout=2"}
    proc = run(env, "status", ok=False)
    assert proc.returncode == 1 and "Cannot connect to PostgreSQL" in proc.stderr
    assert "Traceback" not in proc.stderr


class _Stubborn(socketserver.StreamRequestHandler):
    """A daemon that agrees to stop and never does (its process: the test's own)."""

    def handle(self) -> None:
        for line in self.rfile:
            op = json.loads(line)["op"]
            result = {"stopping": True, "pid": os.getpid()} if op == "stop" else {"pid": os.getpid()}
            self.wfile.write(json.dumps({"ok": True, "result": result}).encode() + b"\n")


def test_daemon_stop_says_whether_the_daemon_stopped(cli_env: dict[str, str]) -> None:
    home = Path(cli_env["CODEBASE_MCP_HOME"])
    not_running = run(cli_env, "daemon", "stop", "--json")
    assert json.loads(not_running.stdout) == {"was_running": False, "stopped": True}
    paths = DaemonPaths.of(home)
    paths.directory.mkdir(parents=True, exist_ok=True)
    with socketserver.ThreadingUnixStreamServer(str(paths.socket), _Stubborn) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            stuck = run(cli_env, "daemon", "stop", "--json", "--timeout", "0.5", ok=False)
        finally:
            server.shutdown()
    assert stuck.returncode == 1
    assert json.loads(stuck.stdout) == {"was_running": True, "stopped": False}
    assert "still runs after 0.5 s" in stuck.stderr and "Traceback" not in stuck.stderr


def test_symbol_and_refs_answer_as_find_symbol_and_find_references(cli_env: dict[str, str], polyglot: Path) -> None:
    run(cli_env, "index", str(polyglot), "--no-embed")
    defs = json.loads(run(cli_env, "symbol", "InvoiceCalculator.compute_total", "--json").stdout)["definitions"]
    assert [(d["path"], d["line"], d["in_tests"]) for d in defs][:1] == [("src/billing.py", 12, False)]
    text = run(cli_env, "symbol", "compute_total").stdout
    assert text.startswith("src/billing.py:12-") and "def compute_total(self, line_items):" in text
    refs = json.loads(run(cli_env, "refs", "compute_total", "--json").stdout)
    where = {(r["path"], r["definition"]) for r in refs["references"]}
    assert ("src/billing.py", True) in where and ("tests/test_billing.py", False) in where
    assert refs["total_count"] == len(refs["references"])
    assert "no definition of 'no_such_name'" in run(cli_env, "symbol", "no_such_name").stdout
    unknown = run(cli_env, "refs", "x", "--repo", "nowhere", ok=False)
    assert unknown.returncode == 2 and "nowhere" in unknown.stderr and "Traceback" not in unknown.stderr
