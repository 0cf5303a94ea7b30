"""Embed texts with the product's model at its product budget, cached by text hash.

``LocalEmbeddingModel()`` (int8, 64 word-pieces, the indexer's inference batch) embeds; vectors are kept
in shards under train/.data/vectors/ (``keys-N.txt``: one blake2b hash per line; ``vecs-N.npy``: float32
rows), so a rerun embeds only texts it has not seen.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sources import DATA

from codebase_mcp.embeddings.local import LocalEmbeddingModel

VECTORS = DATA / "vectors"
SHARD = 2000


def key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=16).hexdigest()


class VectorCache:
    def __init__(self, folder: Path = VECTORS) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, npt.NDArray[np.float32]] = {}
        self.shards = 0
        for keys_path in sorted(folder.glob("keys-*.txt")):
            vecs = np.load(keys_path.with_name(keys_path.name.replace("keys-", "vecs-").replace(".txt", ".npy")))
            for k, v in zip(keys_path.read_text().split(), vecs, strict=True):
                self.rows[k] = v
            self.shards += 1
        self.model: LocalEmbeddingModel | None = None

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Rows for ``texts`` (embedding those not cached, a shard at a time)."""
        missing = sorted({key(t): t for t in texts if key(t) not in self.rows}.items())
        if missing:
            if self.model is None:
                self.model = LocalEmbeddingModel(cache_dir=DATA / "models")
            started = time.perf_counter()
            for start in range(0, len(missing), SHARD):
                part = missing[start : start + SHARD]
                vecs = self.model.embed_batch([t for _, t in part], "document")
                name = f"{self.shards:05d}"
                np.save(self.folder / f"vecs-{name}.npy", vecs)
                (self.folder / f"keys-{name}.txt").write_text("\n".join(k for k, _ in part) + "\n")
                self.shards += 1
                for (k, _), v in zip(part, vecs, strict=True):
                    self.rows[k] = v
                done = start + len(part)
                rate = done / (time.perf_counter() - started)
                print(f"embedded {done:,} of {len(missing):,} ({rate:.0f} texts/s)", file=sys.stderr, flush=True)
        return np.stack([self.rows[key(t)] for t in texts]) if texts else np.zeros((0, 384), np.float32)


def main() -> None:
    import json

    from mine import PAIRS, POOL

    cache = VectorCache()
    pool = [json.loads(line)["text"] for line in POOL.read_text(encoding="utf-8").splitlines()]
    queries = sorted({json.loads(line)["query"] for line in PAIRS.read_text(encoding="utf-8").splitlines()})
    started = time.perf_counter()
    cache.embed(queries)
    cache.embed(pool)
    print(f"{len(queries):,} queries and {len(pool):,} chunks embedded in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
