"""Size and format: a multi-GB file, a multi-MB single-line file, NUL bytes, invalid UTF-8, UTF-16 and
UTF-8 with BOM, empty files, syntax nested tens of thousands deep, a directory tree deeper than PATH_MAX,
and many tiny files. Each is indexed or skipped with its reason; nothing crashes, memory stays bounded."""

from __future__ import annotations

import os
import resource
from pathlib import Path

from codebase_mcp.embeddings.fake import FakeEmbeddingModel
from codebase_mcp.indexing.indexer import Indexer
from codebase_mcp.settings import Settings
from codebase_mcp.storage.database import Database
from tests.indexing.test_indexer import scalar


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def skip_reasons(db: Database) -> dict[str, str]:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT path, reason FROM skipped_files")
        rows = await cur.fetchall()
        await conn.commit()
    return {r["path"]: r["reason"] for r in rows}


async def test_size_and_encoding_extremes(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    with (repo / "huge_dump.py").open("wb") as fh:  # 4 GiB, sparse: costs no disk
        fh.truncate(4 * 1024**3)
    (repo / "bundle.js").write_text("var a=" + "1+" * 2_500_000 + "1;")  # 5 MB on one line
    (repo / "inline.js").write_text("var b=[" + "0," * 400_000 + "0];\n")  # 800 KB on one line, under the size cap
    (repo / "nul.py").write_bytes(b"def nul_bytes():\n    return 1\n\x00\x00\x00 padding\n")
    (repo / "noise.py").write_bytes(os.urandom(20_000))
    (repo / "latin1.py").write_bytes("def caf\xe9_menu():\n    return 'cr\xe8me br\xfbl\xe9e'\n".encode("latin-1"))
    (repo / "utf16.py").write_bytes("def utf_sixteen_parser(blob):\n    return blob\n".encode("utf-16"))
    (repo / "bom8.py").write_bytes(b"\xef\xbb\xbfdef byte_order_mark_reader():\n    return 8\n")
    (repo / "empty.py").write_bytes(b"")
    (repo / "blank.py").write_text("\n\n   \n")
    # syntax nested 50,000 and 30,000 levels deep, in short lines (so not "minified")
    (repo / "deep_nest.py").write_text("x = " + ("[" * 50 + "\n") * 1000 + ("]" * 50 + "\n") * 1000)
    (repo / "deep_nest.js").write_text("const y = " + ("(" * 50 + "\n") * 600 + "1" + (")" * 50 + "\n") * 600 + ";\n")
    (repo / "deep_json.json").write_text(('{"a":' * 10 + "\n") * 2000 + "1" + ("}" * 10 + "\n") * 2000)

    result = await Indexer(db, fake_model, settings).index(repo)
    reasons = await skip_reasons(db)
    assert reasons["huge_dump.py"] == "too_large"
    assert reasons["bundle.js"] == "too_large"
    assert reasons["inline.js"] == "minified"
    assert reasons["nul.py"] == "binary" and reasons["noise.py"] == "binary"
    assert reasons["empty.py"] == "empty" and reasons["blank.py"] == "empty"
    paths = await scalar(db, "SELECT array_agg(path ORDER BY path) FROM files")
    assert isinstance(paths, list)
    assert set(paths) >= {"latin1.py", "utf16.py", "bom8.py", "deep_nest.py", "deep_nest.js", "deep_json.json"}
    for symbol in ("utf_sixteen_parser", "byte_order_mark_reader"):
        assert await scalar(db, "SELECT count(*) FROM chunks WHERE symbol = %s", symbol) == 1, symbol
    # stray Latin-1 bytes in otherwise valid text: kept, each as U+FFFD
    latin = await scalar(
        db, "SELECT c.content FROM chunks c JOIN files f ON f.id = c.file_id WHERE f.path = 'latin1.py'"
    )
    assert "caf\ufffd_menu" in str(latin) and "cr\ufffdme" in str(latin)
    assert await scalar(db, "SELECT count(*) FROM chunks WHERE content LIKE '%%' || chr(65279) || '%%'") == 0
    assert result.files_indexed == len(paths)
    assert peak_rss_mib() < 2048, "reading is bounded: the 4 GiB file is never read"


def make_deep_tree(root: Path, depth: int, name: str = "dd") -> None:
    """``root/dd/dd/.../leaf.py``, deeper than PATH_MAX allows to name, built relative to open dirs."""
    fd = os.open(root, os.O_RDONLY)
    try:
        for level in range(depth):
            os.mkdir(name, dir_fd=fd)
            if level % 100 == 0:
                with open(os.open(f"level_{level}.py", os.O_WRONLY | os.O_CREAT, dir_fd=fd), "w") as fh:
                    fh.write(f"def at_depth_{level}():\n    return {level}\n")
            nxt = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        with open(os.open("leaf.py", os.O_WRONLY | os.O_CREAT, dir_fd=fd), "w") as fh:
            fh.write("def deepest_leaf():\n    return 0\n")
    finally:
        os.close(fd)


def remove_deep_tree(root: Path, depth: int, name: str = "dd") -> None:
    """Remove it bottom-up without recursion (``shutil.rmtree`` recurses once per level)."""
    fd = os.open(root, os.O_RDONLY)
    for _ in range(depth):
        nxt = os.open(name, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nxt
    for _ in range(depth + 1):
        for entry in os.listdir(fd):
            if entry != name:
                os.unlink(entry, dir_fd=fd)
        parent = os.open("..", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = parent
        if _ < depth:
            os.rmdir(name, dir_fd=fd)
    os.close(fd)


async def test_tree_deeper_than_path_max(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, tmp_path: Path
) -> None:
    repo = tmp_path / "deep"
    repo.mkdir()
    make_deep_tree(repo, 2_500)  # 7,500 characters of path: past PATH_MAX (4,096)
    try:
        result = await Indexer(db, fake_model, settings).index(repo)
    except BaseException:
        remove_deep_tree(repo, 2_500)
        raise
    # what can be named is indexed; below that, directories are skipped as unreadable, with the reason
    assert await scalar(db, "SELECT count(*) FROM chunks WHERE symbol = 'at_depth_0'") == 1
    assert await scalar(db, "SELECT count(*) FROM chunks WHERE symbol = 'at_depth_1000'") == 1
    assert await scalar(db, "SELECT count(*) FROM chunks WHERE symbol = 'deepest_leaf'") == 0
    assert result.skip_reasons.get("unreadable", 0) >= 1
    assert await scalar(db, "SELECT max(length(path)) FROM files") < 4096  # type: ignore[operator]
    remove_deep_tree(repo, 2_500)
    assert list(repo.iterdir()) == []


async def test_many_tiny_files(
    db: Database, settings: Settings, fake_model: FakeEmbeddingModel, tmp_path: Path
) -> None:
    repo = tmp_path / "tiny"
    n = 20_000
    for i in range(n):
        folder = repo / f"d{i // 1000:02d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True)
        (folder / f"t{i:05d}.py").write_text(f"X{i} = {i}\n")
    settings = settings.model_copy(update={"store_batch_files": 500})
    result = await Indexer(db, fake_model, settings).index(repo)
    assert result.files_indexed == n
    assert await scalar(db, "SELECT count(*) FROM files") == n
    assert await scalar(db, "SELECT count(*) FROM chunks") == n
    assert peak_rss_mib() < 2048
