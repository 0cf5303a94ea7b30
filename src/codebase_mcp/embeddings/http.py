"""Embeddings from a server the user runs: an OpenAI-compatible ``/embeddings`` endpoint (OpenAI,
vLLM, llama.cpp, LM Studio, Ollama's ``/v1``) or Ollama's native ``/api/embed``. Transient failures
are retried with exponential backoff; a wrong dimension is an error, never stored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from codebase_mcp.embeddings.base import EmbeddingModel, Mode, Vectors, normalise, register
from codebase_mcp.errors import EmbeddingError
from codebase_mcp.settings import Settings


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code == 429 or exc.response.status_code >= 500
    return isinstance(exc, httpx.TransportError)


class HttpEmbeddingModel(EmbeddingModel):
    def __init__(
        self,
        url: str,
        model: str,
        dimension: int,
        api_key: str | None = None,
        attempts: int = 5,
        timeout: float = 60.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.name = f"http:{model}"
        self.dimension = dimension
        self.attempts = attempts
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers)
        self._ollama = self.url.endswith("/api/embed") or self.url.endswith("/api")

    def _post(self, texts: list[str]) -> list[list[float]]:
        if self._ollama:
            endpoint = self.url if self.url.endswith("/embed") else self.url + "/embed"
            response = self._client.post(endpoint, json={"model": self.model, "input": texts})
            response.raise_for_status()
            body: Any = response.json()
            return list(body["embeddings"])
        response = self._client.post(self.url + "/embeddings", json={"model": self.model, "input": texts})
        response.raise_for_status()
        body = response.json()
        rows = sorted(body["data"], key=lambda item: item.get("index", 0))
        return [row["embedding"] for row in rows]

    def embed_batch(self, texts: Sequence[str], mode: Mode = "document") -> Vectors:
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=0.5, max=10),
                retry=retry_if_exception(_transient),
                reraise=True,
            ):
                with attempt:
                    rows = self._post(list(texts))
        except httpx.HTTPStatusError as exc:
            raise EmbeddingError(
                f"The embedding server at {self.url} answered HTTP {exc.response.status_code} "
                f"after {self.attempts} attempts. Check CODEBASE_MCP_EMBEDDING_URL and the server's log."
            ) from exc
        except httpx.HTTPError as exc:
            raise EmbeddingError(
                f"Cannot reach the embedding server at {self.url} ({type(exc).__name__}). Is it running?"
            ) from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingError(
                f"The embedding server at {self.url} sent a response that is not an embeddings list."
            ) from exc
        if len(rows) != len(texts):
            raise EmbeddingError(f"The embedding server returned {len(rows)} vectors for {len(texts)} texts.")
        array = np.asarray(rows, dtype=np.float32)
        if array.ndim != 2 or array.shape[1] != self.dimension:
            got = array.shape[1] if array.ndim == 2 else "ragged"
            raise EmbeddingError(
                f"The embedding server returned vectors of dimension {got}, expected {self.dimension}. "
                "Set CODEBASE_MCP_EMBEDDING_DIMENSION to the model's dimension."
            )
        return normalise(array)


@register("http")
def _factory(settings: Settings) -> EmbeddingModel:
    if not settings.embedding_url or not settings.embedding_dimension:
        raise EmbeddingError(
            "The http embedding provider needs CODEBASE_MCP_EMBEDDING_URL (e.g. "
            "http://127.0.0.1:11434/v1) and CODEBASE_MCP_EMBEDDING_DIMENSION."
        )
    return HttpEmbeddingModel(
        settings.embedding_url,
        settings.embedding_model,
        settings.embedding_dimension,
        settings.embedding_api_key,
    )
