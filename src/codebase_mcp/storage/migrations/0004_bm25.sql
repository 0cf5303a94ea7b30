-- BM25 keyword search (issue 11): our own term statistics, kept in the same transaction as the chunk
-- writes, so that the ranking never depends on pg_stats or on when autoanalyze ran.
--
-- Statistics are kept per repository (a search sums them over the repositories it covers): two
-- indexing jobs never write the same statistics rows (one active job per repository), and the rows of
-- a deleted repository are dropped with it.

-- number of tokens of a tsvector (sum of its lexemes' position counts): BM25's document length
CREATE FUNCTION tsvector_token_count(tsvector) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT coalesce(sum(cardinality(positions)), 0)::integer FROM unnest($1) $$;

ALTER TABLE chunks ADD COLUMN doc_len integer
    GENERATED ALWAYS AS (tsvector_token_count(to_tsvector('english', search_text))) STORED;

-- per repository: chunk count and total document length (N and avgdl)
CREATE TABLE bm25_docs (
    repository_id  bigint PRIMARY KEY,
    chunks         bigint NOT NULL,
    total_len      bigint NOT NULL
);

-- per repository and lexeme: the number of chunks containing it (document frequency)
CREATE TABLE bm25_terms (
    repository_id  bigint NOT NULL,
    lexeme         text NOT NULL,
    df             integer NOT NULL,
    PRIMARY KEY (repository_id, lexeme)
);

CREATE FUNCTION bm25_chunks_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
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
    RETURN NULL;
END $$;

CREATE FUNCTION bm25_chunks_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bm25_docs AS d (repository_id, chunks, total_len)
    SELECT o.repository_id, -count(*), -sum(o.doc_len) FROM bm25_old o GROUP BY 1 ORDER BY 1
    ON CONFLICT (repository_id) DO UPDATE
        SET chunks = d.chunks + EXCLUDED.chunks, total_len = d.total_len + EXCLUDED.total_len;
    INSERT INTO bm25_terms AS t (repository_id, lexeme, df)
    SELECT o.repository_id, u.lexeme, -count(*) FROM bm25_old o, unnest(o.tsv) u
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (repository_id, lexeme) DO UPDATE SET df = t.df + EXCLUDED.df;
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

CREATE TRIGGER bm25_chunks_inserted AFTER INSERT ON chunks
    REFERENCING NEW TABLE AS bm25_new FOR EACH STATEMENT EXECUTE FUNCTION bm25_chunks_inserted();
CREATE TRIGGER bm25_chunks_deleted AFTER DELETE ON chunks
    REFERENCING OLD TABLE AS bm25_old FOR EACH STATEMENT EXECUTE FUNCTION bm25_chunks_deleted();

-- search_text is written once per chunk; a change would bypass the statistics
CREATE FUNCTION chunks_search_text_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'chunks.search_text cannot change; delete and insert the chunk'
        USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER chunks_search_text_frozen BEFORE UPDATE OF search_text ON chunks
    FOR EACH ROW WHEN (OLD.search_text IS DISTINCT FROM NEW.search_text)
    EXECUTE FUNCTION chunks_search_text_frozen();

-- chunks indexed before this migration
INSERT INTO bm25_docs (repository_id, chunks, total_len)
SELECT repository_id, count(*), sum(doc_len) FROM chunks GROUP BY 1;
INSERT INTO bm25_terms (repository_id, lexeme, df)
SELECT c.repository_id, u.lexeme, count(*) FROM chunks c, unnest(c.tsv) u GROUP BY 1, 2;
