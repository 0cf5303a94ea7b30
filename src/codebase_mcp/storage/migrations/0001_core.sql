-- Core index: projects, repositories, files, chunks, embeddings.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE projects (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO projects (id) VALUES ('default');

CREATE TABLE embedding_models (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    dimension   integer NOT NULL CHECK (dimension BETWEEN 1 AND 16000),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE repositories (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id       text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    root_path        text NOT NULL,
    name             text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_indexed_at  timestamptz,
    UNIQUE (project_id, root_path)
);

CREATE TABLE files (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repository_id  bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    path           text NOT NULL,
    language       text NOT NULL,
    size_bytes     bigint NOT NULL,
    mtime_ns       bigint NOT NULL,
    content_hash   bytea NOT NULL,
    content        text NOT NULL,
    line_count     integer NOT NULL,
    indexed_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (repository_id, path)
);

CREATE TABLE chunks (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file_id             bigint NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    repository_id       bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    ordinal             integer NOT NULL,
    start_line          integer NOT NULL,
    end_line            integer NOT NULL,
    kind                text NOT NULL,
    symbol              text,
    language            text NOT NULL,
    content             text NOT NULL,
    -- hash of the text handed to the embedding model: the key of the embedding cache
    embed_hash          bytea NOT NULL,
    -- code-aware tokens (identifiers whole and split), fed to full-text search
    search_text         text NOT NULL,
    tsv                 tsvector GENERATED ALWAYS AS (to_tsvector('simple', search_text)) STORED,
    embedding           vector,
    embedding_model_id  integer REFERENCES embedding_models (id),
    CHECK (start_line >= 1 AND end_line >= start_line),
    CHECK ((embedding IS NULL) = (embedding_model_id IS NULL)),
    UNIQUE (file_id, ordinal)
);
CREATE INDEX chunks_repository ON chunks (repository_id);
CREATE INDEX chunks_tsv ON chunks USING gin (tsv);
CREATE INDEX chunks_unembedded ON chunks (repository_id) WHERE embedding IS NULL;

-- Vectors by (model, text hash), shared by every repository: copies, branches and worktrees
-- of a repository cost nothing to embed again.
CREATE TABLE embedding_cache (
    model_id    integer NOT NULL REFERENCES embedding_models (id) ON DELETE CASCADE,
    embed_hash  bytea NOT NULL,
    embedding   vector NOT NULL,
    PRIMARY KEY (model_id, embed_hash)
);

-- What the last scan of a repository left out, and why.
CREATE TABLE skipped_files (
    repository_id  bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    path           text NOT NULL,
    reason         text NOT NULL,
    PRIMARY KEY (repository_id, path)
);
