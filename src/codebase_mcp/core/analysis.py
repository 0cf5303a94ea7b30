"""Keyword text analysis in Python: PostgreSQL's ``to_tsvector('english', text)``, computed here.

Chunks' keyword text (``tokens.search_text``) and query terms (``tokens.query_terms``) hold nothing but
lowercase ASCII letters, digits, underscores and spaces. On that alphabet PostgreSQL's default parser
and ``english`` configuration (checked token shape by token shape with ``ts_debug``) do this:

* underscores and spaces separate tokens; a token is a maximal run of letters and digits, except that
  a run starting with ``digits e digits`` followed by a letter is two tokens (``1e5x``: the scientific
  number ``1e5`` and the word ``x``);
* a token of letters only (``asciiword``) goes to ``english_stem``: a stop word (PostgreSQL's
  ``english.stop``, ``STOP_WORDS``) gives no lexeme, any other word its Snowball English stem; a word
  over 1,000 bytes is kept unstemmed;
* any other token (``numword``, ``uint``, ``sfloat``) goes to ``simple``: kept as it is;
* every token counts one position, stop words included; a token of 2,047 bytes or more is dropped
  without one;
* a lexeme keeps its distinct positions, each capped at 16,383, at most 255 of them.

``analyse`` gives each lexeme its positions and the document length BM25 uses (the number of
positions kept, ``tsvector_token_count``), and ``tsvector_binary`` the value in PostgreSQL's binary
format, which the chunk writer copies as is: PostgreSQL parses no chunk text. ``query_lexemes`` does
for query terms what ``to_tsvector`` per term did. tests/core/test_analysis.py holds all of this
against the server.

Stems come from PyStemmer (Snowball in C), cached per word. Its Snowball release is not the server's:
PyStemmer 3.1 and PostgreSQL 18 disagree on about 0.2 % of English words (``organization``,
``university``, ``internal``, ``evening``, ``-ologist``: docs/benchmarks/indexing.md lists them), and another
PostgreSQL release may differ elsewhere. So each distinct word is checked once per process against the
server's ``english_stem`` (``storage/search_store.check_stems``: one statement for the words not
checked yet), and the server's stem wins: the lexemes are ``to_tsvector``'s on any server, and those of
indexes built before this module. A text analysed before a correction that holds a corrected word is
analysed again (``corrected_since``).
"""

from __future__ import annotations

import itertools
import re
import struct
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import Stemmer

#: PostgreSQL's ``tsearch_data/english.stop`` (the ``english_stem`` dictionary's stop words), in its order
_ENGLISH_STOP = """
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her
hers herself it its itself they them their theirs themselves what which who whom this that these
those am is are was were be been being have has had having do does did doing a an the and but if or
because as until while of at by for with about against between into through during before after
above below to from up down in out on off over under again further then once here there when where
why how all any both each few more most other some such no nor not only own same so than too very s
t can will just don should now
"""
STOP_WORDS: frozenset[str] = frozenset(_ENGLISH_STOP.split())
MAX_TOKEN_BYTES = 2046  # a longer token is dropped (PostgreSQL: "word is too long to be indexed")
MAX_STEMMED = 1000  # a longer word is kept unstemmed (dict_snowball.c)
MAX_POSITION = 16383  # positions above are this one (tsvector's LIMITPOS)
MAX_POSITIONS = 255  # positions kept per lexeme (MAXNUMPOS - 1)

_RUN = re.compile(r"[a-z0-9]+")
_SFLOAT = re.compile(r"[0-9]+e[0-9]+(?=[a-z])")  # the parser's scientific number, before letters
#: a lexeme's position count and positions, big-endian, by count
_POSITIONS = [struct.Struct(f">{n + 1}H") for n in range(MAX_POSITIONS + 1)]
_CACHE_SIZE = 1 << 18  # distinct tokens whose lexeme is kept (code repeats its words)
_STOP = ""  # cached lexeme of a stop word

