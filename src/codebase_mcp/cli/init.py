"""``codebase-mcp init``: set a repository up for AI coding assistants.

Four steps, each idempotent: a marked block in the agent instructions file(s) that says when to use
which tool (and the CLI for sub-agents without MCP), ``.mcp.json`` when asked, the registration with
Claude Code (``claude mcp add``, or the line to run when ``claude`` is not on PATH), and an indexing job
for the background daemon. Everything is planned (read, checked) before anything is written, so an
error such as an invalid ``.mcp.json`` changes nothing; a dry run stops after the plan.
"""

from __future__ import annotations

import difflib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from codebase_mcp.core.validation import validate_root
from codebase_mcp.errors import CodebaseError, InvalidInput
from codebase_mcp.settings import Settings

SERVER_NAME = "codebase-mcp"
START = "<!-- codebase-mcp:start -->"
END = "<!-- codebase-mcp:end -->"
AGENTS_FILES = ("AGENTS.md", "CLAUDE.md")
DEFAULT_NEW_FILE = "CLAUDE.md"  # Claude Code, the client init registers with, reads CLAUDE.md
CLAUDE_TIMEOUT = 120.0  # `claude mcp get` may start the server to show whether it connects

#: What agents read. Nothing in it depends on the machine or the day, so a re-run finds it unchanged.
BLOCK_BODY = """\
## Code search (codebase-mcp)

This repository is indexed by codebase-mcp; the index follows edits while its daemon runs.
- `search_code(query)`: find code by what it does ("where are retries scheduled") or by identifier.
- `find_symbol(name)`: where a function, class or method is defined (`compute_total`, `Invoice.compute_total`).
- `find_references(name)`: the lines where an identifier is used, grouped by file.
- `get_indexing_status(job_id)` / `list_indexing_jobs()`: whether indexing has finished.
- grep stays better for exact strings, regular expressions and files written a moment ago.

Sub-agents without MCP tools can use the CLI (same index):
- `codebase-mcp search "how are invoices totalled" -n 5` (`--path src/`, `--language python`, `--json`)
- `codebase-mcp symbol Invoice.compute_total`: where it is defined
- `codebase-mcp refs compute_total`: the lines where it is used
- `codebase-mcp jobs`: indexing progress"""


@dataclass
class Step:
    """What one step did (or, in a dry run, would do)."""

    step: str  # agents_file, mcp_json, claude, index
    action: str  # created, updated, unchanged, registered, already_registered, manual, queued, skipped, failed
    message: str
    target: str | None = None  # the file written, or the command run
    diff: str | None = None  # dry run: the change to a file, as a unified diff
    job_id: str | None = None

    @property
    def failed(self) -> bool:
        return self.action == "failed"


@dataclass
class InitReport:
    root: str
    dry_run: bool
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(s.failed for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "dry_run": self.dry_run,
            "steps": [asdict(s) for s in self.steps],
            "notes": self.notes,
        }


@dataclass(frozen=True)
class _FileChange:
    """A planned write: ``new`` replaces ``old`` (None: the file does not exist yet)."""

    path: Path
    old: str | None
    new: str

    @property
    def changed(self) -> bool:
        return self.new != self.old

    def diff(self, shown: str) -> str:
        lines = difflib.unified_diff(
            (self.old or "").splitlines(keepends=True),
            self.new.splitlines(keepends=True),
            fromfile="/dev/null" if self.old is None else f"a/{shown}",
            tofile=f"b/{shown}",
        )
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


# -- where ------------------------------------------------------------------------------------------


