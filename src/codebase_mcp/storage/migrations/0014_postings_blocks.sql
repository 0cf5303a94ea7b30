-- BM25 postings in blocks (issue 23: the postings were 723 MB of a 1,137 MB database on issue 10's
-- corpus, 120 bytes a posting, and their one-row-per-posting insert was the longest part of a bulk load).
--
-- A lexeme's postings in a repository, in read order (impact descending, then chunk id), are cut into
-- runs of up to 128: one row of bm25_blocks each, with parallel arrays of chunk ids, term frequencies,
-- chunk lengths and impacts (18 bytes a posting; the impact is stored because recomputing it, in
-- numeric, for the thousand postings a query lexeme reads costs more than reading it). Rows of up to
-- 8 kB stay uncompressed in the heap (toast_tuple_target): reads take the arrays as they are. The
-- block's key is its last posting's (impact, chunk id) when it was built: every posting of a block is
-- at or before its key in read order and after the previous block's key. So a lexeme's best postings are its first blocks in key order, and the block
-- holding a posting is the first whose key is not before it.
--
-- Blocks are built in one pass at the end of a bulk load (storage/index_store.py build_blocks,
-- indexing/indexer.py build_postings). Smaller writes keep today's path: chunks inserted later get rows in
-- bm25_postings (migration 0008), which is now the *delta*; reads merge both (storage/retrieval.py).
-- A deleted chunk leaves the block that holds it (the block's key stays: still a bound), an emptied
-- block is deleted; a delta row is deleted as before. The next bulk load of the repository folds the
-- delta into blocks.
CREATE TABLE bm25_blocks (
    repository_id  bigint NOT NULL,
    lexeme         text NOT NULL,
    last_impact    real NOT NULL,
    last_chunk     bigint NOT NULL,
    chunk_ids      bigint[] NOT NULL,
    tfs            smallint[] NOT NULL,
    doc_lens       integer[] NOT NULL,
    impacts        real[] NOT NULL
) WITH (toast_tuple_target = 8160);

-- every posting, from the blocks and the delta: for tests, benches and a person with psql
CREATE VIEW bm25_posting_rows AS
    SELECT b.repository_id, b.lexeme, e.chunk_id, e.tf::integer AS tf, e.doc_len, e.impact
    FROM bm25_blocks b, unnest(b.chunk_ids, b.tfs, b.doc_lens, b.impacts) AS e(chunk_id, tf, doc_len, impact)
    UNION ALL
    SELECT repository_id, lexeme, chunk_id, tf, doc_len, impact FROM bm25_postings;

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
    -- the deleted postings, once: out of the delta, and out of the block that holds each (the first,
    -- in read order, whose key is not before it)
    WITH posting AS MATERIALIZED (
        SELECT o.repository_id, u.lexeme, o.id, bm25_impact(cardinality(u.positions), o.doc_len) AS impact
        FROM bm25_old o, unnest(o.tsv) u
        WHERE NOT EXISTS (SELECT 1 FROM bm25_bulk b WHERE b.repository_id = o.repository_id)
          AND EXISTS (SELECT 1 FROM repositories x WHERE x.id = o.repository_id)
    ), delta AS (
        DELETE FROM bm25_postings p USING posting x
        WHERE p.repository_id = x.repository_id AND p.lexeme = x.lexeme AND p.impact = x.impact
          AND p.chunk_id = x.id
    ), gone AS (
        SELECT l.repository_id, l.lexeme, l.last_impact, l.last_chunk, array_agg(g.id) AS ids
        FROM posting g
        CROSS JOIN LATERAL (
            SELECT b.repository_id, b.lexeme, b.last_impact, b.last_chunk FROM bm25_blocks b
            WHERE b.repository_id = g.repository_id AND b.lexeme = g.lexeme AND b.last_impact <= g.impact
              AND (b.last_impact < g.impact OR b.last_chunk >= g.id)
            ORDER BY b.last_impact DESC, b.last_chunk LIMIT 1) l
        GROUP BY 1, 2, 3, 4
    ), kept AS (  -- a posting of the delta is in no block
        SELECT h.repository_id, h.lexeme, h.last_impact, h.last_chunk, h.ids, b.chunk_ids, b.tfs, b.doc_lens,
               b.impacts, cardinality(h.ids) = 1 AS single, array_position(b.chunk_ids, h.ids[1]) AS p,
               cardinality(b.chunk_ids)
                 - (SELECT count(*) FROM unnest(h.ids) AS x WHERE x = ANY (b.chunk_ids)) AS left_
        FROM gone h JOIN bm25_blocks b USING (repository_id, lexeme, last_impact, last_chunk)
        WHERE b.chunk_ids && h.ids
    ), shrunk AS (
        -- one posting out (three blocks in four): the arrays cut around it, 2.5x faster than
        -- unnesting and aggregating them again; more: the others kept in order
        UPDATE bm25_blocks b
        SET chunk_ids = CASE WHEN k.single THEN k.chunk_ids[:k.p - 1] || k.chunk_ids[k.p + 1:]
                ELSE ARRAY(SELECT k.chunk_ids[i] FROM generate_subscripts(k.chunk_ids, 1) AS i
                           WHERE k.chunk_ids[i] <> ALL (k.ids) ORDER BY i) END,
            tfs = CASE WHEN k.single THEN k.tfs[:k.p - 1] || k.tfs[k.p + 1:]
                ELSE ARRAY(SELECT k.tfs[i] FROM generate_subscripts(k.chunk_ids, 1) AS i
                           WHERE k.chunk_ids[i] <> ALL (k.ids) ORDER BY i) END,
            doc_lens = CASE WHEN k.single THEN k.doc_lens[:k.p - 1] || k.doc_lens[k.p + 1:]
                ELSE ARRAY(SELECT k.doc_lens[i] FROM generate_subscripts(k.chunk_ids, 1) AS i
                           WHERE k.chunk_ids[i] <> ALL (k.ids) ORDER BY i) END,
            impacts = CASE WHEN k.single THEN k.impacts[:k.p - 1] || k.impacts[k.p + 1:]
                ELSE ARRAY(SELECT k.impacts[i] FROM generate_subscripts(k.chunk_ids, 1) AS i
                           WHERE k.chunk_ids[i] <> ALL (k.ids) ORDER BY i) END
        FROM kept k
        WHERE b.repository_id = k.repository_id AND b.lexeme = k.lexeme AND b.last_impact = k.last_impact
          AND b.last_chunk = k.last_chunk AND k.left_ > 0
    )
    DELETE FROM bm25_blocks b USING kept k
    WHERE b.repository_id = k.repository_id AND b.lexeme = k.lexeme AND b.last_impact = k.last_impact
      AND b.last_chunk = k.last_chunk AND k.left_ = 0;
    -- a deleted repository (chunks removed by its cascade): all its postings in one range
    DELETE FROM bm25_postings p USING (SELECT DISTINCT repository_id FROM bm25_old) r
        WHERE p.repository_id = r.repository_id
          AND NOT EXISTS (SELECT 1 FROM repositories x WHERE x.id = r.repository_id);
    DELETE FROM bm25_blocks p USING (SELECT DISTINCT repository_id FROM bm25_old) r
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

-- postings indexed before this migration: into blocks, the delta emptied
INSERT INTO bm25_blocks (repository_id, lexeme, last_impact, last_chunk, chunk_ids, tfs, doc_lens, impacts)
SELECT repository_id, lexeme, min(impact), (array_agg(chunk_id ORDER BY n DESC))[1],
       array_agg(chunk_id ORDER BY n), array_agg(tf::smallint ORDER BY n), array_agg(doc_len ORDER BY n),
       array_agg(impact ORDER BY n)
FROM (SELECT p.*, row_number() OVER (PARTITION BY repository_id, lexeme ORDER BY impact DESC, chunk_id) - 1 AS n
      FROM bm25_postings p
      WHERE NOT EXISTS (SELECT 1 FROM bm25_bulk b WHERE b.repository_id = p.repository_id)) x
GROUP BY repository_id, lexeme, n / 128;
TRUNCATE bm25_postings;

-- reads (a lexeme's blocks in key order) and the block of a deleted posting; the key is unique (a chunk
-- is in a lexeme's list once)
CREATE UNIQUE INDEX bm25_blocks_read ON bm25_blocks (repository_id, lexeme, last_impact DESC, last_chunk);
