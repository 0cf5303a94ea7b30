-- Storing chunks faster (issue 10: a first index of the 10,066-file corpus spent 239 CPU seconds in
-- PostgreSQL, twice what it did before the postings).
--
-- 1. ``tsv`` and ``doc_len`` become plain columns, written by the one chunk writer
--    (storage/index_store.py: store_batch) from a single to_tsvector('english', search_text) per chunk.
--    As generated columns every chunk's text was stemmed twice (once per column).
ALTER TABLE chunks ALTER COLUMN doc_len DROP EXPRESSION;
ALTER TABLE chunks ALTER COLUMN tsv DROP EXPRESSION;
ALTER TABLE chunks ALTER COLUMN doc_len SET NOT NULL;
ALTER TABLE chunks ALTER COLUMN tsv SET NOT NULL;

-- 2. Postings built in one pass after a bulk load. While a repository is listed here, the statement
--    triggers keep its bm25_docs and bm25_terms but not its postings, and its keyword searches score
--    GIN candidates from their tsvectors (storage/search_store.py); the indexer lists a repository when
--    a run writes a large share of it (a first index, a forced one, a big branch switch), and at the end
--    of the run's store phase inserts all its postings in index order in one statement and unlists it.
--    Maintaining postings per statement inserts them in scattered places of a large index, several
--    times the cost of one sorted pass (docs/benchmarks.md). A run stopped before the end leaves the
--    repository listed (searches stay exact, on the slower path) and the next run builds its postings.
CREATE TABLE bm25_bulk (
    repository_id  bigint PRIMARY KEY REFERENCES repositories (id) ON DELETE CASCADE,
    started_at     timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION bm25_chunks_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- sorted upserts: two writers always lock rows in the same order
    INSERT INTO bm25_docs AS d (repository_id, chunks, total_len)
    SELECT n.repository_id, count(*), sum(n.doc_len) FROM bm25_new n GROUP BY 1 ORDER BY 1
    ON CONFLICT (repository_id) DO UPDATE
        SET chunks = d.chunks + EXCLUDED.chunks, total_len = d.total_len + EXCLUDED.total_len;
    INSERT INTO bm25_terms AS t (repository_id, lexeme, df)
    SELECT n.repository_id, u.lexeme, count(*) FROM bm25_new n, unnest(n.tsv) u
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (repository_id, lexeme) DO UPDATE SET df = t.df + EXCLUDED.df;
    -- in index order: neighbouring keys go to the same leaf pages (about a third faster than unsorted)
    INSERT INTO bm25_postings (repository_id, lexeme, chunk_id, tf, doc_len, impact)
    SELECT n.repository_id, u.lexeme, n.id, cardinality(u.positions), n.doc_len,
           bm25_impact(cardinality(u.positions), n.doc_len)
    FROM bm25_new n, unnest(n.tsv) u
    WHERE NOT EXISTS (SELECT 1 FROM bm25_bulk b WHERE b.repository_id = n.repository_id)
    ORDER BY 1, 2, 6 DESC, 3;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION bm25_chunks_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bm25_docs AS d (repository_id, chunks, total_len)
    SELECT o.repository_id, -count(*), -sum(o.doc_len) FROM bm25_old o GROUP BY 1 ORDER BY 1
    ON CONFLICT (repository_id) DO UPDATE
        SET chunks = d.chunks + EXCLUDED.chunks, total_len = d.total_len + EXCLUDED.total_len;
    INSERT INTO bm25_terms AS t (repository_id, lexeme, df)
    SELECT o.repository_id, u.lexeme, -count(*) FROM bm25_old o, unnest(o.tsv) u
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (repository_id, lexeme) DO UPDATE SET df = t.df + EXCLUDED.df;
    DELETE FROM bm25_postings p
    USING (SELECT o.repository_id, u.lexeme, o.id, bm25_impact(cardinality(u.positions), o.doc_len) AS impact
           FROM bm25_old o, unnest(o.tsv) u
           WHERE NOT EXISTS (SELECT 1 FROM bm25_bulk b WHERE b.repository_id = o.repository_id)
             AND EXISTS (SELECT 1 FROM repositories x WHERE x.id = o.repository_id)) x
    WHERE p.repository_id = x.repository_id AND p.lexeme = x.lexeme AND p.impact = x.impact
      AND p.chunk_id = x.id;
    -- a deleted repository (chunks removed by its cascade): all its postings in one range
    DELETE FROM bm25_postings p USING (SELECT DISTINCT repository_id FROM bm25_old) r
        WHERE p.repository_id = r.repository_id
          AND NOT EXISTS (SELECT 1 FROM repositories x WHERE x.id = r.repository_id);
    DELETE FROM bm25_terms t USING (SELECT DISTINCT repository_id FROM bm25_old) r
        WHERE t.repository_id = r.repository_id AND t.df <= 0;
    DELETE FROM bm25_docs d USING (SELECT DISTINCT repository_id FROM bm25_old) r
        WHERE d.repository_id = r.repository_id AND d.chunks <= 0;
    -- a deleted repository (chunks removed by its cascade): nothing of it stays
    DELETE FROM bm25_terms t USING (SELECT DISTINCT repository_id FROM bm25_old) r
        WHERE t.repository_id = r.repository_id
          AND NOT EXISTS (SELECT 1 FROM repositories x WHERE x.id = r.repository_id);
    DELETE FROM bm25_docs d USING (SELECT DISTINCT repository_id FROM bm25_old) r
        WHERE d.repository_id = r.repository_id
          AND NOT EXISTS (SELECT 1 FROM repositories x WHERE x.id = r.repository_id);
    RETURN NULL;
END $$;
