-- Claims and outcomes as heap-only (HOT) updates.
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
