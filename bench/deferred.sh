#!/usr/bin/env bash
# Deferred release lag (issue 23): JOBS noop jobs are written `scheduled`
# with their run_at spread evenly over WINDOW seconds (starting 5 s ahead),
# each with its outbox record due then, as POST /api/v1/jobs with `run_at`
# writes them. One release worker (its relay releases and publishes them,
# its runner runs them) works through them. Per job: the release lag is
# when its record was marked published minus its run_at; the start lag is
# its started_at minus its run_at. Run on each broker. Needs PostgreSQL,
# Redis and RabbitMQ on loopback (deploy/local/ensure-services.sh).
#
# Usage: bench/deferred.sh [jobs, default 100000] [window seconds, default 60]
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS=${1:-100000}
WINDOW=${2:-60}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/ferrostack-target}"
BIN="$CARGO_TARGET_DIR/release"
DB=ferro_deferred_bench
SU_URL="postgres://postgres@127.0.0.1:5432"

deploy/local/ensure-services.sh >/dev/null
echo "bench: building release binaries" >&2
cargo build --release -q -p worker -p migrate

export DATABASE_URL="postgres://ferro_deferred_bench_app:bench-app-password@127.0.0.1:5432/$DB?sslmode=disable"
export MIGRATE_DATABASE_URL="$SU_URL/$DB"
export ADMIN_PASSWORD=bench-admin-password RUST_LOG=warn LOG_FORMAT=json
export WORKER_CONCURRENCY=64

for broker in "amqp://guest:guest@127.0.0.1:5672/%2f" "redis://127.0.0.1:6379/0"; do
  psql "$SU_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
  "$BIN/migrate" up >/dev/null
  echo "bench: $JOBS jobs due over ${WINDOW}s, $broker" >&2
  psql "$SU_URL/$DB" -q -v ON_ERROR_STOP=1 -c "
    INSERT INTO jobs (tenant_id, kind, params, status, run_at)
    SELECT (SELECT id FROM tenants WHERE slug = 'default'), 'noop', '{}', 'scheduled',
           now() + interval '5 seconds' + make_interval(secs => $WINDOW.0 * g / $JOBS)
    FROM generate_series(1, $JOBS) AS g;
    INSERT INTO job_outbox (tenant_id, job_id, payload, available_at)
    SELECT tenant_id, id,
           jsonb_build_object('v', 1, 'job_id', id, 'kind', 'noop', 'tenant_id', tenant_id,
                              'attempt', 1,
                              'enqueued_at', to_char(now() AT TIME ZONE 'UTC',
                                                     'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')),
           run_at
    FROM jobs;
    ANALYZE jobs; ANALYZE job_outbox;"
  PREFIX="bench-deferred-$$"
  BROKER_URL="$broker" BROKER_PREFIX="$PREFIX" REDIS_KEY_PREFIX="bench:deferred:$$:" \
    "$BIN/worker" >/dev/null 2>&1 &
  PID=$!
  deadline=$((SECONDS + WINDOW + 120))
  while :; do
    left=$(psql "$SU_URL/$DB" -At -c "SELECT count(*) FROM jobs WHERE status <> 'succeeded'")
    [ "$left" -eq 0 ] && break
    if [ "$SECONDS" -gt "$deadline" ]; then echo "bench: $left jobs not done" >&2; break; fi
    sleep 2
  done
  kill -TERM "$PID"; wait "$PID" || true
  psql "$SU_URL/$DB" -At -F ' ' -c "
    WITH lag AS (
      SELECT extract(epoch FROM o.published_at - j.run_at) AS released,
             extract(epoch FROM j.started_at - j.run_at) AS started
      FROM jobs j JOIN job_outbox o ON o.tenant_id = j.tenant_id AND o.job_id = j.id)
    SELECT count(*),
           round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY released)::numeric, 1),
           round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY released)::numeric, 1),
           round(1000 * max(released)::numeric, 1),
           round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY started)::numeric, 1),
           round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY started)::numeric, 1),
           count(*) FILTER (WHERE released < 0 OR started < 0)
    FROM lag" |
    { read -r n r50 r99 rmax s50 s99 early
      echo "broker=${broker%%:*} jobs=$n release_lag_ms p50=$r50 p99=$r99 max=$rmax start_lag_ms p50=$s50 p99=$s99 early=$early"; }
  if [ "${broker%%:*}" = redis ]; then
    redis-cli --scan --pattern "$PREFIX*" | xargs -r redis-cli del >/dev/null
  else
    rabbitmqctl -q list_queues name | grep "^$PREFIX\." | xargs -r -n1 rabbitmqctl -q delete_queue >/dev/null
  fi
done
