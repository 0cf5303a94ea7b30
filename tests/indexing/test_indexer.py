from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from codebase_mcp.embeddings.fake import FakeEmbeddingModel
from codebase_mcp.errors import Cancelled, InvalidInput
from codebase_mcp.indexing.indexer import Indexer, store_batches
from codebase_mcp.indexing.scanner import FileEntry
from codebase_mcp.settings import Settings
from codebase_mcp.storage import locks
from codebase_mcp.storage.database import Database
from tests.conftest import StopAfter, make_repo


async def scalar(db: Database, query: str, *params: object) -> object:
    async with db.connection() as conn:
        cur = await conn.execute(query, params)
        row = await cur.fetchone()
        await conn.commit()
        assert row is not None
        return next(iter(row.values()))


def test_store_batches_are_bounded_by_files_and_bytes() -> None:
    entries = [FileEntry(f"f{i}", Path(f"f{i}"), size, 0) for i, size in enumerate([10, 10, 10, 50, 10, 200, 10])]
    batches = store_batches(entries, max_files=2, max_bytes=60)
    assert [[e.rel_path for e in b] for b in batches] == [["f0", "f1"], ["f2", "f3"], ["f4"], ["f5"], ["f6"]]
    assert [e for b in batches for e in b] == entries  # every file once, in order
    assert store_batches([], 2, 60) == []


async def test_index_then_incremental_changes(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, polyglot: Path
) -> None:
    indexer = Indexer(db, fake_model, settings)
    first = await indexer.index(polyglot)
    assert first.files_indexed == 20 and first.files_unchanged == 0
    assert first.chunks_created > 20 and first.chunks_embedded == first.chunks_created
    assert await scalar(db, "SELECT count(*) FROM chunks WHERE embedding IS NULL") == 0
    texts_after_first = fake_model.texts_embedded

    again = await indexer.index(polyglot)
    assert again.files_indexed == 0 and again.files_unchanged == 20 and again.chunks_created == 0
    assert fake_model.texts_embedded == texts_after_first  # nothing re-embedded

    # change one file, delete one, add one, touch one without changing it
    billing = polyglot / "src" / "billing.py"
    billing.write_text(billing.read_text() + "\n\ndef refund_invoice(invoice):\n    return -invoice.total\n")
    (polyglot / "native" / "deploy.sh").unlink()
    (polyglot / "src" / "shipping.py").write_text("def shipping_cost(weight):\n    return weight * 2\n")
    os.utime(polyglot / "web" / "router.ts", ns=(1, 1))
    third = await indexer.index(polyglot)
    assert third.files_indexed == 2 and third.files_deleted == 1 and third.files_unchanged == 18
    paths = await scalar(db, "SELECT array_agg(path ORDER BY path) FROM files")
    assert "native/deploy.sh" not in paths and "src/shipping.py" in paths  # type: ignore[operator]
    assert await scalar(db, "SELECT count(*) FROM chunks WHERE symbol = 'refund_invoice'") == 1
    # only the new chunks' texts went to the model (unchanged billing chunks came from the cache)
    assert fake_model.texts_embedded - texts_after_first <= 4
    assert await scalar(db, "SELECT count(*) FROM chunks WHERE embedding IS NULL") == 0


async def test_force_rebuilds_and_copies_cost_nothing(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, polyglot: Path, tmp_path: Path
) -> None:
    indexer = Indexer(db, fake_model, settings)
    await indexer.index(polyglot)
    embedded = fake_model.texts_embedded
    copy = tmp_path / "copy" / "polyglot"
    shutil.copytree(polyglot, copy)
    result = await indexer.index(copy)
    assert result.files_indexed == 20
    assert fake_model.texts_embedded == embedded, "a copy of a repository is embedded from the cache"
    assert result.embeddings_from_cache == result.chunks_created
    forced = await indexer.index(polyglot, force=True)
    assert forced.files_indexed == 20
    assert await scalar(db, "SELECT count(DISTINCT repository_id) FROM chunks") == 2


async def test_switching_model_reembeds_and_never_mixes(db: Database, settings: Settings, polyglot: Path) -> None:
    small = FakeEmbeddingModel(dimension=32, name="fake-32")
    await Indexer(db, small, settings).index(polyglot)
    large = FakeEmbeddingModel(dimension=48, name="fake-48")
    result = await Indexer(db, large, settings).index(polyglot)
    assert result.files_indexed == 0
    assert large.texts_embedded > 0
    models = await scalar(
        db, "SELECT array_agg(DISTINCT m.name) FROM chunks c JOIN embedding_models m ON m.id = c.embedding_model_id"
    )
    assert models == ["fake-48"]
    assert await scalar(db, "SELECT count(*) FROM chunks WHERE embedding IS NULL") == 0


