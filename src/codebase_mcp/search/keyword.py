"""Keyword retrieval over the chunks' full-text index, with term selection that keeps it fast.

Ranking every chunk that contains a very common term (``self``, ``return``, a file extension) costs
about 10 µs per row: a 300,000-chunk index would spend seconds on terms that barely change the
ranking, as BM25's inverse document frequency would tell. PostgreSQL's statistics on the ``tsv``
column already know each common lexeme's frequency, so the query keeps its rarest terms up to a row
budget, and falls back to requiring all terms (an intersection) when every term is common.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from codebase_mcp.storage.database import Conn

ROW_BUDGET = 4000  # estimated matching rows ranked per query
STATS_TTL_SECONDS = 300.0


@dataclass
class TermStats:
    """Frequencies of the most common lexemes (share of chunks containing each) and the chunk count."""

    freqs: dict[str, float] = field(default_factory=dict)
    rows: float = 0.0
    loaded_at: float = 0.0

    @property
    def floor(self) -> float:
        """Upper bound of the frequency of a lexeme not in the list."""
        return min(self.freqs.values()) if self.freqs else 0.0

    def estimate(self, lexeme: str) -> float:
        return self.rows * self.freqs.get(lexeme, self.floor / 2)


async def load_stats(conn: Conn) -> TermStats:
    cur = await conn.execute(
        "SELECT most_common_elems::text::text[] AS elems, most_common_elem_freqs AS freqs, "
        " (SELECT reltuples FROM pg_class WHERE oid = 'chunks'::regclass) AS rows "
        "FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'chunks' AND attname = 'tsv'"
    )
    row = await cur.fetchone()
    stats = TermStats(loaded_at=time.monotonic())
    if row and row["elems"] and row["freqs"]:
        stats.freqs = dict(zip(row["elems"], row["freqs"], strict=False))
        stats.rows = max(float(row["rows"] or 0), 0.0)
    return stats


async def lexemes(conn: Conn, terms: list[str]) -> list[str]:
    """The query terms as the index stores them (stemmed, stopwords gone), in order, distinct."""
    cur = await conn.execute(
        "SELECT t.ord, array(SELECT lexeme FROM unnest(to_tsvector('english', t.term))) AS lex "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS t(term, ord) ORDER BY t.ord",
        (terms,),
    )
    out: dict[str, None] = {}
    for row in await cur.fetchall():
        for lex in row["lex"]:
            out.setdefault(lex, None)
    return list(out)


def build_tsquery(lexes: list[str], stats: TermStats) -> str:
    """A tsquery (in ``simple`` syntax over already normalised lexemes) that is selective enough."""
    quoted = {lex: "'" + lex.replace("'", "''").replace("\\", "\\\\") + "'" for lex in lexes}
    if not stats.freqs or len(lexes) == 1:
        return " | ".join(quoted.values())
    ordered = sorted(lexes, key=stats.estimate)
    if stats.estimate(ordered[0]) > ROW_BUDGET:
        return " & ".join(quoted[lex] for lex in ordered)  # every term is common: intersect them
    chosen: list[str] = []
    total = 0.0
    for lex in ordered:
        total += stats.estimate(lex)
        if chosen and total > ROW_BUDGET:
            break
        chosen.append(lex)
    return " | ".join(quoted[lex] for lex in chosen)
