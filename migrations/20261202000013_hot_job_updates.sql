-- Claims and outcomes as heap-only (HOT) updates, one UPDATE per batch.
--
-- A job's row is updated twice on its way through the worker (the claim,
-- then the outcome). An UPDATE can stay on its page without touching any
-- index (HOT) only when no indexed column changes and the page has room.
-- `status` and `updated_at` were in two indexes, so every claim and every
-- outcome inserted into all six of the table's indexes. Those two indexes
-- go: listing by status walks the tenant's jobs newest first
-- (jobs_tenant_created_idx) and filters, and the monitor's counts by status
-- read the tenant's jobs through the same index. Pages keep a third free for
-- the new row versions.
DROP INDEX jobs_tenant_status_idx;
DROP INDEX jobs_unfinished_idx;
ALTER TABLE jobs SET (fillfactor = 70);

-- One UPDATE per batch instead of one per job. For every UPDATE statement
-- the executor prepares the table's CHECK expressions again (it parses them
-- from their stored form); with a statement per job that was a quarter of
-- PostgreSQL's time during a drain. Now each job of the batch is first
-- looked up by primary key and locked (a plan no statistics can spoil, as
-- before), and one UPDATE then changes the locked rows by their physical
-- address (ctid): a row we hold locked cannot move until we commit. For that
-- one statement only the TID scan is left enabled, so the planner cannot
-- swap it for a scan of the tenant's jobs when the statistics are missing
-- (after a TRUNCATE, or before autovacuum sees a burst of new jobs). The
-- function's SET clauses keep those switches inside the function. SECURITY
-- INVOKER as before: row-level security applies to the caller.
-- Leaves the TID scan as the only way to read a table (p_only), or enables
-- every scan again, until the calling function returns: the callers below
-- name these settings in their SET clauses, which restore them on the way
-- out. This function has no SET clause of its own, so its changes reach
-- its caller.
CREATE FUNCTION app_plan_by_tid_only(p_only boolean) RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v text := CASE WHEN p_only THEN 'off' ELSE 'on' END;
BEGIN
    PERFORM set_config('enable_seqscan', v, true), set_config('enable_indexscan', v, true),
            set_config('enable_bitmapscan', v, true);
END $$;
REVOKE ALL ON FUNCTION app_plan_by_tid_only(boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION app_claim_jobs(p_ids uuid[], p_worker_id text, p_lease_secs double precision)
RETURNS TABLE (id uuid, kind text, device_id uuid, params jsonb, attempts integer,
               max_attempts integer, error text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, public, pg_temp
SET enable_seqscan = on SET enable_indexscan = on SET enable_bitmapscan = on
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

-- Ends each job (p_statuses[i] is succeeded, failed or cancelled) unless it
-- had already ended, and keeps the result rows of the jobs it ended, in
-- order. Returns the ended jobs' new state. The caller names each job once.
CREATE OR REPLACE FUNCTION app_finish_jobs(p_ids uuid[], p_statuses text[], p_errors text[],
                                           p_result_jobs uuid[], p_result_attempts integer[],
                                           p_results jsonb[])
RETURNS TABLE (id uuid, status text, progress smallint, attempts integer, error text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, public, pg_temp
SET enable_seqscan = on SET enable_indexscan = on SET enable_bitmapscan = on
AS $$
#variable_conflict use_column
DECLARE
    v_tid tid;
    v_tids tid[] := '{}';
    v_statuses text[] := '{}';
    v_errors text[] := '{}';
    v_ended uuid[] := '{}';
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        SELECT j.ctid INTO v_tid FROM jobs j
        WHERE j.id = p_ids[i] AND j.status IN ('queued', 'running', 'retrying')
        FOR NO KEY UPDATE;
        IF FOUND THEN
            v_tids := array_append(v_tids, v_tid);
            v_statuses := array_append(v_statuses, p_statuses[i]);
            v_errors := array_append(v_errors, p_errors[i]);
            v_ended := array_append(v_ended, p_ids[i]);
        END IF;
    END LOOP;
    IF cardinality(v_tids) = 0 THEN
        RETURN;
    END IF;
    PERFORM app_plan_by_tid_only(true);
    RETURN QUERY
    UPDATE jobs j
    SET status = u.status, error = u.error, finished_at = now(), lease_expires_at = NULL,
        progress = CASE WHEN u.status = 'succeeded' THEN 100 ELSE j.progress END
    FROM unnest(v_tids, v_statuses, v_errors) AS u(tid, status, error)
    WHERE j.ctid = u.tid
    RETURNING j.id, j.status, j.progress, j.attempts, j.error;
    PERFORM app_plan_by_tid_only(false);
    -- created_at: the transaction's time plus the row's place in
    -- microseconds, so that a job's results sort in the order it gave them.
    INSERT INTO job_results (tenant_id, job_id, attempt, data, created_at)
    SELECT app_current_tenant(), r.job_id, r.attempt, r.data, now() + r.n * interval '1 microsecond'
    FROM unnest(p_result_jobs, p_result_attempts, p_results)
         WITH ORDINALITY AS r(job_id, attempt, data, n)
    WHERE r.job_id = ANY (v_ended);
END $$;
