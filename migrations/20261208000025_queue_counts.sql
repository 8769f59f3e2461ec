-- The queue list counts, per queue and across tenants, what waits and what
-- runs, not only what is deferred: a paused queue's jobs may sit in a
-- worker's prefetch (the broker then counts them as delivered, not
-- waiting), so the database is what says how many jobs wait.
-- `waiting`: queued, or waiting for a retry; `running`: taken by a worker;
-- both from jobs_unfinished_idx, which holds only unfinished jobs.
DROP FUNCTION platform_scheduled_by_queue();

CREATE FUNCTION platform_queue_counts()
RETURNS TABLE (queue text, scheduled bigint, waiting bigint, running bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NOT app_is_platform_admin() THEN
        RAISE EXCEPTION 'platform administrator required' USING ERRCODE = '42501';
    END IF;
    RETURN QUERY
    WITH deferred AS (
        SELECT j.queue, count(*) AS n
        FROM job_outbox o JOIN jobs j ON j.id = o.job_id
        WHERE o.published_at IS NULL AND o.available_at > now() AND j.status = 'scheduled'
        GROUP BY j.queue
    ), unfinished AS (
        SELECT j.queue,
               count(*) FILTER (WHERE j.status <> 'running') AS waiting,
               count(*) FILTER (WHERE j.status = 'running') AS running
        FROM jobs j
        WHERE j.status IN ('queued', 'running', 'retrying')
        GROUP BY j.queue
    )
    SELECT coalesce(d.queue, u.queue), coalesce(d.n, 0), coalesce(u.waiting, 0),
           coalesce(u.running, 0)
    FROM deferred d FULL JOIN unfinished u ON u.queue = d.queue;
END $$;
REVOKE ALL ON FUNCTION platform_queue_counts() FROM PUBLIC;
