"""Every command that opens the embedded PostgreSQL releases it when stopped by SIGTERM, SIGHUP (a
closed terminal) or SIGINT: no postgres process is left for the data directory, and the next run
completes what was interrupted with no duplicate files or chunks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from tests.conftest import cli_command, embedded_url, make_repo

SIGNALS = [signal.SIGTERM, signal.SIGHUP, signal.SIGINT]
N_FILES = 600


@pytest.fixture(scope="module")
def initialised_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose embedded cluster exists (stopped): each test starts from a copy."""
    home = tmp_path_factory.mktemp("signals") / "home"
    done = subprocess.run([*cli_command(), "status"], env=env_for(home), capture_output=True, timeout=180)
    assert done.returncode == 0, done.stderr
    wait_gone(home, 30)
    return home


@pytest.fixture
def home(initialised_home: Path, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "home"
    # as it is, owners included: the embedded server may run as another user than the tests
    subprocess.run(["cp", "-a", str(initialised_home), str(copy)], check=True)
    yield copy
    for proc in postgres_of(copy):  # a failed test must not leave its server behind
        proc.kill()


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEBASE_MCP_") and k != "DATABASE_URL"}
    env.update(
        CODEBASE_MCP_HOME=str(home),
        CODEBASE_MCP_EMBEDDING_PROVIDER="fake",
        CODEBASE_MCP_DAEMON="false",
        CODEBASE_MCP_STORE_BATCH_FILES="20",
        **extra,
    )
    return env


def postgres_of(home: Path) -> list[psutil.Process]:
    """The postmaster serving ``home`` (its command line names the data directory)."""
    pgdata = str((home / "pgdata").resolve())
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and any(pgdata in part for part in cmdline):
            found.append(proc)
    return found


def wait_gone(home: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while left := postgres_of(home):
        assert time.monotonic() < deadline, f"PostgreSQL outlived the command: {[p.pid for p in left]}"
        time.sleep(0.1)


def until(check: Callable[[], bool], what: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, f"the command ended before {what}"
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def scalar(home: Path, query: str, *params: Any) -> Any:
    url = embedded_url(home)
    if url is None:
        return None
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute(query, params).fetchone()
    except psycopg.OperationalError:
        return None  # starting up: the database may not exist yet
    return None if row is None else row[0]


def start(home: Path, *args: str, **extra: str) -> subprocess.Popen[bytes]:
    log = (home.parent / "command.log").open("ab")
    return subprocess.Popen([*cli_command(), *args], env=env_for(home, **extra), stdout=log, stderr=log)


def stop(proc: subprocess.Popen[bytes], sig: signal.Signals, home: Path) -> None:
    """Signal the command; it exits (cleaning up) and no postgres process of ``home`` remains 10 s
    later."""
    proc.send_signal(sig)
    try:
        code = proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"the command did not exit on {sig.name}") from None
    assert code in (0, 128 + sig), f"exit code {code} on {sig.name}"
    wait_gone(home, 10)
    assert "Traceback" not in (home.parent / "command.log").read_text()


def index_completes(home: Path, repo: Path) -> None:
    """The next run finishes the interrupted work: every file and chunk once, all embedded."""
    done = subprocess.run(
        [*cli_command(), "index", str(repo)], env=env_for(home), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [*cli_command(), "repos", "--json"], env=env_for(home), capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    chunks = 3 * N_FILES + 1  # three functions a file, and the needle
    assert (row["files"], row["chunks"], row["embedded"]) == (N_FILES, chunks, chunks), row
    wait_gone(home, 10)


def files(home: Path) -> int:
    return int(scalar(home, "SELECT count(*) FROM files") or 0)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_index_stopped_while_storing(sig: signal.Signals, home: Path, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", N_FILES)
    proc = start(home, "index", str(repo), "--no-embed", CODEBASE_MCP_FAKE_EMBEDDING_CPU_MS="0")
    until(lambda: 0 < files(home) < N_FILES, "some files are stored", proc)
    stop(proc, sig, home)
    # the run's record says it stopped with its process (not left running until a heartbeat timeout)
    listed = subprocess.run([*cli_command(), "jobs", "--json"], env=env_for(home), capture_output=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    [record] = json.loads(listed.stdout)
    assert (record["kind"], record["status"]) == ("foreground", "cancelled"), record
    assert record["status_message"].startswith("stopped with its process"), record
    index_completes(home, repo)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_index_stopped_while_embedding(sig: signal.Signals, home: Path, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", N_FILES)
    proc = start(home, "index", str(repo), CODEBASE_MCP_FAKE_EMBEDDING_CPU_MS="5")

    def embedding() -> bool:
        done = scalar(home, "SELECT count(*) FILTER (WHERE embedding IS NOT NULL) FROM chunks")
        return bool(done) and done < 3 * N_FILES + 1

    until(embedding, "some chunks are embedded", proc)
    stop(proc, sig, home)
    index_completes(home, repo)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_search_stopped_while_it_waits_on_the_database(sig: signal.Signals, home: Path, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", N_FILES)
    index_completes(home, repo)
    holder = start(home, "worker")  # keeps the server up while this test holds a lock in it
    try:
        until(lambda: scalar(home, "SELECT 1") == 1, "the server is up", holder)
        url = embedded_url(home)
        assert url is not None
        with psycopg.connect(url) as conn:
            conn.execute("LOCK TABLE chunks IN ACCESS EXCLUSIVE MODE")  # the search's query waits on this
            proc = start(home, "search", "reconcile ledger entries", "--mode", "keyword")

            def waiting() -> bool:
                return bool(
                    scalar(
                        home,
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND application_name LIKE 'codebase-mcp %%'",
                    )
                )

            until(waiting, "the search waits on the lock", proc)
            proc.send_signal(sig)
            code = proc.wait(60)
            assert code == 128 + sig, f"exit code {code} on {sig.name}"
            conn.rollback()
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.wait(60)
    wait_gone(home, 10)
    assert "Traceback" not in (home.parent / "command.log").read_text()


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_worker_stopped_mid_job_hands_it_back(sig: signal.Signals, home: Path, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", N_FILES)
    proc = start(home, "worker", CODEBASE_MCP_JOB_POLL_SECONDS="0.2")
    until(lambda: scalar(home, "SELECT 1") == 1, "the server is up", proc)
    url = embedded_url(home)
    assert url is not None
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO projects (id) VALUES ('default') ON CONFLICT DO NOTHING")
        conn.execute("INSERT INTO indexing_jobs (project_id, repo_path) VALUES ('default', %s)", (str(repo),))
    until(lambda: 0 < files(home) < N_FILES, "the job stores some files", proc)
    stop(proc, sig, home)
    index_completes(home, repo)