def repository_root(path: str) -> Path:
    """The enclosing git work tree's top level, or the folder itself outside git (or without git)."""
    folder = validate_root(path)
    git = shutil.which("git")
    if git is None:
        return folder
    try:
        proc = subprocess.run(
            [git, "-C", str(folder), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return folder
    top = proc.stdout.strip()
    return Path(top).resolve() if proc.returncode == 0 and top else folder


def server_command() -> list[str]:
    """How an MCP client launches this install's server: the absolute path of the ``codebase-mcp`` that
    runs now (so a venv's works without activating it), or this interpreter with ``-m codebase_mcp``."""
    argv0 = sys.argv[0] if sys.argv else ""
    if Path(argv0).name.lower() in {"codebase-mcp", "codebase-mcp.exe"}:
        found = argv0 if os.sep in argv0 else shutil.which(argv0)
        if found:
            # absolute, not resolved: a venv's scripts and interpreter may be links that must stay links
            return [str(Path(found).absolute()), "serve"]
    return [str(Path(sys.executable).absolute()), "-m", "codebase_mcp", "serve"]


# -- the block in AGENTS.md / CLAUDE.md ---------------------------------------------------------------


def block(newline: str = "\n") -> str:
    return newline.join([START, *BLOCK_BODY.split("\n"), END])


def with_block(old: str | None, shown: str) -> str:
    """``old`` with the block replaced in place (everything outside it kept byte for byte), or appended."""
    if not old:
        return block() + "\n"
    newline = "\r\n" if "\r\n" in old else "\n"
    starts, ends = old.count(START), old.count(END)
    if starts == ends == 0:
        return old + ("" if old.endswith("\n") else newline) + newline + block(newline) + newline
    first, last = old.find(START), old.find(END)
    if starts != 1 or ends != 1 or last < first:
        raise InvalidInput(
            f"{shown} has {starts} '{START}' and {ends} '{END}' markers; expected one of each, in that order. "
            "Fix or remove them by hand, then run init again. Nothing was changed."
        )
    return old[:first] + block(newline) + old[last + len(END) :]


def agents_files(root: Path, chosen: list[str]) -> list[Path]:
    """The instruction files to update: those asked for; else the existing AGENTS.md and CLAUDE.md (not
    CLAUDE.md when it imports AGENTS.md with ``@AGENTS.md``; a link counts once); else a new CLAUDE.md."""
    if chosen:
        paths = [root / name for name in chosen]
    else:
        paths = [root / name for name in AGENTS_FILES if (root / name).is_file()]
        if len(paths) == 2 and _imports_agents_md(root / "CLAUDE.md"):
            paths = [root / "AGENTS.md"]
        paths = paths or [root / DEFAULT_NEW_FILE]
    unique: dict[Path, Path] = {}
    for path in paths:
        unique.setdefault(path.resolve(), path)  # CLAUDE.md -> AGENTS.md: write the target once
    return list(unique)


def _imports_agents_md(path: Path) -> bool:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeError):
        return False
    return any(line.strip() in {"@AGENTS.md", "@./AGENTS.md"} for line in lines)


def _read(path: Path, shown: str) -> str | None:
    if not path.exists():
        return None
    if not path.is_file():
        raise InvalidInput(f"{shown} is not a regular file. Nothing was changed.")
    try:
        with path.open(encoding="utf-8", newline="") as f:  # keep \r\n as it is
            return f.read()
    except UnicodeDecodeError:
        raise InvalidInput(f"{shown} is not UTF-8 text; init leaves it alone. Nothing was changed.") from None
    except OSError as exc:
        raise InvalidInput(f"{shown} cannot be read: {exc.strerror}. Nothing was changed.") from None


def _write(change: _FileChange) -> None:
    """Write the whole file at once: an existing one through a temporary file and a rename (keeping its
    mode), so a full disk never leaves it half written."""
    path = change.path
    if change.old is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8", newline="") as f:
            f.write(change.new)
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(change.new)
        shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _shown(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


# -- .mcp.json ----------------------------------------------------------------------------------------


def _mcp_json_change(root: Path, command: list[str]) -> tuple[_FileChange, bool]:
    """The merged ``.mcp.json`` and whether it already had our server (then it is left as it is)."""
    path = root / ".mcp.json"
    path = path.resolve() if path.exists() else path  # a link: write where it points
    old = _read(path, ".mcp.json")
    data: Any = {}
    if old is not None and old.strip():
        try:
            data = json.loads(old)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f".mcp.json is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}). "
                "Fix or remove it, then run init again. Nothing was changed."
            ) from None
    if not isinstance(data, dict) or not isinstance(data.get("mcpServers", {}), dict):
        raise InvalidInput(
            ".mcp.json is not an object with an 'mcpServers' object. Fix or remove it, then run init again. "
            "Nothing was changed."
        )
    servers = data.setdefault("mcpServers", {})
    if SERVER_NAME in servers:
        return _FileChange(path, old, old or ""), True
    servers[SERVER_NAME] = {"type": "stdio", "command": command[0], "args": command[1:], "env": {}}
    return _FileChange(path, old, json.dumps(data, indent=2) + "\n"), False


# -- Claude Code --------------------------------------------------------------------------------------


def claude_add_args(command: list[str]) -> list[str]:
    # local scope: this user, this repository (the command is this machine's absolute path)
    return ["mcp", "add", "--scope", "local", SERVER_NAME, "--", *command]


def _claude_step(root: Path, command: list[str], in_mcp_json: str | None, dry_run: bool) -> Step:
    if in_mcp_json is not None:
        return Step("claude", "already_registered", in_mcp_json, target=".mcp.json")
    claude = shutil.which("claude")
    line = f"cd {shlex.quote(str(root))} && " + shlex.join(["claude", *claude_add_args(command)])
    if claude is None:
        return Step("claude", "manual", f"`claude` is not on PATH; to register the server, run: {line}", target=line)
    try:
        got = subprocess.run(
            [claude, "mcp", "get", SERVER_NAME], cwd=root, capture_output=True, text=True, timeout=CLAUDE_TIMEOUT
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return Step("claude", "failed", f"`claude mcp get` did not answer ({exc}); to register, run: {line}", line)
    if got.returncode == 0:
        return Step("claude", "already_registered", f"Claude Code already has a '{SERVER_NAME}' server", line)
    if dry_run:
        return Step("claude", "registered", f"would run: {line}", target=line)
    try:
        added = subprocess.run(
            [claude, *claude_add_args(command)], cwd=root, capture_output=True, text=True, timeout=CLAUDE_TIMEOUT
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return Step("claude", "failed", f"`claude mcp add` failed ({exc}); run it yourself: {line}", target=line)
    if added.returncode != 0:
        why = (added.stderr or added.stdout).strip().splitlines()
        return Step(
            "claude",
            "failed",
            f"`claude mcp add` exited with {added.returncode} ({why[-1] if why else 'no message'}); "
            f"run it yourself: {line}",
            target=line,
        )
    return Step("claude", "registered", f"registered with Claude Code: {line}", target=line)


# -- the whole command --------------------------------------------------------------------------------


async def init_repository(
    settings: Settings,
    path: str,
    *,
    dry_run: bool = False,
    mcp_json: bool = False,
    index: bool = True,
    chosen_files: list[str] | None = None,
) -> InitReport:
    root = repository_root(path)
    report = InitReport(str(root), dry_run)
    command = server_command()

    # plan: read and check everything first, so that an error leaves every file as it was
    changes = []
    for file in agents_files(root, chosen_files or []):
        shown = _shown(root, file)
        old = _read(file, shown)
        changes.append((shown, _FileChange(file.resolve() if file.exists() else file, old, with_block(old, shown))))
    mcp_change, mcp_had_it = _mcp_json_change(root, command)

    for shown, change in changes:
        if not change.changed:
            report.steps.append(
                Step("agents_file", "unchanged", f"{shown}: the codebase-mcp block is up to date", shown)
            )
            continue
        action = "created" if change.old is None else "updated"
        verb = "create" if change.old is None else "refresh" if START in change.old else "add"
        said = {
            "create": ("created with", "would be created with"),
            "refresh": ("refreshed", "would refresh"),
            "add": ("added", "would add"),
        }[verb][dry_run]
        message = f"{shown}: {said} the codebase-mcp block"
        step = Step("agents_file", action, message, shown, diff=change.diff(shown) if dry_run else None)
        if not dry_run:
            _write(change)
        report.steps.append(step)

    in_mcp_json = f".mcp.json already registers '{SERVER_NAME}' (left as it is)" if mcp_had_it else None
    if mcp_json:
        if mcp_had_it:
            report.steps.append(Step("mcp_json", "unchanged", in_mcp_json or "", ".mcp.json"))
        else:
            action = "created" if mcp_change.old is None else "updated"
            message = (
                f".mcp.json: {'would register' if dry_run else 'registers'} '{SERVER_NAME}' ({shlex.join(command)})"
            )
            diff = mcp_change.diff(".mcp.json") if dry_run else None
            if not dry_run:
                _write(mcp_change)
            report.steps.append(Step("mcp_json", action, message, ".mcp.json", diff=diff))
            in_mcp_json = (
                f"{'would be ' if dry_run else ''}registered for Claude Code through .mcp.json "
                "(Claude Code asks to approve a project's servers once)"
            )
    report.steps.append(_claude_step(root, command, in_mcp_json, dry_run))

    report.steps.append(await _index_step(settings, root, index=index, dry_run=dry_run))
    if shutil.which("codebase-mcp") is None:
        report.notes.append(
            "`codebase-mcp` is not on PATH: sub-agents following the CLI lines of the block need it there "
            f"(its full path here: {command[0] if len(command) == 2 else shlex.join(command[:3])})."
        )
    return report


async def _index_step(settings: Settings, root: Path, *, index: bool, dry_run: bool) -> Step:
    if not index:
        return Step("index", "skipped", "indexing not started (--no-index)")
    if dry_run:
        return Step("index", "queued", f"would queue an indexing job for {root}, run by the background daemon")
    from codebase_mcp.cli.background import queue_job

    try:
        queued = await queue_job(settings, str(root), "default", force=False)
    except CodebaseError as exc:
        return Step("index", "failed", f"indexing not started: {exc.message}")
    job = queued.job.id
    already = "an active job, " if not queued.created else ""
    return Step(
        "index",
        "queued",
        f"{already}job {job} queued; the daemon (pid {queued.daemon['pid']}) runs it; "
        f"follow it with: codebase-mcp jobs {job}",
        job_id=str(job),
    )
