"""The ranking stage, over the fused candidates (search/fusion.py): what knows code.

In order, for each candidate (``top`` is the best fused score, so boosts are on the fused scale):

- **definitions of the asked symbol** (search/query.py ``asked_spellings``): a chunk whose own parsed
  symbol ends in the asked name gets ``+definition * top``; identifiers inside a natural-language query
  count at their (half) strength. When the
  engine passes the candidates' stored text, the chunk's *defining line* decides how much
  (core/codenames.py ``defined_names``: a defining word then the name, a Go method, a method or field of
  a class body): a chunk named so with such a line gets it all, one named so without it (an ``impl``
  block, a later piece of a split definition) ``named_only`` of it, one not named so whose text defines
  the name (a method of a small class, a constant inside a larger chunk) ``keyword_definition`` of it, and
  ``other_case`` times that when neither the symbol nor the defining line has the query's spelling
  (``Dedup`` the type over ``dedup`` the function). Definitions that neither arm returned are added
  first (``with_definitions``, fetched by the engine);
- **query words in the file stem and folder names** (natural-language queries): ``+path_words * top``
  times the share of query words found there (prefixes of 3+ characters count);
- **symbol words**: ``x(1 + symbol_words * share of query words in the chunk's symbol)``;
- **path priors**, unless the query asks for them: tests and docs/examples are multiplied down, and so
  are ``.d.ts`` stubs and chunks of very few lines;
- **file coherence**: a file with several candidates lifts its best chunk by ``coherence * top`` times
  its share of the best file's summed fused score;
- **one slot per file**: after sorting, each further chunk of an already placed file is multiplied by
  ``same_file`` per chunk placed before it.

Each weight was measured on the ``tune`` half of ``bench/evaluate_multi.py`` (``bench/tune_ranking.py``:
docstring, identifier and module queries) and then of the agent-question evaluation
(``bench/agent_eval.py tune``: how/where/why questions judged by file); factors measured to change
nothing there (a file-stem boost, compat/vendored and package-barrel priors) are not kept. For
questions (``is_question``: "how does", "where is", a final "?") file coherence (1.0), one slot per
file (x0.7 per chunk of a file already placed) and the prior on short chunks (under 6 lines) apply:
measured on the agent questions, they lift file-level NDCG@10 most, while on descriptions of one
function (docstring queries) they cost chunk-level MRR, so other queries keep them off (short-chunk
prior under 3 lines). The figures are in docs/benchmarks/quality-docstring.md and
docs/benchmarks/quality-agent-questions.md.
Ties are broken by chunk id, so the order is deterministic.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from codebase_mcp.core import codenames
from codebase_mcp.core.languages import DEFINITION_KINDS, is_test_path
from codebase_mcp.core.tokens import code_tokens
from codebase_mcp.domain import RetrievedChunk
from codebase_mcp.search.query import AnalysedQuery

_DOC_LANGUAGES = frozenset({"markdown", "rst", "text"})
_DOC_PATH = re.compile(r"(^|/)(docs?|documentation|examples?|samples?|demos?|benches|benchmarks?)(/|$)")
_TEST_WORDS = frozenset({"test", "tests", "testing", "spec", "specs", "fixture", "fixtures", "mock"})
_DOC_WORDS = frozenset({"doc", "docs", "documentation", "readme", "guide", "tutorial", "example", "examples"})
_EXTENSIONS = re.compile(r"(\.[A-Za-z0-9]+)+$")


@dataclass(frozen=True)
class RankParams:
    """The ranking stage's weights (module docstring); the defaults are the tuned values."""

    bare_word: bool = True  # one plain lower-case word is a symbol lookup
    definition: float = 3.0
    inside: float = 0.5  # strength of identifiers inside natural-language queries
    path_words: float = 1.0
    symbol_words: float = 0.6
    definition_kind: float = 1.15
    coherence: float = 0.0
    test: float = 0.3
    doc: float = 0.75
    dts: float = 0.7  # the published prior (shared/research/ranking.md); docs/benchmarks/quality-agent-questions.md
    same_file: float = 1.0
    tiny_lines: int = 3  # chunks of fewer lines than this are "tiny"
    tiny: float = 0.7  # multiplier of tiny chunks (1: no length prior)
    # when the chunk's text is known: the definition boost's share for a chunk named so whose text has
    # no line defining the name (an ``impl`` block, a later piece of a split definition) ...
    named_only: float = 0.4
    # ... for a chunk not named so whose text defines it (a method of a small class, a constant)
    keyword_definition: float = 0.8
    # ... and when neither its symbol nor its defining line has the query's exact spelling (case)
    other_case: float = 0.5
    # a question ("how does ...", "where is ...?") asks how something works, usually across files: the
    # answer is a set of files, so file coherence, one slot per file and the short-chunk prior change
    question_coherence: float = 1.0
    question_same_file: float = 0.7
    question_tiny_lines: int = 6


