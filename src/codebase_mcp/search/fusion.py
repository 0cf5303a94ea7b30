"""Fusion of the keyword and dense lists.

Each arm is over-fetched (``fetch_size``: about 5x the results wanted, at least 50). Its scores are
min-max normalised over its own list (BM25 scores as they are; dense cosine distances turned into
similarities first), so the best of each list is 1 and its worst 0; a chunk missing from an arm gets 0
there. The fused score is ``w * keyword + (1 - w) * dense``, where the lexical weight ``w`` depends on
the query's kind: a query that looks like one identifier leans on the keyword arm, a natural-language
query balances both. When only one arm answered (keyword mode, or the model is down), its normalised
score is the score. The weights were tuned on the ``tune`` half of ``bench/evaluate_multi.py``
(docs/benchmarks/quality-docstring.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from codebase_mcp.domain import RetrievedChunk
from codebase_mcp.search.query import QueryKind
from codebase_mcp.search.ranking import Candidate


@dataclass(frozen=True)
class FusionWeights:
    """Weight of the keyword arm, by query kind (the dense arm gets the rest)."""

    identifier: float = 0.8
    natural: float = 0.5

    def lexical(self, kind: QueryKind) -> float:
        return self.identifier if kind == "identifier" else self.natural


def fetch_size(limit: int, least: int = 50) -> int:
    """How many candidates each arm returns for ``limit`` results."""
    return max(5 * limit, least)


def _normalised(values: Sequence[float]) -> list[float]:
    if not values:
        return []
    lo, hi = min(values), max(values)
    if hi - lo <= 1e-12:
        return [1.0] * len(values)
    return [(v - lo) / (hi - lo) for v in values]


def fuse(
    keyword: Sequence[RetrievedChunk], dense: Sequence[RetrievedChunk], kind: QueryKind, weights: FusionWeights
) -> list[Candidate]:
    """Candidates with their fused score, best first (ties: lower chunk id)."""
    both = bool(keyword) and bool(dense)
    w = weights.lexical(kind) if both else (1.0 if keyword else 0.0)
    by_id: dict[int, Candidate] = {}
    kw_norm = _normalised([k.score for k in keyword])
    for rank_no, (found, norm) in enumerate(zip(keyword, kw_norm, strict=True), 1):
        c = by_id.setdefault(found.chunk_id, Candidate.of(found))
        c.keyword_rank = rank_no
        c.signals["bm25"] = found.score
        c.signals["keyword"] = norm
    dense_norm = _normalised([1.0 - d.score for d in dense])  # cosine distance -> similarity
    for rank_no, (found, norm) in enumerate(zip(dense, dense_norm, strict=True), 1):
        c = by_id.setdefault(found.chunk_id, Candidate.of(found))
        c.dense_rank = rank_no
        c.signals["cosine_distance"] = found.score
        c.signals["dense"] = norm
    for c in by_id.values():
        c.score = w * c.signals.get("keyword", 0.0) + (1.0 - w) * c.signals.get("dense", 0.0)
        c.signals["fused"] = c.score
    return sorted(by_id.values(), key=lambda c: (-c.score, c.chunk_id))
