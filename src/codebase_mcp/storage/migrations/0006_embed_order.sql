-- Semantic coverage arrives early: chunks are embedded in priority order (0: definitions in non-test
-- code, 1: other non-test code, 2: tests), found through a partial index of what still lacks a vector;
-- jobs report the share of their repository's chunks that have one.
ALTER TABLE chunks ADD COLUMN embed_priority smallint NOT NULL DEFAULT 1;
DROP INDEX chunks_unembedded;  -- (repository_id) only: the queue below serves its queries too
CREATE INDEX chunks_embed_queue ON chunks (repository_id, embed_priority, id) WHERE embedding IS NULL;
ALTER TABLE indexing_jobs ADD COLUMN coverage_percent real
    CHECK (coverage_percent IS NULL OR coverage_percent BETWEEN 0 AND 100);
