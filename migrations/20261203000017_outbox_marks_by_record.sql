-- Outbox records are marked published by record, not by job.
--
-- The api and the scheduler publish a new job's envelope right after commit
-- and then mark its outbox record published, in a later transaction. They
-- marked by job id: every unpublished record of the job. When a worker had
-- meanwhile claimed the job, failed it and written the record of its retry
-- (due after the backoff), the mark took that record too, the relay never
-- published it, and the job stayed `retrying` for good. The mark now names
-- the record that was published; one UPDATE by primary key per record.
CREATE FUNCTION app_mark_published_records(p_ids bigint[]) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_id bigint;
    v_rows integer;
    v_marked integer := 0;
BEGIN
    FOREACH v_id IN ARRAY p_ids LOOP
        UPDATE job_outbox SET published_at = now()
        WHERE id = v_id AND tenant_id = app_current_tenant() AND published_at IS NULL;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        v_marked := v_marked + v_rows;
    END LOOP;
    RETURN v_marked;
END $$;
REVOKE ALL ON FUNCTION app_mark_published_records(bigint[]) FROM PUBLIC;

-- The mark by job stays for instances of the previous release during a
-- rolling upgrade, but takes only the job's first record: the one written
-- with the job, which is the only one they publish themselves.
CREATE OR REPLACE FUNCTION app_mark_published(p_job_ids uuid[]) RETURNS integer
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
        WHERE id = (SELECT min(o.id) FROM job_outbox o
                    WHERE o.tenant_id = app_current_tenant() AND o.job_id = v_id)
          AND published_at IS NULL;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        v_marked := v_marked + v_rows;
    END LOOP;
    RETURN v_marked;
END $$;
