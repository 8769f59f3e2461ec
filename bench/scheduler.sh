#!/usr/bin/env bash
# Scheduler fire lag (issue 5): the release scheduler fires SCHEDULES
# per-second schedules for SECONDS seconds; the lag of each fire is the
# moment its job row was written (jobs.created_at, the fire transaction's
# start) minus its slot (scheduled_for). Needs PostgreSQL and Redis on
# loopback (deploy/local/ensure-services.sh).
#
# Usage: bench/scheduler.sh [seconds, default 60] [schedules, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_RUN=${1:-60}
SCHEDULES=${2:-20}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/ferrostack-target}"
BIN="$CARGO_TARGET_DIR/release"
DB=ferro_sched_bench
SU_URL="postgres://postgres@127.0.0.1:5432"

deploy/local/ensure-services.sh >/dev/null
echo "bench: building release binaries" >&2
cargo build --release -q -p scheduler -p migrate

psql "$SU_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
export DATABASE_URL="postgres://ferro_sched_bench_app:bench-app-password@127.0.0.1:5432/$DB?sslmode=disable"
export MIGRATE_DATABASE_URL="$SU_URL/$DB"
export ADMIN_PASSWORD=bench-admin-password RUST_LOG=warn LOG_FORMAT=json
export BROKER_URL=redis://127.0.0.1:6379/0 BROKER_PREFIX="bench-sched-$$" REDIS_KEY_PREFIX="bench:sched:$$:"
"$BIN/migrate" up
psql "$SU_URL/$DB" -q -v ON_ERROR_STOP=1 -c "
  INSERT INTO schedules (tenant_id, name, cron, kind, next_run_at)
  SELECT (SELECT id FROM tenants WHERE slug = 'default'), 'tick-' || g, '* * * * * *', 'noop',
         date_trunc('second', now()) + interval '2 seconds'
  FROM generate_series(1, $SCHEDULES) AS g"

echo "bench: $SCHEDULES per-second schedules for ${SECONDS_RUN}s" >&2
NONE=$(mktemp); echo '{"schedules": []}' >"$NONE"
SCHEDULER_CONFIG="$NONE" "$BIN/scheduler" >/dev/null 2>&1 &
PID=$!
sleep "$SECONDS_RUN"
RSS_KB=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
kill -TERM "$PID"; wait "$PID" || true

psql "$SU_URL/$DB" -At -F ' ' -c "
  SELECT count(*),
         round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM created_at - scheduled_for))::numeric, 2),
         round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM created_at - scheduled_for))::numeric, 2),
         round(1000 * max(extract(epoch FROM created_at - scheduled_for))::numeric, 2),
         (SELECT count(*) FROM (SELECT schedule_id, scheduled_for FROM jobs GROUP BY 1, 2 HAVING count(*) > 1) d)
  FROM jobs WHERE schedule_id IS NOT NULL" |
  { read -r n p50 p99 max dup
    echo "fires=$n lag_p50_ms=$p50 lag_p99_ms=$p99 lag_max_ms=$max doubled_slots=$dup scheduler_rss_mb=$((RSS_KB / 1024))"; }
rm -f "$NONE"
redis-cli --scan --pattern "bench-sched-$$:*" | xargs -r redis-cli del >/dev/null
