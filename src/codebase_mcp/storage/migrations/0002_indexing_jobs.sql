-- Background indexing jobs. The state machine is enforced here, not only in Python.
CREATE TYPE job_status AS ENUM ('pending', 'running', 'completed', 'failed', 'cancelled');

CREATE TABLE indexing_jobs (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id        text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    repo_path         text NOT NULL,
    status            job_status NOT NULL DEFAULT 'pending',
    phase             text NOT NULL DEFAULT 'queued'
                      CHECK (phase IN ('queued', 'scanning', 'chunking', 'embedding', 'finalizing', 'done')),
    status_message    text,
    error_message     text,
    force_reindex     boolean NOT NULL DEFAULT false,
    files_total       integer NOT NULL DEFAULT 0,
    files_indexed     integer NOT NULL DEFAULT 0,
    files_skipped     integer NOT NULL DEFAULT 0,
    chunks_created    integer NOT NULL DEFAULT 0,
    chunks_embedded   integer NOT NULL DEFAULT 0,
    progress_percent  real NOT NULL DEFAULT 0 CHECK (progress_percent BETWEEN 0 AND 100),
    eta_seconds       real,
    attempt           integer NOT NULL DEFAULT 0,
    worker_id         text,
    heartbeat_at      timestamptz,
    cancel_requested  boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    completed_at      timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((status IN ('completed', 'failed', 'cancelled')) = (completed_at IS NOT NULL))
);
-- at most one active job per (project, repository)
CREATE UNIQUE INDEX indexing_jobs_one_active ON indexing_jobs (project_id, repo_path)
    WHERE status IN ('pending', 'running');
CREATE INDEX indexing_jobs_claimable ON indexing_jobs (created_at) WHERE status IN ('pending', 'running');
CREATE INDEX indexing_jobs_finished ON indexing_jobs (completed_at) WHERE completed_at IS NOT NULL;

CREATE FUNCTION indexing_jobs_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
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

CREATE TRIGGER indexing_jobs_transition BEFORE UPDATE ON indexing_jobs
    FOR EACH ROW EXECUTE FUNCTION indexing_jobs_transition();