_stemmer = Stemmer.Stemmer("english")
_lexemes_of: dict[str, tuple[str, ...]] = {}  # piece of text -> its lexemes (a cache)
_encoded: dict[str, bytes] = {}  # lexeme -> its bytes and a NUL (a cache)
_server_stem: dict[str, str] = {}  # word -> the server's stem, where PyStemmer's differs
_checked: set[str] = set()  # words whose PyStemmer stem the server confirmed or corrected
_unchecked: set[str] = set()  # words stemmed by PyStemmer and not checked yet
_lock = threading.Lock()  # over the lexicon's updates (chunks are analysed in worker threads)
_generation = 0  # how many times the server corrected the lexicon
_corrected: list[frozenset[str]] = []  # the words corrected by each of them


@dataclass(frozen=True, slots=True)
class Analysed:
    """A text's lexemes in tsvector order (bytewise), each with its positions (ascending)."""

    lexemes: dict[str, list[int]]
    #: the lexicon's ``generation()`` when the analysis began: a text analysed before a correction of the
    #: server's that holds a corrected word is analysed again (``corrected_since``)
    generation: int = 0

    @property
    def doc_len(self) -> int:
        """BM25's document length: the positions kept (``tsvector_token_count``, migration 0004)."""
        return sum(map(len, self.lexemes.values()))


def _lexeme(token: str) -> str:
    """The lexeme of one token; ``_STOP`` for a stop word."""
    if not token.isalpha():  # digits in it: numword, uint or sfloat (the ``simple`` dictionary)
        return token
    if len(token) > MAX_STEMMED:
        return token
    if token in STOP_WORDS:
        return _STOP
    fixed = _server_stem.get(token)
    if fixed is not None:
        return fixed
    if token not in _checked:
        _unchecked.add(token)
    return str(_stemmer.stemWord(token))


def _token_lexemes(token: str) -> tuple[str, ...]:
    """The lexemes of one space- and underscore-free piece of text, one per position it takes
    (``_STOP`` for a stop word): none for an empty piece or a token too long to index, two for a
    scientific number followed by letters."""
    if not _RUN.fullmatch(token):
        if not token:
            return ()
        raise ValueError("keyword analysis takes lowercase ASCII letters, digits, '_' and ' ' only")
    number = _SFLOAT.match(token)
    parts = (number[0], token[number.end() :]) if number else (token,)
    return tuple(_lexeme(part) for part in parts if len(part) <= MAX_TOKEN_BYTES)


def _cached(piece: str) -> bool:
    """Whether a piece's lexemes are cached: all but the scientific numbers followed by letters (rare),
    so that the only cached piece holding a word is the word itself."""
    return _SFLOAT.match(piece) is None


def _lexemes(pieces: list[str]) -> list[str]:
    """The lexemes of the pieces of a text, one per position (cached per piece)."""
    get = _lexemes_of.get
    found: list[tuple[str, ...] | None] = list(map(get, pieces))
    if None in found:
        with _lock:  # a correction between _lexeme and the cache's update would be lost
            if len(_lexemes_of) > _CACHE_SIZE:
                _lexemes_of.clear()
            for i, lex in enumerate(found):
                if lex is None:
                    found[i] = _token_lexemes(pieces[i])
                    if _cached(pieces[i]):
                        _lexemes_of[pieces[i]] = found[i]  # type: ignore[assignment]
    return list(itertools.chain.from_iterable(found))  # type: ignore[arg-type]


def generation() -> int:
    """How many times the server corrected the lexicon (``record_server_stems``)."""
    return _generation


def unchecked_words() -> list[str]:
    """The words this process stemmed with PyStemmer and has not had checked by the server yet. They
    stay on the list until ``record_server_stems`` has their stems: a check under way elsewhere does not
    take them from another caller, which then waits for no one's answer but its own."""
    with _lock:
        return list(_unchecked)


def take_unchecked() -> list[str]:
    """``unchecked_words``, handed over: a worker process (indexing/prepare.py) gives them to the process
    that has them checked, and does not list them again."""
    with _lock:
        words = list(_unchecked)
        _checked.update(words)
        _unchecked.clear()
    return words


def note_unchecked(words: Iterable[str]) -> None:
    """Words another process stemmed with PyStemmer (``take_unchecked``): those not checked here yet go
    on this process's list, for ``record_server_stems``."""
    with _lock:
        _unchecked.update(w for w in words if w not in _checked)


def lexicon_snapshot() -> tuple[dict[str, str], int]:
    """Every word whose stem the server corrected, with its stem, and the generation they make, read
    together: what ``record_server_stems`` needs to give another process this one's lexicon, and the
    stamp of what it analyses with it."""
    with _lock:
        return dict(_server_stem), _generation


