-- Retention of finished jobs (`jobs.prune`, run by the built-in schedule).
--
-- Deletes up to p_limit jobs in status p_status that finished more than
-- p_age_secs ago (at least an hour), in every tenant; their results and
-- outbox records go with them (ON DELETE CASCADE). One call is one short
-- statement: the caller loops until a call deletes fewer than p_limit, so
-- no lock is held for long and submissions never wait on the prune.
--
-- No new index: an index on finished_at would be written by every outcome
-- and end the heap-only updates claims and outcomes rely on. A job that
-- finished before the cutoff was created before it too, so each tenant's
-- candidates are a range of its (tenant_id, created_at) index, read oldest
-- first; the rows in that range still running or waiting are few.
CREATE FUNCTION maintenance_prune_jobs(p_status text, p_age_secs double precision, p_limit integer)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_cutoff timestamptz := now() - make_interval(secs => greatest(p_age_secs, 3600));
    v_left integer := least(greatest(p_limit, 1), 10000);
    v_tenant uuid;
    v_rows integer;
BEGIN
    IF p_status NOT IN ('succeeded', 'failed', 'cancelled') THEN
        RAISE EXCEPTION 'only finished jobs are pruned, not %', p_status
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR v_tenant IN SELECT t.id FROM tenants t ORDER BY t.id LOOP
        DELETE FROM jobs j
        WHERE j.tenant_id = v_tenant
          AND j.id = ANY (ARRAY(
              SELECT c.id FROM jobs c
              WHERE c.tenant_id = v_tenant AND c.created_at < v_cutoff
                AND c.status = p_status AND c.finished_at < v_cutoff
              ORDER BY c.created_at
              LIMIT v_left
              FOR UPDATE SKIP LOCKED));
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        v_left := v_left - v_rows;
        EXIT WHEN v_left <= 0;
    END LOOP;
    RETURN least(greatest(p_limit, 1), 10000) - v_left;
END $$;
REVOKE ALL ON FUNCTION maintenance_prune_jobs(text, double precision, integer) FROM PUBLIC;
