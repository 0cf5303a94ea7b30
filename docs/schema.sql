-- The current database schema: what the migrations in src/codebase_mcp/storage/migrations/ add up to
-- (the latest is 0014_postings_blocks.sql). Generated; do not edit. Change the schema with a new migration, then
-- run `python -m codebase_mcp.storage.schema_dump` from the repository root;
-- tests/storage/test_schema_dump.py fails while this file is not current.

--
-- Name: vector; Type: EXTENSION; Schema: -; Owner: -
--

CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public;

--
-- Name: EXTENSION vector; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON EXTENSION vector IS 'vector data type and ivfflat and hnsw access methods';

--
-- Name: job_status; Type: TYPE; Schema: public; Owner: -
--

CREATE TYPE public.job_status AS ENUM (
    'pending',
    'running',
    'completed',
    'failed',
    'cancelled'
);

--
-- Name: bm25(double precision, double precision, double precision, double precision); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.bm25(idf double precision, tf double precision, doc_len double precision, avgdl double precision) RETURNS double precision
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN ((idf * tf) / (tf + ((1.2)::double precision * ((((1)::numeric - 0.75))::double precision + (((0.75)::double precision * doc_len) / avgdl)))));

--
-- Name: bm25_chunks_deleted(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.bm25_chunks_deleted() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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

--
-- Name: bm25_chunks_inserted(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.bm25_chunks_inserted() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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

--
-- Name: bm25_impact(integer, integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.bm25_impact(tf integer, doc_len integer) RETURNS real
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (((tf)::double precision / (((tf)::numeric + (1.2 * (((1)::numeric - 0.75) + ((0.75 * (doc_len)::numeric) / 100.0)))))::double precision))::real;

--
-- Name: chunks_search_text_frozen(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.chunks_search_text_frozen() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION 'chunks.search_text cannot change; delete and insert the chunk'
        USING ERRCODE = 'check_violation';
END $$;

--
-- Name: indexing_jobs_transition(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.indexing_jobs_transition() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.updated_at := now();
    IF NEW.kind IS DISTINCT FROM OLD.kind THEN
        RAISE EXCEPTION 'job % is a % run; its kind cannot change', OLD.id, OLD.kind
            USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.status = NEW.status THEN
        IF OLD.status IN ('completed', 'failed', 'cancelled') AND NEW IS DISTINCT FROM OLD
           AND (NEW.completed_at IS DISTINCT FROM OLD.completed_at OR NEW.attempt <> OLD.attempt) THEN
            RAISE EXCEPTION 'job % is finished (%); it cannot change', OLD.id, OLD.status
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF (OLD.status, NEW.status) IN (
        ('pending'::job_status, 'running'::job_status), ('pending', 'failed'), ('pending', 'cancelled'),
        ('running', 'completed'), ('running', 'failed'), ('running', 'cancelled'), ('running', 'pending')
    ) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'illegal job transition % -> % for job %', OLD.status, NEW.status, OLD.id
        USING ERRCODE = 'check_violation';
END $$;

--
-- Name: symbol_tail(text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.symbol_tail(symbol text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN lower(regexp_replace(symbol, '^.*[.:#\\/> ]'::text, ''::text));

--
-- Name: tsvector_token_count(tsvector); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.tsvector_token_count(tsvector) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $_$ SELECT coalesce(sum(cardinality(positions)), 0)::integer FROM unnest($1) $_$;

--
-- Name: bm25_blocks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.bm25_blocks (
    repository_id bigint NOT NULL,
    lexeme text NOT NULL,
    last_impact real NOT NULL,
    last_chunk bigint NOT NULL,
    chunk_ids bigint[] NOT NULL,
    tfs smallint[] NOT NULL,
    doc_lens integer[] NOT NULL,
    impacts real[] NOT NULL
)
WITH (toast_tuple_target='8160');

--
-- Name: bm25_bulk; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.bm25_bulk (
    repository_id bigint NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: bm25_docs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.bm25_docs (
    repository_id bigint NOT NULL,
    chunks bigint NOT NULL,
    total_len bigint NOT NULL
);

--
-- Name: bm25_postings; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.bm25_postings (
    repository_id bigint NOT NULL,
    lexeme text NOT NULL,
    chunk_id bigint NOT NULL,
    tf integer NOT NULL,
    doc_len integer NOT NULL,
    impact real NOT NULL
);

--
-- Name: bm25_posting_rows; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.bm25_posting_rows AS
 SELECT b.repository_id,
    b.lexeme,
    e.chunk_id,
    (e.tf)::integer AS tf,
    e.doc_len,
    e.impact
   FROM public.bm25_blocks b,
    LATERAL UNNEST(b.chunk_ids, b.tfs, b.doc_lens, b.impacts) e(chunk_id, tf, doc_len, impact)
UNION ALL
 SELECT bm25_postings.repository_id,
    bm25_postings.lexeme,
    bm25_postings.chunk_id,
    bm25_postings.tf,
    bm25_postings.doc_len,
    bm25_postings.impact
   FROM public.bm25_postings;

--
-- Name: bm25_terms; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.bm25_terms (
    repository_id bigint NOT NULL,
    lexeme text NOT NULL,
    df integer NOT NULL
);

--
-- Name: chunks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.chunks (
    id bigint NOT NULL,
    file_id bigint NOT NULL,
    repository_id bigint NOT NULL,
    ordinal integer NOT NULL,
    start_line integer NOT NULL,
    end_line integer NOT NULL,
    kind text NOT NULL,
    symbol text,
    language text NOT NULL,
    content text NOT NULL,
    embed_hash bytea NOT NULL,
    search_text text NOT NULL,
    embedding public.vector,
    embedding_model_id integer,
    tsv tsvector NOT NULL,
    doc_len integer NOT NULL,
    embed_priority smallint DEFAULT 1 NOT NULL,
    CONSTRAINT chunks_check CHECK (((start_line >= 1) AND (end_line >= start_line))),
    CONSTRAINT chunks_check1 CHECK (((embedding IS NULL) = (embedding_model_id IS NULL)))
);

--
-- Name: chunks_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.chunks ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.chunks_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: embedding_cache; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.embedding_cache (
    model_id integer NOT NULL,
    embed_hash bytea NOT NULL,
    embedding public.vector NOT NULL
);

--
-- Name: embedding_models; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.embedding_models (
    id integer NOT NULL,
    name text NOT NULL,
    dimension integer NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT embedding_models_dimension_check CHECK (((dimension >= 1) AND (dimension <= 16000)))
);

--
-- Name: embedding_models_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.embedding_models ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.embedding_models_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: files; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.files (
    id bigint NOT NULL,
    repository_id bigint NOT NULL,
    path text NOT NULL,
    language text NOT NULL,
    size_bytes bigint NOT NULL,
    mtime_ns bigint NOT NULL,
    content_hash bytea NOT NULL,
    content text NOT NULL,
    line_count integer NOT NULL,
    indexed_at timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: files_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.files ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.files_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: indexing_jobs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.indexing_jobs (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    project_id text NOT NULL,
    repo_path text NOT NULL,
    status public.job_status DEFAULT 'pending'::public.job_status NOT NULL,
    phase text DEFAULT 'queued'::text NOT NULL,
    status_message text,
    error_message text,
    force_reindex boolean DEFAULT false NOT NULL,
    files_total integer DEFAULT 0 NOT NULL,
    files_indexed integer DEFAULT 0 NOT NULL,
    files_skipped integer DEFAULT 0 NOT NULL,
    chunks_created integer DEFAULT 0 NOT NULL,
    chunks_embedded integer DEFAULT 0 NOT NULL,
    progress_percent real DEFAULT 0 NOT NULL,
    eta_seconds real,
    attempt integer DEFAULT 0 NOT NULL,
    worker_id text,
    heartbeat_at timestamp with time zone,
    cancel_requested boolean DEFAULT false NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    started_at timestamp with time zone,
    completed_at timestamp with time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    coverage_percent real,
    kind text DEFAULT 'index'::text NOT NULL,
    CONSTRAINT indexing_jobs_check CHECK (((status = ANY (ARRAY['completed'::public.job_status, 'failed'::public.job_status, 'cancelled'::public.job_status])) = (completed_at IS NOT NULL))),
    CONSTRAINT indexing_jobs_coverage_percent_check CHECK (((coverage_percent IS NULL) OR ((coverage_percent >= (0)::double precision) AND (coverage_percent <= (100)::double precision)))),
    CONSTRAINT indexing_jobs_kind_check CHECK ((kind = ANY (ARRAY['index'::text, 'foreground'::text, 'sync'::text]))),
    CONSTRAINT indexing_jobs_only_jobs_queue CHECK (((kind = 'index'::text) OR (status <> 'pending'::public.job_status))),
    CONSTRAINT indexing_jobs_phase_check CHECK ((phase = ANY (ARRAY['queued'::text, 'scanning'::text, 'chunking'::text, 'embedding'::text, 'finalizing'::text, 'done'::text]))),
    CONSTRAINT indexing_jobs_progress_percent_check CHECK (((progress_percent >= (0)::double precision) AND (progress_percent <= (100)::double precision)))
);

--
-- Name: projects; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.projects (
    id text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT projects_id_check CHECK ((id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'::text))
);

--
-- Name: repositories; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.repositories (
    id bigint NOT NULL,
    project_id text NOT NULL,
    root_path text NOT NULL,
    name text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_indexed_at timestamp with time zone,
    host text,
    watch boolean DEFAULT true NOT NULL,
    changes_pending_at timestamp with time zone
);

--
-- Name: repositories_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.repositories ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.repositories_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: skipped_files; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.skipped_files (
    repository_id bigint NOT NULL,
    path text NOT NULL,
    reason text NOT NULL
);

--
-- Name: bm25_bulk bm25_bulk_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.bm25_bulk
    ADD CONSTRAINT bm25_bulk_pkey PRIMARY KEY (repository_id);

--
-- Name: bm25_docs bm25_docs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.bm25_docs
    ADD CONSTRAINT bm25_docs_pkey PRIMARY KEY (repository_id);

--
-- Name: bm25_terms bm25_terms_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.bm25_terms
    ADD CONSTRAINT bm25_terms_pkey PRIMARY KEY (repository_id, lexeme);

--
-- Name: chunks chunks_file_id_ordinal_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.chunks
    ADD CONSTRAINT chunks_file_id_ordinal_key UNIQUE (file_id, ordinal);

--
-- Name: chunks chunks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.chunks
    ADD CONSTRAINT chunks_pkey PRIMARY KEY (id);

--
-- Name: embedding_cache embedding_cache_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.embedding_cache
    ADD CONSTRAINT embedding_cache_pkey PRIMARY KEY (model_id, embed_hash);

--
-- Name: embedding_models embedding_models_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.embedding_models
    ADD CONSTRAINT embedding_models_name_key UNIQUE (name);

--
-- Name: embedding_models embedding_models_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.embedding_models
    ADD CONSTRAINT embedding_models_pkey PRIMARY KEY (id);

--
-- Name: files files_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.files
    ADD CONSTRAINT files_pkey PRIMARY KEY (id);

--
-- Name: files files_repository_id_path_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.files
    ADD CONSTRAINT files_repository_id_path_key UNIQUE (repository_id, path);

--
-- Name: indexing_jobs indexing_jobs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.indexing_jobs
    ADD CONSTRAINT indexing_jobs_pkey PRIMARY KEY (id);

--
-- Name: projects projects_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.projects
    ADD CONSTRAINT projects_pkey PRIMARY KEY (id);

--
-- Name: repositories repositories_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.repositories
    ADD CONSTRAINT repositories_pkey PRIMARY KEY (id);

--
-- Name: repositories repositories_project_id_root_path_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.repositories
    ADD CONSTRAINT repositories_project_id_root_path_key UNIQUE (project_id, root_path);

--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);

--
-- Name: skipped_files skipped_files_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.skipped_files
    ADD CONSTRAINT skipped_files_pkey PRIMARY KEY (repository_id, path);

--
-- Name: bm25_blocks_read; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX bm25_blocks_read ON public.bm25_blocks USING btree (repository_id, lexeme, last_impact DESC, last_chunk);

--
-- Name: bm25_postings_read; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX bm25_postings_read ON public.bm25_postings USING btree (repository_id, lexeme, impact DESC, chunk_id) INCLUDE (tf, doc_len);

--
-- Name: chunks_embed_queue; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX chunks_embed_queue ON public.chunks USING btree (repository_id, embed_priority, id) WHERE ((embedding IS NULL) AND (embed_priority < 3));

--
-- Name: chunks_repository; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX chunks_repository ON public.chunks USING btree (repository_id);

--
-- Name: chunks_symbol_tail; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX chunks_symbol_tail ON public.chunks USING btree (public.symbol_tail(symbol)) WHERE (symbol IS NOT NULL);

--
-- Name: chunks_tsv; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX chunks_tsv ON public.chunks USING gin (tsv);

--
-- Name: indexing_jobs_claimable; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX indexing_jobs_claimable ON public.indexing_jobs USING btree (created_at) WHERE ((status = ANY (ARRAY['pending'::public.job_status, 'running'::public.job_status])) AND (kind = 'index'::text));

--
-- Name: indexing_jobs_finished; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX indexing_jobs_finished ON public.indexing_jobs USING btree (completed_at) WHERE (completed_at IS NOT NULL);

--
-- Name: indexing_jobs_one_active; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX indexing_jobs_one_active ON public.indexing_jobs USING btree (project_id, repo_path) WHERE ((status = ANY (ARRAY['pending'::public.job_status, 'running'::public.job_status])) AND (kind = 'index'::text));

--
-- Name: chunks bm25_chunks_deleted; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER bm25_chunks_deleted AFTER DELETE ON public.chunks REFERENCING OLD TABLE AS bm25_old FOR EACH STATEMENT EXECUTE FUNCTION public.bm25_chunks_deleted();

--
-- Name: chunks bm25_chunks_inserted; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER bm25_chunks_inserted AFTER INSERT ON public.chunks REFERENCING NEW TABLE AS bm25_new FOR EACH STATEMENT EXECUTE FUNCTION public.bm25_chunks_inserted();

--
-- Name: chunks chunks_search_text_frozen; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER chunks_search_text_frozen BEFORE UPDATE OF search_text ON public.chunks FOR EACH ROW WHEN ((old.search_text IS DISTINCT FROM new.search_text)) EXECUTE FUNCTION public.chunks_search_text_frozen();

--
-- Name: indexing_jobs indexing_jobs_transition; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER indexing_jobs_transition BEFORE UPDATE ON public.indexing_jobs FOR EACH ROW EXECUTE FUNCTION public.indexing_jobs_transition();

--
-- Name: bm25_bulk bm25_bulk_repository_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.bm25_bulk
    ADD CONSTRAINT bm25_bulk_repository_id_fkey FOREIGN KEY (repository_id) REFERENCES public.repositories(id) ON DELETE CASCADE;

--
-- Name: chunks chunks_embedding_model_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.chunks
    ADD CONSTRAINT chunks_embedding_model_id_fkey FOREIGN KEY (embedding_model_id) REFERENCES public.embedding_models(id);

--
-- Name: chunks chunks_file_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.chunks
    ADD CONSTRAINT chunks_file_id_fkey FOREIGN KEY (file_id) REFERENCES public.files(id) ON DELETE CASCADE;

--
-- Name: chunks chunks_repository_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.chunks
    ADD CONSTRAINT chunks_repository_id_fkey FOREIGN KEY (repository_id) REFERENCES public.repositories(id) ON DELETE CASCADE;

--
-- Name: embedding_cache embedding_cache_model_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.embedding_cache
    ADD CONSTRAINT embedding_cache_model_id_fkey FOREIGN KEY (model_id) REFERENCES public.embedding_models(id) ON DELETE CASCADE;

--
-- Name: files files_repository_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.files
    ADD CONSTRAINT files_repository_id_fkey FOREIGN KEY (repository_id) REFERENCES public.repositories(id) ON DELETE CASCADE;

--
-- Name: indexing_jobs indexing_jobs_project_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.indexing_jobs
    ADD CONSTRAINT indexing_jobs_project_id_fkey FOREIGN KEY (project_id) REFERENCES public.projects(id) ON DELETE CASCADE;

--
-- Name: repositories repositories_project_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.repositories
    ADD CONSTRAINT repositories_project_id_fkey FOREIGN KEY (project_id) REFERENCES public.projects(id) ON DELETE CASCADE;

--
-- Name: skipped_files skipped_files_repository_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.skipped_files
    ADD CONSTRAINT skipped_files_repository_id_fkey FOREIGN KEY (repository_id) REFERENCES public.repositories(id) ON DELETE CASCADE;
