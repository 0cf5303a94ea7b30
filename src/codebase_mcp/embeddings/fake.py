"""A deterministic embedding model for tests: texts that share code tokens get similar vectors
(hashed bag of tokens), and the model counts its calls."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

import numpy as np

from codebase_mcp.core.tokens import code_tokens
from codebase_mcp.embeddings.base import EmbeddingModel, Mode, Vectors, normalise, register
from codebase_mcp.settings import Settings


class FakeEmbeddingModel(EmbeddingModel):
    def __init__(self, dimension: int = 64, name: str = "fake-hash-64", cpu_ms_per_text: float = 0.0) -> None:
        self.name = name
        self.cpu_ms_per_text = cpu_ms_per_text
        self.dimension = dimension
        self.calls = 0
        self.texts_embedded = 0

    def embed_batch(self, texts: Sequence[str], mode: Mode = "document") -> Vectors:
        self.calls += 1
        self.texts_embedded += len(texts)
        if self.cpu_ms_per_text:
            _burn(self.cpu_ms_per_text * len(texts) / 1000)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in code_tokens(text) or [text]:
                digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dimension
                sign = 1.0 if digest[4] & 1 else -1.0
                out[row, bucket] += sign
        out[np.all(out == 0, axis=1), 0] = 1.0
        return normalise(out)


def _burn(seconds: float) -> None:
    """Busy-loop in pure Python for ``seconds`` of this thread's CPU time."""
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        for i in range(1000):
            x ^= i


@register("fake")
def _factory(settings: Settings) -> EmbeddingModel:
    dimension = settings.embedding_dimension or 64
    # vectors of another dimension are another model's: the name says which, so they never mix
    return FakeEmbeddingModel(
        dimension=dimension, name=f"fake-hash-{dimension}", cpu_ms_per_text=settings.fake_embedding_cpu_ms
    )
