-- A job is claimed only while it has an attempt left.
--
-- Every claim counts an attempt, the take-over of a job whose worker died
-- (its lease ran out) included, and jobs_attempts_range allows one run past
-- max_attempts: the run after a worker died during the last attempt. A job
-- whose worker died during that run too was claimed again all the same, the
-- claim broke the CHECK, and the worker gave its delivery back every half
-- second for ever. Now such a job is not claimed; the worker finds it
-- running under an expired lease with no attempt left and ends it `failed`
-- (ferro_tasks::jobs::why_not_claimed) and dead-letters it.
CREATE OR REPLACE FUNCTION app_claim_jobs(p_ids uuid[], p_worker_id text, p_lease_secs double precision)
RETURNS TABLE (id uuid, kind text, device_id uuid, params jsonb, attempts integer,
               max_attempts integer, error text)
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
    -- The guards held when each row was locked, and still hold.
    RETURN QUERY
    UPDATE jobs j
    SET status = 'running', attempts = j.attempts + 1, progress = 0,
        started_at = coalesce(j.started_at, now()), worker_id = p_worker_id,
        lease_expires_at = now() + make_interval(secs => p_lease_secs)
    WHERE j.ctid = ANY (v_tids)
    RETURNING j.id, j.kind, j.device_id, j.params, j.attempts, j.max_attempts, j.error;
END $$;
