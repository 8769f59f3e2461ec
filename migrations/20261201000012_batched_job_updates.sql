-- The worker claims and ends jobs in batches (worker/src/batch.rs): one call
-- and one commit per tenant for the jobs it has in hand. Inside, each job is
-- still a single-row UPDATE by primary key, so the plan cannot depend on the
-- table's statistics: a set-based `UPDATE ... WHERE id = ANY(...)` chose to
-- scan every unfinished job of the tenant whenever the statistics lagged a
-- burst of new jobs (after a TRUNCATE, or before autovacuum's next ANALYZE).
-- SECURITY INVOKER: row-level security applies to the caller as usual.

-- Claims each job for one attempt: only a queued or retrying job, or a
-- running one whose lease expired (its worker died), and never one whose
-- cancellation was requested. Returns the claimed jobs, in the given order.
CREATE FUNCTION app_claim_jobs(p_ids uuid[], p_worker_id text, p_lease_secs double precision)
RETURNS TABLE (id uuid, kind text, device_id uuid, params jsonb, attempts integer,
               max_attempts integer, error text)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_id uuid;
BEGIN
    FOREACH v_id IN ARRAY p_ids LOOP
        RETURN QUERY
        UPDATE jobs j
        SET status = 'running', attempts = j.attempts + 1, progress = 0,
            started_at = coalesce(j.started_at, now()), worker_id = p_worker_id,
            lease_expires_at = now() + make_interval(secs => p_lease_secs)
        WHERE j.id = v_id AND j.cancel_requested_at IS NULL
          AND (j.status IN ('queued', 'retrying')
               OR (j.status = 'running' AND j.lease_expires_at < now()))
        RETURNING j.id, j.kind, j.device_id, j.params, j.attempts, j.max_attempts, j.error;
    END LOOP;
END $$;

-- Ends each job (p_statuses[i] is succeeded, failed or cancelled) unless it
-- had already ended, and keeps the result rows of the jobs it ended, in
-- order. Returns the ended jobs' new state.
CREATE FUNCTION app_finish_jobs(p_ids uuid[], p_statuses text[], p_errors text[],
                                p_result_jobs uuid[], p_result_attempts integer[],
                                p_results jsonb[])
RETURNS TABLE (id uuid, status text, progress smallint, attempts integer, error text)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_ended uuid[] := '{}';
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        RETURN QUERY
        UPDATE jobs j
        SET status = p_statuses[i], error = p_errors[i], finished_at = now(),
            lease_expires_at = NULL,
            progress = CASE WHEN p_statuses[i] = 'succeeded' THEN 100 ELSE j.progress END
        WHERE j.id = p_ids[i] AND j.status IN ('queued', 'running', 'retrying')
        RETURNING j.id, j.status, j.progress, j.attempts, j.error;
        IF FOUND THEN
            v_ended := v_ended || p_ids[i];
        END IF;
    END LOOP;
    -- created_at: the transaction's time plus the row's place in
    -- microseconds, so that a job's results sort in the order it gave them.
    INSERT INTO job_results (tenant_id, job_id, attempt, data, created_at)
    SELECT app_current_tenant(), r.job_id, r.attempt, r.data, now() + r.n * interval '1 microsecond'
    FROM unnest(p_result_jobs, p_result_attempts, p_results)
         WITH ORDINALITY AS r(job_id, attempt, data, n)
    WHERE r.job_id = ANY (v_ended);
END $$;

REVOKE ALL ON FUNCTION app_claim_jobs(uuid[], text, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_finish_jobs(uuid[], text[], text[], uuid[], integer[], jsonb[]) FROM PUBLIC;
