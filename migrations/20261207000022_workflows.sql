-- Workflows (issue 23): a chain, a group or a chord of jobs, written in one
-- transaction.
--
-- Every step is a job with `workflow_id` and `workflow_step` (0-based, in
-- the order given; a chord's callback is the last). A step that waits for
-- others is `waiting`, with its outbox record held back (due at infinity),
-- so the relay never publishes it. When a step ends, the trigger below
-- decides, in the transaction that ended it:
-- - chain: the next step is released if this one succeeded (`queued`, its
--   record due now), otherwise every later step still waiting is
--   cancelled, with the reason;
-- - chord: once no member is left unfinished, the callback is released if
--   every member succeeded, otherwise cancelled with the reason. Members
--   ending at once serialise on a lock of the callback's row, and each
--   statement after the lock sees what the other committed, so exactly one
--   of them decides;
-- - group: nothing waits.
-- A workflow's status is not stored: it is read from its jobs.

CREATE TABLE workflows (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind        text NOT NULL CONSTRAINT workflows_kind_check CHECK (kind IN ('chain', 'group', 'chord')),
    steps       integer NOT NULL CONSTRAINT workflows_steps_range CHECK (steps BETWEEN 1 AND 10000),
    created_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);
CREATE INDEX workflows_tenant_created_idx ON workflows (tenant_id, created_at DESC);
ALTER TABLE workflows ENABLE ROW LEVEL SECURITY;
ALTER TABLE workflows FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON workflows USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());

ALTER TABLE jobs
    ADD COLUMN workflow_id uuid,
    ADD COLUMN workflow_step integer,
    ADD CONSTRAINT jobs_workflow_fkey FOREIGN KEY (tenant_id, workflow_id)
        REFERENCES workflows (tenant_id, id) ON DELETE CASCADE,
    ADD CONSTRAINT jobs_workflow_step CHECK ((workflow_id IS NULL) = (workflow_step IS NULL)),
    DROP CONSTRAINT jobs_status_check,
    ADD CONSTRAINT jobs_status_check CHECK (
        status IN ('waiting', 'scheduled', 'queued', 'running', 'retrying', 'succeeded', 'failed',
                   'cancelled')),
    ADD CONSTRAINT jobs_waiting_in_workflow CHECK (status <> 'waiting' OR workflow_id IS NOT NULL);
CREATE INDEX jobs_workflow_idx ON jobs (workflow_id, workflow_step) WHERE workflow_id IS NOT NULL;

-- Releases or cancels the steps that waited for NEW, as described above.
CREATE FUNCTION workflow_advance() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_kind text;
    v_steps integer;
    v_callback uuid;
    v_open integer;
    v_failed integer;
BEGIN
    SELECT w.kind, w.steps INTO v_kind, v_steps FROM workflows w WHERE w.id = NEW.workflow_id;
    IF v_kind = 'chain' THEN
        IF NEW.status = 'succeeded' THEN
            PERFORM workflow_release(NEW.workflow_id, NEW.workflow_step + 1);
        ELSE
            PERFORM workflow_cancel_waiting(NEW.workflow_id, NEW.workflow_step,
                format('step %s (%s) ended %s', NEW.workflow_step + 1, NEW.kind, NEW.status));
        END IF;
    ELSIF v_kind = 'chord' AND NEW.workflow_step < v_steps - 1 THEN
        SELECT j.id INTO v_callback FROM jobs j
        WHERE j.workflow_id = NEW.workflow_id AND j.workflow_step = v_steps - 1
        FOR UPDATE;
        SELECT count(*) FILTER (WHERE j.status NOT IN ('succeeded', 'failed', 'cancelled')),
               count(*) FILTER (WHERE j.status IN ('failed', 'cancelled'))
        INTO v_open, v_failed
        FROM jobs j WHERE j.workflow_id = NEW.workflow_id AND j.workflow_step < v_steps - 1;
        IF v_open = 0 THEN
            IF v_failed = 0 THEN
                PERFORM workflow_release(NEW.workflow_id, v_steps - 1);
            ELSE
                PERFORM workflow_cancel_waiting(NEW.workflow_id, v_steps - 2,
                    format('%s of its group did not succeed', v_failed));
            END IF;
        END IF;
    END IF;
    RETURN NULL;
