-- Operations on jobs (issue 24): each attempt's history, search by the
-- text of parameters and errors, retries that keep the link to the
-- original, and discarding finished jobs.

-- Trigram indexes (pg_trgm) serve `ILIKE '%text%'`. The extension's
-- functions live in a schema of their own, out of the application's way
-- (nothing in `public` is executable by PUBLIC).
CREATE SCHEMA IF NOT EXISTS extensions;
CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA extensions;

-- When the running attempt started (`started_at` is the first attempt's).
-- Not indexed, so claims stay heap-only updates.
ALTER TABLE jobs
    ADD COLUMN attempt_started_at timestamptz,
    -- The job this one retries (`POST /jobs/{id}/retry`); not a foreign
    -- key, since the original may be discarded or pruned first.
    ADD COLUMN retry_of uuid;

-- Every attempt that ended: written by the trigger below, whichever path
-- ended it (an outcome, a retry, a hand-back at shutdown, a lease that ran
-- out). Insert-only, so its indexes cost the job's updates nothing.
CREATE TABLE job_attempts (
    id          bigint GENERATED ALWAYS AS IDENTITY,
    tenant_id   uuid NOT NULL,
    job_id      uuid NOT NULL,
    attempt     integer NOT NULL,
    -- The job's kind, and when it was ready to run (created, or due if
    -- deferred): copied so the statistics read this table alone.
    kind        text NOT NULL,
    queued_at   timestamptz NOT NULL,
    worker_id   text,
    started_at  timestamptz,
    finished_at timestamptz NOT NULL,
    outcome     text NOT NULL CONSTRAINT job_attempts_outcome_check CHECK (
        outcome IN ('succeeded', 'failed', 'cancelled', 'retried', 'handed_back', 'lost')),
    error       text,
    PRIMARY KEY (tenant_id, job_id, id),
    CONSTRAINT job_attempts_job_fkey FOREIGN KEY (tenant_id, job_id)
        REFERENCES jobs (tenant_id, id) ON DELETE CASCADE
);
-- Search by error text (`q`): trigrams, so any substring of three
-- characters or more is found through the index.
CREATE INDEX job_attempts_error_trgm_idx ON job_attempts USING gin (error extensions.gin_trgm_ops)
    WHERE error IS NOT NULL;
-- The statistics (`GET /jobs/stats`): a tenant's attempts that ended in a
-- window, read from the index alone (the table is insert-only, so its
-- pages are soon all-visible).
CREATE INDEX job_attempts_tenant_finished_idx ON job_attempts (tenant_id, finished_at)
    INCLUDE (kind, outcome, attempt, started_at, queued_at);
ALTER TABLE job_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_attempts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON job_attempts USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());

-- Search by parameter text (`q`). `params` never changes after the insert,
-- so this index costs the claim and the outcome nothing.
CREATE INDEX jobs_params_trgm_idx ON jobs USING gin ((params::text) extensions.gin_trgm_ops);

-- The caller's tenant's jobs whose parameters, or one of whose attempts'
-- errors, match the ILIKE pattern. Under row-level security the planner
-- may not use the trigram indexes for ILIKE, whose operator is not
-- leakproof (it must check the policy first); this definer function reads
-- through the indexes and applies the tenant itself. Planned for each
-- pattern, since a trigram index's worth depends on it.
CREATE FUNCTION app_jobs_matching(p_pattern text) RETURNS SETOF uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RETURN QUERY EXECUTE format(
        'SELECT j.id FROM jobs j '
        'WHERE j.tenant_id = app_current_tenant() AND (j.params::text) ILIKE %1$L '
        'UNION '
        'SELECT a.job_id FROM job_attempts a '
        'WHERE a.tenant_id = app_current_tenant() AND a.error ILIKE %1$L', p_pattern);
END $$;
REVOKE ALL ON FUNCTION app_jobs_matching(text) FROM PUBLIC;

-- Records the attempt OLD was running, as NEW ends it. Every path that
-- ends a running attempt is bound to the job's tenant, so this runs as the
-- caller, under row-level security. The SET clauses undo the TID-only
-- planning of the batch that fired it, for the foreign key's check of the
-- insert.
CREATE FUNCTION job_attempt_ended() RETURNS trigger
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, public, pg_temp
SET enable_seqscan = on SET enable_indexscan = on SET enable_bitmapscan = on
AS $$
BEGIN
    INSERT INTO job_attempts (tenant_id, job_id, attempt, kind, queued_at, worker_id,
                              started_at, finished_at, outcome, error)
    VALUES (OLD.tenant_id, OLD.id, OLD.attempts, OLD.kind,
            greatest(OLD.created_at, OLD.run_at), OLD.worker_id,
            coalesce(OLD.attempt_started_at, OLD.started_at), now(),
            CASE WHEN NEW.attempts < OLD.attempts THEN 'handed_back'
                 WHEN NEW.status = 'running' THEN 'lost'
                 WHEN NEW.status = 'retrying' THEN 'retried'
                 WHEN NEW.status IN ('succeeded', 'failed', 'cancelled') THEN NEW.status
                 ELSE 'handed_back' END,
            CASE WHEN NEW.status = 'running' THEN 'the lease of worker '
                      || coalesce(OLD.worker_id, '?') || ' ran out'
                 WHEN NEW.attempts < OLD.attempts THEN NULL
                 ELSE NEW.error END);
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION job_attempt_ended() FROM PUBLIC;
CREATE TRIGGER jobs_attempt_ended AFTER UPDATE ON jobs
    FOR EACH ROW
    WHEN (OLD.status = 'running' AND (NEW.status <> 'running' OR NEW.attempts <> OLD.attempts))
    EXECUTE FUNCTION job_attempt_ended();

