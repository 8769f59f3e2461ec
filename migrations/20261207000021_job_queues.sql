-- Named queues and priorities (issue 23).
--
-- A job records the queue it was routed to (`deploy/queues.json`, or the
-- submission's own `queue`) and its priority, 0 to 9, higher first; its
-- envelope carries both to the broker, which keeps a queue per name and
-- orders by priority within it. Neither column is indexed: the broker, not
-- the table, orders the work, so claims and outcomes stay HOT.
ALTER TABLE jobs
    ADD COLUMN queue text NOT NULL DEFAULT 'default',
    ADD COLUMN priority smallint NOT NULL DEFAULT 0,
    ADD CONSTRAINT jobs_queue_name CHECK (queue ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
    ADD CONSTRAINT jobs_priority_range CHECK (priority BETWEEN 0 AND 9);
