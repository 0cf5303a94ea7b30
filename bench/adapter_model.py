"""The local model with a trained linear adapter over its vectors (issue 20's CPU route), for the bench.

``configure(path, side)`` then ``Settings(embedding_provider="local-adapter")``: vectors of the stock
model are mapped by the float32 matrix at ``path`` and normalised again, for queries only
(``side="query"``: the model keeps the stock name, so an index built by the stock model is reused as it
is) or for queries and documents (``side="both"``: a name of its own, so documents are embedded again).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from codebase_mcp.embeddings.base import EmbeddingModel, Mode, Vectors, normalise, register
from codebase_mcp.embeddings.local import LocalEmbeddingModel
from codebase_mcp.settings import Settings

_CONFIG: dict[str, str] = {}


def configure(path: str, side: str) -> None:
    if side not in ("query", "both"):
        raise ValueError(f"side must be query or both, not {side!r}")
    _CONFIG.update(path=path, side=side)


class AdapterModel(LocalEmbeddingModel):
    def __init__(self, matrix: np.ndarray, side: str, tag: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.matrix = matrix.astype(np.float32)
        self.side = side
        if side == "both":
            self.name = f"{self.name}-adapter-{tag}"

    def embed_batch(self, texts: Sequence[str], mode: Mode = "document") -> Vectors:
        out = super().embed_batch(texts, mode)
        if mode == "query" or self.side == "both":
            out = normalise(out @ self.matrix.T)
        return out


@register("local-adapter")
def _factory(settings: Settings) -> EmbeddingModel:
    path = Path(_CONFIG["path"])
    matrix = np.load(path)
    tag = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    return AdapterModel(
        matrix,
        _CONFIG["side"],
        tag,
        threads=settings.embedding_threads,
        int8=settings.embedding_int8,
        max_tokens=settings.embedding_max_tokens,
        cache_dir=settings.home / "models",
    )
