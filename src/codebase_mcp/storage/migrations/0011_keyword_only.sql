-- Chunks searched by keyword only (embed_priority 3: translation catalogues and data files by default,
-- indexing/embed_policy.py) never get a vector: they leave the queue of chunks waiting for one.
DROP INDEX chunks_embed_queue;
CREATE INDEX chunks_embed_queue ON chunks (repository_id, embed_priority, id)
    WHERE embedding IS NULL AND embed_priority < 3;
