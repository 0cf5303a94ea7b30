"""``codebase-mcp init``: the real CLI in a temporary git repository, run twice; the block's edits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codebase_mcp.cli.init import END, START, agents_files, block, with_block
from codebase_mcp.errors import InvalidInput
from tests.conftest import cli_command

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

FAKE_CLAUDE = """#!/bin/sh
# stands in for Claude Code's CLI: logs each call; `mcp get` succeeds once `mcp add` has run
echo "$(pwd) $*" >> "$FAKE_CLAUDE_LOG"
case "$1 $2" in
  "mcp get") [ -f "$FAKE_CLAUDE_STATE" ] && exit 0; echo "No MCP server found with name: $3" >&2; exit 1 ;;
  "mcp add") touch "$FAKE_CLAUDE_STATE"; exit 0 ;;
esac
exit 2
"""
ORIGINAL = "# Agents\r\n\r\nRun the tests before you commit.\r\n"  # CRLF, no block yet


def run(env: dict[str, str], *args: str, cwd: Path | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*cli_command(), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def steps(proc: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    return {
        s["step"] + (":" + s["target"] if s["step"] == "agents_file" else ""): s
        for s in json.loads(proc.stdout)["steps"]
    }


def git_repo(path: Path) -> Path:
    (path / "src").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True, timeout=60)
    (path / "src" / "billing.py").write_text("def compute_total(items):\n    return sum(items)\n")
    return path


@pytest.fixture
def env(cli_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """The CLI's environment with a fake ``claude`` first on PATH; the daemon that ``init`` starts is
    stopped at the end."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "claude").write_text(FAKE_CLAUDE)
    (bin_dir / "claude").chmod(0o755)
    env = {
        **cli_env,
        "PATH": f"{bin_dir}{os.pathsep}{cli_env.get('PATH', '')}",
        "FAKE_CLAUDE_LOG": str(tmp_path / "claude.log"),
        "FAKE_CLAUDE_STATE": str(tmp_path / "claude.registered"),
        "CODEBASE_MCP_DAEMON_IDLE_SECONDS": "30",
    }
    yield env
    subprocess.run([*cli_command(), "daemon", "stop"], env=env, capture_output=True, timeout=120)


def claude_calls(env: dict[str, str]) -> list[str]:
    log = Path(env["FAKE_CLAUDE_LOG"])
    return log.read_text().splitlines() if log.exists() else []