END $$;

-- Step `p_step` of the workflow, if it waits: queued, its record due now.
CREATE FUNCTION workflow_release(p_workflow uuid, p_step integer) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_job uuid;
BEGIN
    UPDATE jobs j SET status = 'queued'
    WHERE j.workflow_id = p_workflow AND j.workflow_step = p_step AND j.status = 'waiting'
    RETURNING j.id INTO v_job;
    IF v_job IS NOT NULL THEN
        UPDATE job_outbox o SET available_at = now()
        WHERE o.job_id = v_job AND o.published_at IS NULL;
    END IF;
END $$;

-- Every step after `p_after` still waiting: cancelled with `p_reason`,
-- its record done.
CREATE FUNCTION workflow_cancel_waiting(p_workflow uuid, p_after integer, p_reason text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_jobs uuid[];
BEGIN
    WITH cancelled AS (
        UPDATE jobs j SET status = 'cancelled', finished_at = now(),
            error = 'not run: ' || p_reason
        WHERE j.workflow_id = p_workflow AND j.workflow_step > p_after AND j.status = 'waiting'
        RETURNING j.id)
    SELECT array_agg(c.id) INTO v_jobs FROM cancelled c;
    IF v_jobs IS NOT NULL THEN
        UPDATE job_outbox o SET published_at = now(), last_error = 'cancelled'
        WHERE o.job_id = ANY (v_jobs) AND o.published_at IS NULL;
    END IF;
END $$;
REVOKE ALL ON FUNCTION workflow_advance() FROM PUBLIC;
REVOKE ALL ON FUNCTION workflow_release(uuid, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION workflow_cancel_waiting(uuid, integer, text) FROM PUBLIC;

CREATE TRIGGER jobs_workflow_advance
    AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (NEW.workflow_id IS NOT NULL AND OLD.status IS DISTINCT FROM NEW.status
          AND NEW.status IN ('succeeded', 'failed', 'cancelled'))
    EXECUTE FUNCTION workflow_advance();

-- Retention: a workflow goes once all its jobs were pruned (and it is over
-- an hour old, so that one being written is never taken), up to p_limit
-- per call, in every tenant.
CREATE FUNCTION maintenance_prune_workflows(p_limit integer) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_rows integer;
BEGIN
    DELETE FROM workflows w
    WHERE w.id = ANY (ARRAY(
        SELECT c.id FROM workflows c
        WHERE c.created_at < now() - interval '1 hour'
          AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.workflow_id = c.id)
        ORDER BY c.created_at
        LIMIT least(greatest(p_limit, 1), 10000)
        FOR UPDATE SKIP LOCKED));
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END $$;
REVOKE ALL ON FUNCTION maintenance_prune_workflows(integer) FROM PUBLIC;

-- The claim also returns the job's workflow and step (a step reads the
-- results of the steps it waited for).
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
        started_at = coalesce(j.started_at, now()), worker_id = p_worker_id,
        lease_expires_at = now() + make_interval(secs => p_lease_secs)
    WHERE j.ctid = ANY (v_tids)
    RETURNING j.id, j.kind, j.device_id, j.params, j.attempts, j.max_attempts, j.error,
              j.timeout_seconds, j.workflow_id, j.workflow_step;
END $$;
REVOKE ALL ON FUNCTION app_claim_jobs(uuid[], text, double precision) FROM PUBLIC;

-- The application role may also read and write workflows.
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
                   'membership_roles, devices, schedules, job_outbox TO %I', p_role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON jobs TO %I', p_role);
    EXECUTE format('GRANT SELECT, INSERT ON job_results, audit_logs, workflows TO %I', p_role);
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO %I', p_role);

    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f'
               AND p.proname ~ '^(app|auth|platform|outbox|maintenance|scheduler)_' LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, p_role);
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION ferro_grant_app_privileges(text) FROM PUBLIC;
