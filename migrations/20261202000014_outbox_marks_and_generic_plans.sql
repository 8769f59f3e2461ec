-- Outbox records marked published many at once, and job batches planned once.
--
-- The api marks the outbox records of the jobs its requests published in
-- batches (the records of many requests in one transaction). A set-based
-- `UPDATE job_outbox ... WHERE job_id = ANY($1)` let the planner, on an
-- outbox table with no statistics (after a TRUNCATE, or before autovacuum
-- has seen a burst of new jobs), combine the partial pending index with the
-- tenant's index and read every pending record of the tenant: 10 ms for 8
-- records among 20,000. One UPDATE per job through the (tenant_id, job_id)
-- index reads only the records asked for, with any statistics or none.
CREATE FUNCTION app_mark_published(p_job_ids uuid[]) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_id uuid;
    v_rows integer;
    v_marked integer := 0;
BEGIN
    FOREACH v_id IN ARRAY p_job_ids LOOP
        UPDATE job_outbox SET published_at = now()
        WHERE tenant_id = app_current_tenant() AND job_id = v_id AND published_at IS NULL;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        v_marked := v_marked + v_rows;
    END LOOP;
    RETURN v_marked;
END $$;
REVOKE ALL ON FUNCTION app_mark_published(uuid[]) FROM PUBLIC;

-- The worker's batch functions were planned afresh on every call: for a
-- statement over an array parameter (`ctid = ANY (v_tids)`, `unnest(...)`)
-- the plan cache compares a custom plan, costed for the batch's few
-- elements, with a generic plan costed for an unknown number, finds the
-- generic one dearer and keeps planning custom ones. That planning was
-- about a tenth of all CPU during a drain. Their plans do not depend on the
-- values (primary-key lookups, and TID scans, the only scans enabled for
-- the UPDATEs), so the generic plan is the right one and is made once per
-- connection.
ALTER FUNCTION app_claim_jobs(uuid[], text, double precision)
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION app_finish_jobs(uuid[], text[], text[], uuid[], integer[], jsonb[])
    SET plan_cache_mode = force_generic_plan;
