-- A running job holds a lease that its worker renews. When a worker dies
-- (SIGKILL, a lost machine), the broker redelivers its unacknowledged
-- message and, once the lease has expired, another worker reclaims the job:
-- no job stays "running" forever.
ALTER TABLE jobs ADD COLUMN lease_expires_at timestamptz;
ALTER TABLE jobs ADD COLUMN worker_id text;
ALTER TABLE jobs ADD CONSTRAINT jobs_lease_only_when_running
    CHECK (lease_expires_at IS NULL OR status = 'running');