def test_init_twice_changes_nothing_the_second_time(env: dict[str, str], tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    (repo / "AGENTS.md").write_bytes(ORIGINAL.encode())
    theirs = {"command": "other-server", "args": []}
    other = {"mcpServers": {"other": theirs}, "note": "kept"}
    (repo / ".mcp.json").write_text(json.dumps(other))

    # from a subfolder: the git top level is the repository
    first = run(env, "init", "--json", cwd=repo / "src")
    report = json.loads(first.stdout)
    assert report["root"] == str(repo.resolve()) and report["dry_run"] is False
    done = steps(first)
    assert set(done) == {"agents_file:AGENTS.md", "claude", "index"}  # CLAUDE.md not created: AGENTS.md exists
    assert done["agents_file:AGENTS.md"]["action"] == "updated"
    assert done["claude"]["action"] == "registered"
    assert done["index"]["action"] == "queued" and done["index"]["job_id"]
    text = (repo / "AGENTS.md").read_bytes().decode()
    assert text.startswith(ORIGINAL) and text.count(START) == 1 and text.count(END) == 1
    assert block("\r\n") in text and "\n" not in text.replace("\r\n", "")  # the file's own line endings
    assert not (repo / "CLAUDE.md").exists()
    assert json.loads((repo / ".mcp.json").read_text()) == other  # not asked: untouched
    calls = claude_calls(env)
    assert [c.split(" ", 1)[1].split(" -- ")[0] for c in calls] == [
        "mcp get codebase-mcp",
        "mcp add --scope local codebase-mcp",
    ]
    assert all(c.startswith(f"{repo.resolve()} ") for c in calls) and calls[1].endswith(" serve")

    jobs = json.loads(run(env, "jobs", "--json").stdout)
    assert [(j["job_id"], j["repo_path"]) for j in jobs] == [(done["index"]["job_id"], str(repo.resolve()))]

    # someone edits around the block; the second run keeps their edits and changes nothing
    edited = "Intro line.\r\n" + text + "\r\nA line after the block.\r\n"
    (repo / "AGENTS.md").write_bytes(edited.encode())
    second = run(env, "init", str(repo))
    assert "AGENTS.md: the codebase-mcp block is up to date" in second.stdout
    assert "already has a 'codebase-mcp' server" in second.stdout
    assert "job " in second.stdout and "codebase-mcp jobs " in second.stdout
    assert (repo / "AGENTS.md").read_bytes().decode() == edited
    assert [c for c in claude_calls(env) if " mcp add " in c] == calls[1:]  # no second add

    # a stale block is refreshed in place, byte for byte outside it
    stale = edited.replace("grep stays better", "grep is better")
    (repo / "AGENTS.md").write_bytes(stale.encode())
    refreshed = steps(run(env, "init", str(repo), "--no-index", "--json"))
    assert refreshed["agents_file:AGENTS.md"]["message"] == "AGENTS.md: refreshed the codebase-mcp block"
    assert (repo / "AGENTS.md").read_bytes().decode() == edited

    # .mcp.json on request: merged, other servers and keys kept; then nothing to do
    merged = steps(run(env, "init", str(repo), "--mcp-json", "--no-index", "--json"))
    assert merged["mcp_json"]["action"] == "updated" and merged["claude"]["action"] == "already_registered"
    config = json.loads((repo / ".mcp.json").read_text())
    assert config["note"] == "kept" and config["mcpServers"]["other"] == theirs
    ours = config["mcpServers"]["codebase-mcp"]
    assert ours["args"][-1] == "serve" and Path(ours["command"]).is_absolute()
    again = steps(run(env, "init", str(repo), "--mcp-json", "--no-index", "--json"))
    assert {k: v["action"] for k, v in again.items()} == {
        "agents_file:AGENTS.md": "unchanged",
        "mcp_json": "unchanged",
        "claude": "already_registered",
        "index": "skipped",
    }
    assert json.loads((repo / ".mcp.json").read_text()) == config
    assert len([c for c in claude_calls(env) if " mcp add " in c]) == 1

    # the job runs to completion in the daemon
    deadline = time.monotonic() + 180
    while (job := json.loads(run(env, "jobs", done["index"]["job_id"], "--json").stdout))["status"] != "completed":
        assert job["status"] in {"pending", "running"} and time.monotonic() < deadline, job
        time.sleep(0.5)


def test_dry_run_changes_and_starts_nothing(env: dict[str, str], tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    proc = run(env, "init", str(repo), "--dry-run", "--mcp-json")
    assert proc.stdout.startswith("dry run, nothing changed: ")
    assert "CLAUDE.md: would be created with the codebase-mcp block" in proc.stdout
    assert "+++ b/CLAUDE.md" in proc.stdout and f"+{START}" in proc.stdout  # the diff
    assert "+++ b/.mcp.json" in proc.stdout and "would queue an indexing job" in proc.stdout
    assert sorted(p.name for p in repo.iterdir()) == [".git", "src"]
    assert not any(" mcp add " in c for c in claude_calls(env))
    assert json.loads(run(env, "jobs", "--json").stdout) == []


def test_without_claude_on_path_it_prints_the_line_to_run(cli_env: dict[str, str], tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    (repo / "CLAUDE.md").write_text("See @AGENTS.md\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    git = shutil.which("git")
    assert git is not None
    (bin_dir / "git").symlink_to(git)
    env = {**cli_env, "PATH": str(bin_dir)}  # git, no claude, no codebase-mcp
    proc = run(env, "init", str(repo), "--no-index")
    line = f"cd {repo.resolve()} && claude mcp add --scope local codebase-mcp -- "
    assert "`claude` is not on PATH" in proc.stdout and line in proc.stdout
    assert "`codebase-mcp` is not on PATH" in proc.stderr
    assert (repo / "CLAUDE.md").read_text().startswith("See @AGENTS.md\n\n" + START)


def test_invalid_mcp_json_is_a_clear_error_and_nothing_changes(cli_env: dict[str, str], tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    (repo / ".mcp.json").write_text('{"mcpServers": {')
    proc = run(cli_env, "init", str(repo), "--mcp-json", "--no-index", ok=False)
    assert proc.returncode == 2 and ".mcp.json is not valid JSON (line 1" in proc.stderr
    assert (repo / ".mcp.json").read_text() == '{"mcpServers": {' and not (repo / "CLAUDE.md").exists()
    missing = run(cli_env, "init", str(tmp_path / "nowhere"), ok=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


# -- the block and the files it goes to, in-process ---------------------------------------------------------


def test_block_is_appended_once_and_replaced_in_place() -> None:
    assert with_block(None, "X") == block() + "\n"
    appended = with_block("# Title", "X")
    assert appended == "# Title\n\n" + block() + "\n"
    assert with_block(appended, "X") == appended
    around = "before\n" + START + "\nold text\n" + END + "after, same line\n"
    assert with_block(around, "X") == "before\n" + block() + "after, same line\n"


@pytest.mark.parametrize(
    "text",
    [START + "\nno end\n", END + "\n" + START + "\n", (START + "\n" + END + "\n") * 2, "x\n" + END + "\n"],
)
def test_broken_markers_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="expected one of each"):
        with_block(text, "AGENTS.md")


def test_which_files_get_the_block(tmp_path: Path) -> None:
    assert agents_files(tmp_path, []) == [tmp_path / "CLAUDE.md"]  # neither exists
    (tmp_path / "AGENTS.md").write_text("a\n")
    assert agents_files(tmp_path, []) == [tmp_path / "AGENTS.md"]
    (tmp_path / "CLAUDE.md").write_text("c\n")
    assert agents_files(tmp_path, []) == [tmp_path / "AGENTS.md", tmp_path / "CLAUDE.md"]
    (tmp_path / "CLAUDE.md").write_text("Shared rules:\n@AGENTS.md\n")  # imports it: AGENTS.md alone
    assert agents_files(tmp_path, []) == [tmp_path / "AGENTS.md"]
    (tmp_path / "CLAUDE.md").unlink()
    (tmp_path / "CLAUDE.md").symlink_to("AGENTS.md")  # one file under two names: written once
    assert agents_files(tmp_path, []) == [tmp_path / "AGENTS.md"]
    assert agents_files(tmp_path, ["docs/AI.md"]) == [tmp_path / "docs" / "AI.md"]