def record_server_stems(stems: dict[str, str]) -> set[str]:
    """Record the server's stems (``ts_lexize('english_stem', word)``, ``""`` for a stop word) of words
    from ``unchecked_words``; returns the words whose lexeme they changed (texts holding them must be
    analysed again). PyStemmer's Snowball release and the server's differ on a few English words
    (``organization``, ``university``, ``evening``, ``-ologist``...): the server's stem wins, so that the
    lexemes stay those of ``to_tsvector`` on any server and in indexes built before this module."""
    global _generation
    changed = set()
    with _lock:
        if len(_checked) > _CACHE_SIZE * 4:
            _checked.clear()
        for word, stem in stems.items():
            _checked.add(word)
            _unchecked.discard(word)
            if stem != _stemmer.stemWord(word) and _server_stem.get(word) != stem:
                _server_stem[word] = stem
                _lexemes_of.pop(word, None)
                changed.add(word)
        if changed:
            _corrected.append(frozenset(changed))
            _generation += 1
    return changed


def corrected_since(generation: int) -> frozenset[str]:
    """The words the server corrected after the lexicon's ``generation``: a text analysed then holding
    one of them must be analysed again."""
    return frozenset().union(*_corrected[generation:])


def holds_any(text: str, words: frozenset[str]) -> bool:
    """Whether ``text`` (of ``search_text``'s alphabet) holds one of ``words`` as a token."""
    return bool(words) and not words.isdisjoint(_pieces(text))


def _pieces(text: str) -> list[str]:
    pieces = text.replace("_", " ").split(" ")
    for piece in pieces:  # a scientific number followed by a word: the word
        if piece[:1].isdigit() and (number := _SFLOAT.match(piece)):
            pieces.append(piece[number.end() :])
    return pieces


def analyse(text: str) -> Analysed:
    """``to_tsvector('english', text)`` for a text of ``search_text``'s alphabet; raises ``ValueError``
    on any other text, where this is not PostgreSQL's parser."""
    began = _generation
    lexemes = _lexemes(text.replace("_", " ").split(" "))
    positions: defaultdict[str, list[int]] = defaultdict(list)
    for pos, lex in enumerate(lexemes, 1):
        positions[lex].append(pos)
    positions.pop(_STOP, None)
    if positions and (len(lexemes) > MAX_POSITION or max(map(len, positions.values())) > MAX_POSITIONS):
        return Analysed({lex: _capped(p) for lex, p in sorted(positions.items())}, began)
    return Analysed(dict(sorted(positions.items())), began)


def _capped(positions: list[int]) -> list[int]:
    capped = [p for p in positions if p < MAX_POSITION]
    if len(capped) < len(positions):
        capped.append(MAX_POSITION)
    return capped[:MAX_POSITIONS]


def tsvector_binary(analysed: Analysed) -> bytes:
    """The tsvector in PostgreSQL's binary format (``tsvectorsend``): the entry count, then per lexeme
    its bytes, a NUL, its position count and positions (weight D: no flag bits), all big-endian."""
    parts = [len(analysed.lexemes).to_bytes(4, "big")]
    encoded = _encoded.get
    for lex, positions in analysed.lexemes.items():
        parts.append(encoded(lex) or _encode(lex))
        parts.append(_POSITIONS[len(positions)].pack(len(positions), *positions))
    return b"".join(parts)


def _encode(lexeme: str) -> bytes:
    if len(_encoded) > _CACHE_SIZE:
        _encoded.clear()
    out = _encoded[lexeme] = lexeme.encode() + b"\0"
    return out


def tsvector_text(analysed: Analysed) -> str:
    """The tsvector as text (``tsvectorout``): ``'lexeme':1,5 ...``; lexemes need no escaping."""
    return " ".join(f"'{lex}':{','.join(map(str, p))}" for lex, p in analysed.lexemes.items())


def query_lexemes(terms: Iterable[str]) -> list[str]:
    """The query terms as the index stores them (stemmed, stop words gone), distinct, in order: each
    term's lexemes in tsvector order, as ``to_tsvector('english', term)`` per term gave them."""
    out: dict[str, None] = {}
    for term in terms:
        for lex in analyse(term).lexemes:
            out.setdefault(lex, None)
    return list(out)
