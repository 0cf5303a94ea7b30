"""Batches prepared in worker processes store exactly what the indexer's thread stores, with the
server's stems (the lexicon's corrections go to the workers, their unchecked words come back)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from codebase_mcp.core import analysis
from codebase_mcp.embeddings.fake import FakeEmbeddingModel
from codebase_mcp.indexing import prepare
from codebase_mcp.indexing.indexer import Indexer
from codebase_mcp.indexing.prepare import PrepareOptions, PrepareProcess
from codebase_mcp.indexing.scanner import scan
from codebase_mcp.search.engine import SearchEngine
from codebase_mcp.settings import Settings
from codebase_mcp.storage.database import Database

#: words on which PyStemmer's Snowball and PostgreSQL's english_stem disagree (docs/benchmarks/indexing.md)
DISPUTED = "organization university internal evening biologist"


async def _stored(db: Database, project: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """A project's chunks and BM25 postings, without ids."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT f.path, c.ordinal, c.start_line, c.end_line, c.kind, c.symbol, c.language, c.content,"
            " c.search_text, c.tsv::text AS tsv, c.doc_len, c.embed_priority, c.embed_hash "
            "FROM chunks c JOIN files f ON f.id = c.file_id JOIN repositories r ON r.id = c.repository_id "
            "WHERE r.project_id = %s ORDER BY 1, 2",
            (project,),
        )
        chunks = [tuple(r.values()) for r in await cur.fetchall()]
        cur = await conn.execute(
            "SELECT p.lexeme, f.path, c.ordinal, p.tf, p.doc_len, p.impact FROM bm25_posting_rows p "
            "JOIN chunks c ON c.id = p.chunk_id JOIN files f ON f.id = c.file_id "
            "JOIN repositories r ON r.id = p.repository_id WHERE r.project_id = %s ORDER BY 1, 2, 3",
            (project,),
        )
        postings = [tuple(r.values()) for r in await cur.fetchall()]
    return chunks, postings


async def test_worker_processes_store_and_find_what_the_thread_does(
    db: Database, settings: Settings, polyglot: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (polyglot / "notes.md").write_text(f"# Staff\n\nThe {DISPUTED} of the zorblaxing team.\n")
    repos = {}
    for project in ("threads", "processes"):
        repos[project] = tmp_path / project / "repo"
        shutil.copytree(polyglot, repos[project])
    indexer = Indexer(db, FakeEmbeddingModel(), settings)
    sent: list[int] = []
    real = PrepareProcess.prepare

    def counting(self: PrepareProcess, *args: Any) -> Any:
        sent.append(1)
        return real(self, *args)

    monkeypatch.setattr(PrepareProcess, "prepare", counting)
    monkeypatch.setattr(settings, "store_batch_files", 3)  # several batches in flight
    monkeypatch.setattr(settings, "prepare_process_min_files", 1)
    await indexer.index(repos["processes"], project_id="processes")
    assert len(sent) >= 3, "the batches went to the worker processes"
    monkeypatch.setattr(settings, "prepare_process_min_files", 0)
    through_processes = len(sent)
    await indexer.index(repos["threads"], project_id="threads")
    assert len(sent) == through_processes, "below the threshold the run's thread prepares the batches"

    by_processes, by_threads = await _stored(db, "processes"), await _stored(db, "threads")
    assert by_processes == by_threads
    assert by_processes[0] and by_processes[1]
    async with db.connection() as conn:
        cur = await conn.execute("SELECT to_tsvector('english', %s)::text AS tsv", (DISPUTED,))
        server = (await cur.fetchone() or {})["tsv"]
    notes = [c for c in by_processes[0] if c[0] == "notes.md"]
    stored = set(re.findall(r"'([^']+)'", notes[0][9]))
    assert set(re.findall(r"'([^']+)'", server)) <= stored, "the server's stems"
    engine = SearchEngine(db, None)
    for query in ("university organization", "compute total", "format currency", "evening biologist zorblaxing"):
        found = {
            project: [
                (h.path, h.start_line, h.score)
                for h in (await engine.search(query, project_id=project, mode="keyword", limit=10)).hits
            ]
            for project in repos
        }
        assert found["processes"] == found["threads"] and found["processes"]


async def test_a_worker_uses_the_senders_corrections_and_hands_back_its_unchecked_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.py").write_text("def quuxify_glorbination():\n    return 'evening'\n")
    entries = scan(tmp_path, 1_000_000).files
    # this test's lexicon is thrown away after it: the module's own state is put back
    for name in ("_server_stem", "_checked", "_unchecked", "_lexemes_of"):
        monkeypatch.setattr(analysis, name, type(getattr(analysis, name))(getattr(analysis, name)))
    monkeypatch.setattr(analysis, "_corrected", list(analysis._corrected))
    monkeypatch.setattr(analysis, "_generation", analysis._generation)
    # a correction this process holds for a made-up word, which the worker's PyStemmer cannot know
    analysis.record_server_stems({"glorbination": "glorbzzz"})
    options = PrepareOptions(1000, 1500, ())
    generation = analysis.generation()
    noted: list[str] = []
    real_note = analysis.note_unchecked

    def note(words: list[str]) -> None:
        noted.extend(words)
        real_note(words)

    monkeypatch.setattr(analysis, "note_unchecked", note)
    async with PrepareProcess(options, workers=1) as worker:
        writes = await worker.prepare(entries, {})
    (chunk,) = writes[0].chunks
    assert chunk.lexicon == generation
    assert b"glorbzzz" in chunk.tsv
    assert prepare.prepare_files(entries, {}, options)[0].chunks[0].tsv == chunk.tsv, "what this process stores"
    assert {"quuxifi", "quuxify"} & set(noted), "the worker's unchecked words come back to be checked"


def test_workers_end_when_the_indexing_process_is_killed(tmp_path: Path) -> None:
    """A process killed with SIGKILL shuts nothing down: its workers notice and end."""
    (tmp_path / "a.py").write_text("def handler(request):\n    return request\n")
    script = (
        "import asyncio, time\n"
        "from pathlib import Path\n"
        "from codebase_mcp.indexing.prepare import PrepareOptions, PrepareProcess\n"
        "from codebase_mcp.indexing.scanner import scan\n"
        "async def main():\n"
        "    worker = PrepareProcess(PrepareOptions(1000, 1500, ()), workers=2)\n"
        f"    entries = scan(Path({str(tmp_path)!r}), 1_000_000).files\n"
        "    await asyncio.gather(*(worker.prepare(entries, {}) for _ in range(4)))\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(120)\n"
        "if __name__ == '__main__':\n"
        "    asyncio.run(main())\n"
    )
    (tmp_path / "holder.py").write_text(script)
    holder = subprocess.Popen([sys.executable, str(tmp_path / "holder.py")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        workers = [p for p in psutil.Process(holder.pid).children() if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2, "the batches were prepared in worker processes"
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 30
    while alive := [p.pid for p in workers if _running(p)]:  # a zombie no one reaps is gone too
        assert time.monotonic() < deadline, f"workers left running: {alive}"
        time.sleep(0.1)


def _running(process: psutil.Process) -> bool:
    try:
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def test_workers_take_the_runs_priority() -> None:
    from codebase_mcp.indexing.run import BACKGROUND_NICE, RunControl, background_executor

    assert RunControl().nice == 0, "a foreground run's workers keep the terminal's priority"
    assert RunControl(executor=background_executor()).nice == BACKGROUND_NICE
