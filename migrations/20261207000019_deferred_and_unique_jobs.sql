-- Deferred, expiring, unique jobs and per-job limits (issue 23).
--
-- A deferred job (`run_at`) waits in status `scheduled`; its outbox record
-- is due at `run_at`, so the relay that publishes it is what releases it:
-- the claim of the record turns the job `queued` in the same statement.
-- `expires_at` is the job's deadline (its envelope carries it too: a job
-- not started by then ends `cancelled`). `timeout_seconds` overrides the
-- kind's time limit for one attempt; the worker reads it with its claim.
-- `unique_key` is the sha256 (hex) of a unique submission's key: the api
-- takes a transaction-scoped advisory lock on the key, looks for a live
-- job with it, and enqueues only when there is none. Only unique jobs have
-- a key, so the partial index costs the plain path nothing, and none of
-- the new columns is indexed otherwise: claims and outcomes stay HOT.
ALTER TABLE jobs
    ADD COLUMN run_at timestamptz,
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN timeout_seconds integer,
    ADD COLUMN unique_key text,
    DROP CONSTRAINT jobs_status_check,
    ADD CONSTRAINT jobs_status_check CHECK (
        status IN ('scheduled', 'queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled')),
    ADD CONSTRAINT jobs_scheduled_has_run_at CHECK (status <> 'scheduled' OR run_at IS NOT NULL),
    ADD CONSTRAINT jobs_timeout_range CHECK (timeout_seconds IS NULL OR timeout_seconds BETWEEN 1 AND 86400),
    ADD CONSTRAINT jobs_unique_key_format CHECK (unique_key IS NULL OR unique_key ~ '^[0-9a-f]{64}$');

CREATE INDEX jobs_unique_key_idx ON jobs (tenant_id, unique_key, created_at DESC)
    WHERE unique_key IS NOT NULL;

-- The relay's claim also releases the deferred jobs whose records it takes.
-- The jobs are updated by primary key (an array, not a join the planner
-- could turn into a scan of every job).
CREATE OR REPLACE FUNCTION outbox_claim(p_limit integer, p_lease_seconds integer)
RETURNS TABLE (id bigint, payload jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_ids bigint[];
    v_jobs uuid[];
BEGIN
    WITH claimed AS (
        UPDATE job_outbox o
        SET available_at = now() + make_interval(secs => greatest(p_lease_seconds, 1)),
            publish_attempts = o.publish_attempts + 1
        WHERE o.id IN (SELECT d.id FROM job_outbox d
                       WHERE d.published_at IS NULL AND d.available_at <= now()
                       ORDER BY d.available_at, d.id
                       LIMIT least(greatest(p_limit, 1), 1000)
                       FOR UPDATE SKIP LOCKED)
        RETURNING o.id, o.job_id)
    SELECT array_agg(c.id), array_agg(c.job_id) INTO v_ids, v_jobs FROM claimed c;
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
    UPDATE jobs j SET status = 'queued' WHERE j.id = ANY (v_jobs) AND j.status = 'scheduled';
    RETURN QUERY SELECT o.id, o.payload FROM job_outbox o WHERE o.id = ANY (v_ids);
END $$;
REVOKE ALL ON FUNCTION outbox_claim(integer, integer) FROM PUBLIC;

-- The claim also returns the job's own time limit, if it has one.
DROP FUNCTION app_claim_jobs(uuid[], text, double precision);
CREATE FUNCTION app_claim_jobs(p_ids uuid[], p_worker_id text, p_lease_secs double precision)
RETURNS TABLE (id uuid, kind text, device_id uuid, params jsonb, attempts integer,
               max_attempts integer, error text, timeout_seconds integer)
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
              j.timeout_seconds;
END $$;
REVOKE ALL ON FUNCTION app_claim_jobs(uuid[], text, double precision) FROM PUBLIC;
