"""Cold ``codebase-mcp search``: wall time of the whole command, process start included.

    python bench/cli_cold.py [--runs 7] [--repo src]

A fresh data directory; ``codebase-mcp index REPO`` (the local model, fully embedded) once; then
``--runs`` separate ``codebase-mcp search`` processes per row, run one after the other:

- hybrid and keyword search, with the embedded PostgreSQL started by the search itself (no other
  process uses the data directory, so each search starts the server and stops it on exit), and with
  the server already running (another process holds it, as a running ``serve`` would);
- hybrid and keyword search answered by the data directory's daemon (``codebase-mcp daemon start``
  first): the model is loaded and the pool open in the daemon, the command only connects to it;
- ``python -c pass`` and ``python -c "import codebase_mcp.cli.main"``: the interpreter and the imports
  alone.

Prints median, min and max wall time per row and the load average; one process at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import table

EXE = str(Path(sys.executable).with_name("codebase-mcp"))
QUERIES = ["where are search results re-ranked", "open the database pool", "parse the settings", "chunk a file"]
# holds the embedded server until SIGTERM, then lets it go (atexit stops it: the last holder out)
HOLD = (
    "import signal, sys, time; from pathlib import Path; from codebase_mcp.storage.embedded import start_embedded; "
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); start_embedded(Path(sys.argv[1])); "
    "print('ready', flush=True); time.sleep(3600)"
)


def wall(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def row(label: str, times: list[float]) -> tuple[str, str]:
    return label, f"{statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}, {len(times)} runs)"


def main(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="cbm-cli-cold-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEBASE_MCP_") and k != "DATABASE_URL"}
    env.update(CODEBASE_MCP_HOME=str(home), CODEBASE_MCP_EMBEDDING_PROVIDER="local")
    repo = Path(args.repo).resolve()
    t_index = wall([EXE, "index", str(repo)], env)
    subprocess.run([EXE, "daemon", "stop"], env=env, check=True, stdout=subprocess.DEVNULL)  # none until asked

    rows: list[tuple[str, str]] = [("index", f"{repo} ({t_index:.1f} s, local model, fully embedded)")]
    rows.append(row("python -c pass", [wall([sys.executable, "-c", "pass"], env) for _ in range(args.runs)]))
    imports = [wall([sys.executable, "-c", "import codebase_mcp.cli.main"], env) for _ in range(args.runs)]
    rows.append(row("python -c 'import codebase_mcp.cli.main'", imports))

    # rows without a daemon: a search with none running would start one for the next search
    solo = {**env, "CODEBASE_MCP_DAEMON": "false"}
    wall([EXE, "search", "warm the page cache"], solo)  # first run derives nothing more, reads the files once

    def searches(mode: str, env: dict[str, str] = solo) -> list[float]:
        return [wall([EXE, "search", QUERIES[i % len(QUERIES)], "--mode", mode], env) for i in range(args.runs)]

    rows.append(row("search hybrid, the search starts and stops PostgreSQL", searches("hybrid")))
    rows.append(row("search keyword, the search starts and stops PostgreSQL", searches("keyword")))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(home)], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert holder.stdout is not None
        holder.stdout.readline()
        rows.append(row("search hybrid, PostgreSQL already running", searches("hybrid")))
        rows.append(row("search keyword, PostgreSQL already running", searches("keyword")))
    finally:
        holder.terminate()
        holder.wait(60)
    # the data directory's daemon (issue 12): a running one answers `search` with its model loaded
    subprocess.run([EXE, "daemon", "start"], env=env, check=True, stdout=subprocess.DEVNULL)
    try:
        wall([EXE, "search", "warm the daemon's model"], env)
        rows.append(row("search hybrid, answered by the running daemon", searches("hybrid", env)))
        rows.append(row("search keyword, answered by the running daemon", searches("keyword", env)))
    finally:
        subprocess.run([EXE, "daemon", "stop"], env=env, check=True, stdout=subprocess.DEVNULL)
    # no daemon running: the search answers alone and starts one; the next search is the daemon's
    first, second = [], []
    for i in range(args.runs):
        first.append(wall([EXE, "search", QUERIES[i % len(QUERIES)]], env))
        status = [EXE, "daemon", "status", "--json"]
        while json.loads(subprocess.run(status, env=env, capture_output=True).stdout).get("running") is False:
            time.sleep(0.2)
        time.sleep(2)  # the daemon loads its model on the first request: let it settle, as a user would
        second.append(wall([EXE, "search", QUERIES[(i + 1) % len(QUERIES)]], env))
        subprocess.run([EXE, "daemon", "stop"], env=env, check=True, stdout=subprocess.DEVNULL)
    rows.append(row("search hybrid, no daemon running (it starts one)", first))
    rows.append(row("search hybrid, the next one (answered by that daemon)", second))
    rows.append(("load average at the end (1/5/15 min)", " / ".join(f"{x:.1f}" for x in os.getloadavg())))
    print(table(rows, "Cold CLI search (wall time per process)"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--repo", default=str(Path(__file__).parents[1] / "src"))
    main(parser.parse_args())
