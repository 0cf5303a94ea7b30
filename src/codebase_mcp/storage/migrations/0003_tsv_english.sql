-- Keyword search: stem the code-aware tokens (English), so "parsing" finds "parse" and "records"
-- finds "record". Queries are normalised with the same configuration (search/keyword.py).
DROP INDEX IF EXISTS chunks_tsv;
ALTER TABLE chunks DROP COLUMN tsv;
ALTER TABLE chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', search_text)) STORED;
CREATE INDEX chunks_tsv ON chunks USING gin (tsv);