DEFAULT = RankParams()


@dataclass
class Candidate:
    chunk_id: int
    file_id: int
    path: str
    symbol: str | None
    kind: str
    language: str
    keyword_rank: int | None = None
    dense_rank: int | None = None
    score: float = 0.0
    signals: dict[str, float] = field(default_factory=dict)
    lines: int = 0
    text: str | None = None  # stored text, when retrieval fetched it (defining lines)

    @classmethod
    def of(cls, found: RetrievedChunk) -> Candidate:
        return cls(
            found.chunk_id,
            found.file_id,
            found.path,
            found.symbol,
            found.kind,
            found.language,
            lines=found.lines,
            text=found.text,
        )


def with_definitions(candidates: list[Candidate], found: Iterable[RetrievedChunk]) -> list[Candidate]:
    """``candidates`` plus the chunks of ``found`` not among them (fused score 0)."""
    present = {c.chunk_id for c in candidates}
    extra = []
    for f in found:
        if f.chunk_id not in present:
            present.add(f.chunk_id)
            c = Candidate.of(f)
            c.signals["fetched"] = 1.0
            extra.append(c)
    return candidates + extra


def stem_of(path: str) -> str:
    """A file's name without its extensions, lower case (``web/index.d.ts`` -> ``index``)."""
    return _EXTENSIONS.sub("", path.rsplit("/", 1)[-1]).lower()


