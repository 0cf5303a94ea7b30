-- Freshness in every answer (issue 22, item 3): the latest file change the daemon's watcher saw in a
-- repository that no index run has stored yet (NULL: none). The watcher sets it, before it starts a sync,
-- on every batch of file events; an index run reads it before its scan and, once its store phase has
-- committed, clears it only if it still holds the value read (a change seen during the run sets a new
-- value and keeps the repository pending for the next run). Searches read it with the repository list,
-- so any process answering a search (an MCP server, the CLI, the daemon) can say the index may be behind.
ALTER TABLE repositories ADD COLUMN changes_pending_at timestamptz;
