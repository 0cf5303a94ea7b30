-- BM25 postings (issue 11, keyword arm latency): one row per (chunk, lexeme) with the lexeme's term
-- frequency in the chunk and the chunk's length, so that a search reads only the postings of its query
-- lexemes, best first, instead of scoring every GIN candidate from its tsvector (about 8 us each).
--
-- Kept by the same statement triggers as bm25_docs and bm25_terms (migration 0004), in the transaction
-- that writes or deletes the chunks. Postings of a repository are only ever read together with its
-- statistics.

-- BM25's term-frequency part at a fixed reference length (k1 1.2, b 0.75, avgdl 100): the order in which
-- a lexeme's postings are read (a chunk's "impact" for that lexeme). Queries score with the real avgdl.
CREATE FUNCTION bm25_impact(tf integer, doc_len integer) RETURNS real
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (tf::float8 / (tf + 1.2 * (1 - 0.75 + 0.75 * doc_len / 100.0)))::real;

CREATE TABLE bm25_postings (
    repository_id  bigint NOT NULL,
    lexeme         text NOT NULL,
    chunk_id       bigint NOT NULL,
    tf             integer NOT NULL,
    doc_len        integer NOT NULL,
    impact         real NOT NULL
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
           FROM bm25_old o, unnest(o.tsv) u) x
    WHERE p.repository_id = x.repository_id AND p.lexeme = x.lexeme AND p.impact = x.impact
      AND p.chunk_id = x.id;
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

-- chunks indexed before this migration
INSERT INTO bm25_postings (repository_id, lexeme, chunk_id, tf, doc_len, impact)
SELECT c.repository_id, u.lexeme, c.id, cardinality(u.positions), c.doc_len,
       bm25_impact(cardinality(u.positions), c.doc_len)
FROM chunks c, unnest(c.tsv) u;

-- one index serves reads (a lexeme's postings, highest impact first, index-only) and deletes (the
-- deleted chunk's lexemes, tf and length give the whole key)
CREATE INDEX bm25_postings_read ON bm25_postings (repository_id, lexeme, impact DESC, chunk_id)
    INCLUDE (tf, doc_len);
