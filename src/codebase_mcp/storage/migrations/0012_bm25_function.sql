-- BM25 (Lucene's variant, k1 1.2, b 0.75) defined once: one query lexeme's share of a chunk's score, its
-- idf times the term-frequency part at the chunk's length against the searched repositories' average.
-- Both keyword paths score with it (the postings' partial and exact scores, the GIN candidates' scores;
-- storage/retrieval.py and storage/search_store.py). bm25_impact() (migration 0008) is its tf part at the
-- reference length 100, computed in numeric and stored as real: the postings' sort key, compared for
-- equality when postings are deleted, so it stays as it was; tests/storage/test_search_store.py checks
-- that the two agree, and that search_store.impact_bound (the Python bound) holds against this one.
CREATE FUNCTION bm25(idf float8, tf float8, doc_len float8, avgdl float8) RETURNS float8
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN idf * tf / (tf + 1.2 * (1 - 0.75 + 0.75 * doc_len / avgdl));