async def test_secrets_and_binaries_never_reach_the_database(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, polyglot: Path
) -> None:
    (polyglot / ".env").write_text("DATABASE_PASSWORD=hunter2-env\n")
    (polyglot / "deploy_key.pem").write_text("-----BEGIN PRIVATE KEY-----\nhunter2-pem\n")
    (polyglot / "src" / "settings_prod.py").write_text('AWS_KEY = "AKIAIOSFODNN7EXAMPLE"  # hunter2-inline\n')
    (polyglot / "src" / "blob.py").write_bytes(b"hunter2-bin\x00\x00\x01" * 50)
    result = await Indexer(db, fake_model, settings).index(polyglot)
    assert result.skip_reasons["secret"] == 2 and result.skip_reasons["secret_content"] == 1
    assert result.skip_reasons["binary"] == 1
    leaked = await scalar(
        db,
        "SELECT count(*) FROM (SELECT content FROM files UNION ALL SELECT content FROM chunks) t "
        "WHERE content LIKE '%%hunter2%%'",
    )
    assert leaked == 0
    skipped = await scalar(db, "SELECT array_agg(path ORDER BY path) FROM skipped_files")
    assert skipped == [".env", "deploy_key.pem", "src/blob.py", "src/settings_prod.py"]


async def test_a_file_that_becomes_a_secret_leaves_the_index(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, polyglot: Path
) -> None:
    indexer = Indexer(db, fake_model, settings)
    await indexer.index(polyglot)
    (polyglot / "src" / "billing.py").write_text('TOKEN = "ghp_' + "a" * 36 + '"\n')
    result = await indexer.index(polyglot)
    assert result.files_deleted == 1
    assert await scalar(db, "SELECT count(*) FROM files WHERE path = 'src/billing.py'") == 0


async def test_cancel_keeps_what_was_committed(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, polyglot: Path
) -> None:
    indexer = Indexer(db, fake_model, settings)
    with pytest.raises(Cancelled):
        await indexer.index(polyglot, run=StopAfter(2))  # two batches
    stored = await scalar(db, "SELECT count(*) FROM files")
    assert stored == 2 * settings.store_batch_files
    # every stored file is complete: it has chunks
    assert (
        await scalar(
            db, "SELECT count(*) FROM files f WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.file_id = f.id)"
        )
        == 0
    )
    resumed = await indexer.index(polyglot)
    assert resumed.files_indexed == 20 - stored and resumed.files_unchanged == stored


async def test_a_crash_mid_batch_leaves_no_half_indexed_file(db: Database, settings: Settings, polyglot: Path) -> None:
    class Exploding(FakeEmbeddingModel):
        def embed_batch(self, texts, mode="document"):  # type: ignore[no-untyped-def]
            raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError):
        await Indexer(db, Exploding(), settings).index(polyglot)
    # text and keyword index were committed before embedding; nothing is half written
    assert await scalar(db, "SELECT count(*) FROM files") == 20
    assert await scalar(db, "SELECT count(*) FROM chunks WHERE embedding IS NOT NULL") == 0
    model = FakeEmbeddingModel()
    result = await Indexer(db, model, settings).index(polyglot)
    assert result.files_indexed == 0 and result.chunks_embedded > 0
    assert await scalar(db, "SELECT count(*) FROM chunks WHERE embedding IS NULL") == 0


@pytest.mark.parametrize(
    ("path", "message"),
    [("", "empty"), ("/no/such/dir", "does not exist"), ("\x00x", "NUL")],
)
async def test_bad_paths(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, path: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        await Indexer(db, fake_model, settings).index(path)


async def test_a_file_is_not_a_repository(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, polyglot: Path
) -> None:
    with pytest.raises(InvalidInput, match="not a directory"):
        await Indexer(db, fake_model, settings).index(polyglot / "src" / "billing.py")


async def test_two_runs_of_one_repository_take_turns(
    db: Database, fake_model: FakeEmbeddingModel, settings: Settings, tmp_path: Path
) -> None:
    """A job, a CLI run and a watcher's sync may start on one repository at once: the second waits for
    the first (an advisory lock across processes), then finds nothing left to do."""
    repo = make_repo(tmp_path / "repo", 60)
    first, second = await asyncio.gather(
        Indexer(db, fake_model, settings).index(repo), Indexer(db, fake_model, settings).index(repo)
    )
    assert sorted([first.files_indexed, second.files_indexed]) == [0, 60]
    assert sorted([first.files_unchanged, second.files_unchanged]) == [0, 60]
    assert await scalar(db, "SELECT count(*) FROM files") == 60
    assert await scalar(db, "SELECT count(*) FROM chunks") == 180


async def test_a_run_waiting_for_the_lock_can_be_cancelled(
    db: Database, fake_model: FakeEmbeddingModel, settings: Settings, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo", 60)
    await Indexer(db, fake_model, settings).index(repo)
    repo_id = await scalar(db, "SELECT id FROM repositories")
    (repo / "pkg00" / "module_0001.py").write_text("def changed_while_locked():\n    return 1\n")
    # another process's run holds the repository (a session of its own): however busy the machine,
    # the lock is held when the second run starts
    async with db.session_lock(locks.REPOSITORY, int(str(repo_id))):
        waiting = asyncio.create_task(Indexer(db, fake_model, settings).index(repo, run=StopAfter(0)))
        with pytest.raises(Cancelled, match="another run of this repository"):
            await waiting
    assert (await Indexer(db, fake_model, settings).index(repo)).files_indexed == 1, "the lock was released"
