-- Queue operations for platform administrators (issue 24): how many jobs
-- each queue holds scheduled, and purging a queue's waiting jobs. Both
-- cross tenants, so they are definer functions that check the caller.

-- Scheduled (deferred) jobs per queue, found through the outbox's pending
-- records that are due later (its partial index), not by a scan of jobs.
CREATE FUNCTION platform_scheduled_by_queue()
RETURNS TABLE (queue text, scheduled bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NOT app_is_platform_admin() THEN
        RAISE EXCEPTION 'platform administrator required' USING ERRCODE = '42501';
    END IF;
    RETURN QUERY
    SELECT j.queue, count(*)
    FROM job_outbox o JOIN jobs j ON j.id = o.job_id
    WHERE o.published_at IS NULL AND o.available_at > now() AND j.status = 'scheduled'
    GROUP BY j.queue;
END $$;
REVOKE ALL ON FUNCTION platform_scheduled_by_queue() FROM PUBLIC;

-- Ends every job of every tenant waiting in `p_queue` (scheduled, queued
-- or waiting for a retry) `cancelled`, with the reason, and keeps the
-- relay from publishing them. Their messages still in the broker reach a
-- worker that finds them cancelled and drops them. Returns how many.
CREATE FUNCTION platform_purge_queue(p_queue text) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_ids uuid[];
BEGIN
    IF NOT app_is_platform_admin() THEN
        RAISE EXCEPTION 'platform administrator required' USING ERRCODE = '42501';
    END IF;
    WITH purged AS (
        UPDATE jobs j
        SET status = 'cancelled', finished_at = now(),
            error = 'purged from queue ' || p_queue,
            cancel_requested_at = coalesce(j.cancel_requested_at, now())
        WHERE j.queue = p_queue AND j.status IN ('scheduled', 'queued', 'retrying')
        RETURNING j.id)
    SELECT coalesce(array_agg(id), '{}') INTO v_ids FROM purged;
    UPDATE job_outbox SET published_at = now(), last_error = 'purged'
    WHERE job_id = ANY (v_ids) AND published_at IS NULL;
    RETURN cardinality(v_ids);
END $$;
REVOKE ALL ON FUNCTION platform_purge_queue(text) FROM PUBLIC;