def _flat(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


@functools.lru_cache(maxsize=8192)
def _path_tokens(path: str) -> frozenset[str]:
    parts = path.lower().split("/")
    names = [stem_of(path), *parts[-3:-1]]
    tokens = {t for n in names for t in code_tokens(n)} | {_flat(n) for n in names}
    return frozenset(t for t in tokens if len(t) >= 3)


@functools.lru_cache(maxsize=8192)
def _symbol_tokens(symbol: str) -> frozenset[str]:
    return frozenset(code_tokens(symbol))


def _path_share(words: list[str], path: str) -> float:
    tokens = _path_tokens(path)
    matched = sum(1 for w in words if any(t.startswith(w) or w.startswith(t) for t in tokens))
    return matched / len(words) if words else 0.0


def _definition_share(c: Candidate, name: str, defined: frozenset[str] | None, p: RankParams) -> float:
    """How much of the definition boost ``c`` gets for the asked ``name`` (as spelled), given the names
    its text defines (``None``: text unknown)."""
    own = codenames.spelled_tail(c.symbol) if c.symbol else ""
    named = own.lower() == name.lower()
    if defined is None:  # text unknown: the chunk's own symbol decides
        return 1.0 if named else 0.0
    exact = name in defined
    loose = exact or name.lower() in {n.lower() for n in defined}
    if named:
        share = 1.0 if loose else p.named_only
    elif loose:
        share = p.keyword_definition
    else:
        return 0.0
    if own != name and not exact:
        share *= p.other_case
    return share


@dataclass(frozen=True)
class _Intent:
    """What the ranking stage reads of an analysed query, once per search."""

    wants_tests: bool
    wants_docs: bool
    spellings: tuple[str, ...]


def _intent(query: AnalysedQuery) -> _Intent:
    t = query.tokens
    return _Intent(bool(t & _TEST_WORDS), bool(t & _DOC_WORDS), tuple(n for n, _ in query.names))


def _definition_boost(c: Candidate, query: AnalysedQuery, intent: _Intent, p: RankParams) -> float:
    """The definition boost (module docstring), in units of the best fused score."""
    own_qualified = codenames.qualified(c.symbol) if query.qualified and c.symbol else ""
    if own_qualified and (own_qualified == query.qualified or own_qualified.endswith("." + query.qualified)):
        # the query's words spell this chunk's qualified name ("TokenBucket Allow" for the method
        # TokenBucket.Allow): as strong as an identifier query for it
        c.signals["definition"] = 1.0
        return p.definition
    boost = 0.0
    if query.names:
        defined = codenames.defined_names(c.text, intent.spellings) if c.text is not None else None
        for name, strength in query.names:
            share = _definition_share(c, name, defined, p)
            if share:
                boost += p.definition * strength * share
                c.signals["definition"] = strength * share
    return boost


def _prior(c: Candidate, intent: _Intent, p: RankParams) -> float:
    """The path and length priors: tests, docs, ``.d.ts`` stubs, tiny chunks."""
    prior = 1.0
    if not intent.wants_tests and is_test_path(c.path):
        prior *= p.test
    if not intent.wants_docs and (c.language in _DOC_LANGUAGES or _DOC_PATH.search(c.path)):
        prior *= p.doc
    base = c.path.rsplit("/", 1)[-1]
    if base.endswith(".d.ts"):
        prior *= p.dts
    if 0 < c.lines < p.tiny_lines:
        prior *= p.tiny
    return prior


def _coherence(candidates: list[Candidate]) -> dict[int, float]:
    """For the best chunk of each file with several candidates: its file's summed fused score as a share
    of the best file's (chunk id to share)."""
    file_sum: dict[int, float] = {}
    file_count: dict[int, int] = {}
    for c in candidates:
        file_sum[c.file_id] = file_sum.get(c.file_id, 0.0) + c.score
        file_count[c.file_id] = file_count.get(c.file_id, 0) + 1
    best_file_sum = max(file_sum.values()) or 1.0
    best_of_file: dict[int, Candidate] = {}
    for c in sorted(candidates, key=lambda c: (-c.score, c.chunk_id)):
        best_of_file.setdefault(c.file_id, c)
    return {c.chunk_id: file_sum[f] / best_file_sum for f, c in best_of_file.items() if file_count[f] > 1}


def _one_slot_per_file(candidates: list[Candidate], same_file: float) -> None:
    """Each further chunk of an already placed file multiplied by ``same_file`` per chunk placed before."""
    seen: dict[int, int] = {}
    for c in candidates:
        n = seen.get(c.file_id, 0)
        if n:
            c.score *= same_file**n
            c.signals["same_file"] = same_file**n
        seen[c.file_id] = n + 1
    candidates.sort(key=lambda c: (-c.score, c.chunk_id))


def rerank(candidates: list[Candidate], query: AnalysedQuery, params: RankParams = DEFAULT) -> list[Candidate]:
    """The candidates re-scored and re-ordered, best first (ties: lower chunk id). A candidate's stored
    text, when retrieval fetched it, lets the definition boost read its defining line. Each factor is
    recorded in the candidate's ``signals`` (what ``explain`` shows)."""
    if not candidates:
        return candidates
    p = params
    if query.question:
        p = replace(p, coherence=p.question_coherence, same_file=p.question_same_file, tiny_lines=p.question_tiny_lines)
    intent = _intent(query)
    terms = query.tokens
    top = max(c.score for c in candidates) or 1.0
    coherent = _coherence(candidates) if p.coherence else {}
    for c in candidates:
        factor = 1.0
        boost = _definition_boost(c, query, intent, p)
        if c.symbol and terms and p.symbol_words:
            overlap = len(terms & _symbol_tokens(c.symbol)) / len(terms)
            factor *= 1.0 + p.symbol_words * overlap
            c.signals["symbol_words"] = overlap
        if query.words and p.path_words:
            share = _path_share(list(query.words), c.path)
            boost += p.path_words * share
            c.signals["path_words"] = share
        if c.chunk_id in coherent:
            boost += p.coherence * coherent[c.chunk_id]
            c.signals["coherence"] = coherent[c.chunk_id]
        if c.kind in DEFINITION_KINDS:
            factor *= p.definition_kind
        prior = _prior(c, intent, p)
        c.signals["prior"] = prior
        c.score = (c.score * factor + top * boost) * prior
    candidates.sort(key=lambda c: (-c.score, c.chunk_id))
    if p.same_file < 1.0:  # one slot per file before others get a chance
        _one_slot_per_file(candidates, p.same_file)
    return candidates
