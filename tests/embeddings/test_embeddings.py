from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from codebase_mcp.embeddings.base import create_model
from codebase_mcp.embeddings.fake import FakeEmbeddingModel
from codebase_mcp.embeddings.http import HttpEmbeddingModel
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
@pytest.mark.parametrize(("int8", "name"), [(True, "minilm-l6-v2-onnx-int8"), (False, "minilm-l6-v2-onnx-fp32")])
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
