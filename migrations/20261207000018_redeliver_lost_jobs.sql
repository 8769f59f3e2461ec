-- A published job the broker lost is published again.
--
-- The outbox guarantees a job reaches the broker; the broker may still lose
-- it afterwards: a node recreated without its database, a purged or deleted
-- queue, a Redis without persistence. Such a job would stay queued for
-- good. Now every record marked published is due for a check (`check_at`) a
-- while later (60 s unless the marker says otherwise). The relay takes the
-- due records (`outbox_recheck`): a record whose job has started, ended or
-- been superseded by a later record is done; one whose job still waits is
-- published again (the worker's guarded claim makes a second copy
-- harmless) when the broker holds no message waiting, or whatever the
-- broker holds once ten such periods have passed; otherwise it is checked
-- again after another period. The index holds only records awaiting their
-- check, so the relay's look is an index range scan however long the
-- outbox's history.
ALTER TABLE job_outbox ADD COLUMN check_at timestamptz;
CREATE INDEX job_outbox_check_idx ON job_outbox (check_at) WHERE check_at IS NOT NULL;

DROP FUNCTION outbox_mark_published(bigint[]);
CREATE FUNCTION outbox_mark_published(p_ids bigint[], p_check_after double precision DEFAULT 60)
RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
    WITH done AS (
        UPDATE job_outbox
        SET published_at = now(), last_error = NULL,
            check_at = now() + make_interval(secs => greatest(p_check_after, 1))
        WHERE id = ANY(p_ids) AND published_at IS NULL RETURNING 1)
    SELECT count(*)::integer FROM done
$$;
REVOKE ALL ON FUNCTION outbox_mark_published(bigint[], double precision) FROM PUBLIC;

DROP FUNCTION app_mark_published_records(bigint[]);
CREATE FUNCTION app_mark_published_records(p_ids bigint[], p_check_after double precision DEFAULT 60)
RETURNS integer
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
        UPDATE job_outbox
        SET published_at = now(), check_at = now() + make_interval(secs => greatest(p_check_after, 1))
        WHERE id = v_id AND tenant_id = app_current_tenant() AND published_at IS NULL;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        v_marked := v_marked + v_rows;
    END LOOP;
    RETURN v_marked;
END $$;
REVOKE ALL ON FUNCTION app_mark_published_records(bigint[], double precision) FROM PUBLIC;

-- Checks up to p_limit records whose check is due (see above); returns how
-- many were made due for publishing again. p_broker_idle: the broker holds
-- no message waiting in the jobs queue.
CREATE FUNCTION outbox_recheck(p_limit integer, p_broker_idle boolean, p_period double precision)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_again integer;
BEGIN
    WITH due AS (
        SELECT o.id, o.tenant_id, o.job_id, o.published_at FROM job_outbox o
        WHERE o.check_at <= now()
        ORDER BY o.check_at
        LIMIT least(greatest(p_limit, 1), 1000)
        FOR UPDATE SKIP LOCKED
    ), waiting AS (
        -- The job has not started from this record, its latest.
        SELECT d.id, d.published_at FROM due d
        JOIN jobs j ON j.tenant_id = d.tenant_id AND j.id = d.job_id
        WHERE j.status IN ('queued', 'retrying') AND j.cancel_requested_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM job_outbox n
                          WHERE n.tenant_id = d.tenant_id AND n.job_id = d.job_id AND n.id > d.id)
    ), lost AS (
        SELECT w.id FROM waiting w
        WHERE p_broker_idle
           OR w.published_at < now() - make_interval(secs => 10 * greatest(p_period, 1))
    ), again AS (
        UPDATE job_outbox o
        SET published_at = NULL, available_at = now(), check_at = NULL,
            last_error = 'published again: no delivery started the job'
        FROM lost WHERE o.id = lost.id
        RETURNING 1
    ), later AS (
        UPDATE job_outbox o SET check_at = now() + make_interval(secs => greatest(p_period, 1))
        FROM waiting w WHERE o.id = w.id AND NOT EXISTS (SELECT 1 FROM lost l WHERE l.id = w.id)
        RETURNING 1
    ), done AS (
        UPDATE job_outbox o SET check_at = NULL
        FROM due d WHERE o.id = d.id AND NOT EXISTS (SELECT 1 FROM waiting w WHERE w.id = d.id)
        RETURNING 1
    )
    SELECT count(*) INTO v_again FROM again;
    RETURN v_again;
END $$;
REVOKE ALL ON FUNCTION outbox_recheck(integer, boolean, double precision) FROM PUBLIC;
