-- Every index run is a row of indexing_jobs, of one kind: 'index' (a queued job, claimed by any worker),
-- 'foreground' (`codebase-mcp index` in its own process) or 'sync' (the daemon's watcher following
-- edits). A foreground run or a sync is inserted as running, owned by its process, and ends completed,
-- failed or cancelled like a job; it never waits in the queue, so no worker can claim or resume it.
ALTER TABLE indexing_jobs ADD COLUMN kind text NOT NULL DEFAULT 'index'
    CHECK (kind IN ('index', 'foreground', 'sync'));
ALTER TABLE indexing_jobs ADD CONSTRAINT indexing_jobs_only_jobs_queue CHECK (kind = 'index' OR status <> 'pending');

-- at most one active job per (project, repository), as before; foreground runs and syncs of a repository
-- take turns on the repository lock instead (indexing/run.py)
DROP INDEX indexing_jobs_one_active;
CREATE UNIQUE INDEX indexing_jobs_one_active ON indexing_jobs (project_id, repo_path)
    WHERE status IN ('pending', 'running') AND kind = 'index';
DROP INDEX indexing_jobs_claimable;
CREATE INDEX indexing_jobs_claimable ON indexing_jobs (created_at)
    WHERE status IN ('pending', 'running') AND kind = 'index';

-- the transitions of migration 0002, and a run never changes its kind
CREATE OR REPLACE FUNCTION indexing_jobs_transition() RETURNS trigger LANGUAGE plpgsql AS $$
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
