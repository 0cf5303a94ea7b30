"""The embedding interface: ``embed_batch(texts, mode)`` returns one L2-normalised float32 row per
text. ``mode`` is ``"document"`` for indexed chunks and ``"query"`` for search queries (models such as
E5 prefix them differently). Implementations register a factory under a provider name."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from codebase_mcp.errors import CodebaseError
from codebase_mcp.settings import Settings

Mode = Literal["document", "query"]
Vectors = npt.NDArray[np.float32]


class EmbeddingModel(ABC):
    #: Name recorded with every vector; vectors of two names are never compared.
    name: str
    dimension: int

    @abstractmethod
    def embed_batch(self, texts: Sequence[str], mode: Mode = "document") -> Vectors:
        """Embed ``texts``; shape ``(len(texts), dimension)``, rows of unit length."""

    def load(self) -> None:
        """Do now what the first call would do anyway (read weights, build a session); blocking, so
        callers run it in a thread. Nothing by default."""
        return None

    def embed_query(self, text: str) -> Vectors:
        row: Vectors = self.embed_batch([text], "query")[0]
        return row


_REGISTRY: dict[str, Callable[[Settings], EmbeddingModel]] = {}


def register(provider: str) -> Callable[[Callable[[Settings], EmbeddingModel]], Callable[[Settings], EmbeddingModel]]:
    def wrap(factory: Callable[[Settings], EmbeddingModel]) -> Callable[[Settings], EmbeddingModel]:
        _REGISTRY[provider] = factory
        return factory

    return wrap


#: The module implementing each provider; only the chosen one is imported (the http provider's HTTP
#: client, for one, costs a CLI search a tenth of a second to import).
PROVIDER_MODULES = {
    "local": "codebase_mcp.embeddings.local",
    "fake": "codebase_mcp.embeddings.fake",
    "http": "codebase_mcp.embeddings.http",
}


def create_model(settings: Settings) -> EmbeddingModel:
    provider = settings.embedding_provider
    if provider not in _REGISTRY and provider in PROVIDER_MODULES:
        importlib.import_module(PROVIDER_MODULES[provider])  # importing an implementation registers it
    factory = _REGISTRY.get(provider)
    if factory is None:
        known = sorted(set(_REGISTRY) | set(PROVIDER_MODULES))
        raise CodebaseError(f"Unknown embedding provider {provider!r}; choose one of {', '.join(known)}.")
    return factory(settings)


def normalise(vectors: npt.ArrayLike) -> Vectors:
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    result: Vectors = (array / norms).astype(np.float32)
    return result
