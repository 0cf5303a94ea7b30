-- Freshness: the background daemon watches repositories indexed on its own machine (``host``), unless
-- the repository opted out (``watch``). ``last_indexed_at`` doubles as "last synced": every sync of a
-- watched repository is an incremental index run that ends by setting it.
ALTER TABLE repositories ADD COLUMN host text;
ALTER TABLE repositories ADD COLUMN watch boolean NOT NULL DEFAULT true;