-- The claim as before (migration ..._workflows), and it stamps the
-- attempt's start.
DROP FUNCTION app_claim_jobs(uuid[], text, double precision);
CREATE FUNCTION app_claim_jobs(p_ids uuid[], p_worker_id text, p_lease_secs double precision)
RETURNS TABLE (id uuid, kind text, device_id uuid, params jsonb, attempts integer,
               max_attempts integer, error text, timeout_seconds integer, workflow_id uuid,
               workflow_step integer)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, public, pg_temp
SET enable_seqscan = on SET enable_indexscan = on SET enable_bitmapscan = on
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_id uuid;
    v_tid tid;
    v_tids tid[] := '{}';
BEGIN
    FOREACH v_id IN ARRAY p_ids LOOP
        SELECT j.ctid INTO v_tid FROM jobs j
        WHERE j.id = v_id AND j.cancel_requested_at IS NULL
          AND j.attempts <= j.max_attempts
          AND (j.status IN ('queued', 'retrying')
               OR (j.status = 'running' AND j.lease_expires_at < now()))
        FOR NO KEY UPDATE;
        IF FOUND THEN
            v_tids := array_append(v_tids, v_tid);
        END IF;
    END LOOP;
    IF cardinality(v_tids) = 0 THEN
        RETURN;
    END IF;
    PERFORM app_plan_by_tid_only(true);
    RETURN QUERY
    UPDATE jobs j
    SET status = 'running', attempts = j.attempts + 1, progress = 0,
        started_at = coalesce(j.started_at, now()), attempt_started_at = now(),
        worker_id = p_worker_id,
        lease_expires_at = now() + make_interval(secs => p_lease_secs)
    WHERE j.ctid = ANY (v_tids)
    RETURNING j.id, j.kind, j.device_id, j.params, j.attempts, j.max_attempts, j.error,
              j.timeout_seconds, j.workflow_id, j.workflow_step;
END $$;
REVOKE ALL ON FUNCTION app_claim_jobs(uuid[], text, double precision) FROM PUBLIC;

-- Retrying and discarding jobs is its own permission; the built-in admin
-- role of every tenant gets it.
INSERT INTO permissions (code, description, platform_only) VALUES
    ('jobs:manage', 'Retry, cancel and discard jobs, one by one or in bulk', false)
ON CONFLICT (code) DO UPDATE
    SET description = EXCLUDED.description, platform_only = EXCLUDED.platform_only;
SELECT internal_ensure_builtin_roles(id) FROM tenants;

-- The application role may also write and read attempts, and delete
-- finished jobs (with their results and attempts).
CREATE OR REPLACE FUNCTION ferro_grant_app_privileges(p_role text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    f regprocedure;
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), p_role);
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM %I', current_database(), p_role);
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', p_role);

    EXECUTE format('GRANT SELECT ON tenants, permissions, login_logs TO %I', p_role);
    EXECUTE format('GRANT SELECT (id, home_tenant_id, username, email, is_active, is_platform_admin, '
                   'password_changed_at, created_at, updated_at) ON users TO %I', p_role);
    EXECUTE format('GRANT INSERT (id, home_tenant_id, username, email, password_hash, is_active) '
                   'ON users TO %I', p_role);
    EXECUTE format('GRANT UPDATE (username, email, password_hash, is_active, password_changed_at) '
                   'ON users TO %I', p_role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON memberships, roles, role_permissions, '
                   'membership_roles, devices, schedules, job_outbox, jobs TO %I', p_role);
    EXECUTE format('GRANT SELECT, INSERT ON job_results, audit_logs, workflows TO %I', p_role);
    EXECUTE format('GRANT DELETE ON job_results TO %I', p_role);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON job_attempts TO %I', p_role);
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO %I', p_role);

    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f'
               AND p.proname ~ '^(app|auth|platform|outbox|maintenance|scheduler)_' LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, p_role);
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION ferro_grant_app_privileges(text) FROM PUBLIC;
