#!/usr/bin/env bash
# Job search at scale (issue 24): fills a database with BENCH_SEARCH_JOBS
# jobs (default 10,000,000) of one tenant spread over 30 days, 2% of them
# failed with an attempt's error, then times the searches an operator makes
# through the release api (curl, each BENCH_SEARCH_TRIES times, median and
# max) and prints each query's plan (EXPLAIN ANALYZE as the application
# role, row-level security on). Needs PostgreSQL, Redis and RabbitMQ on
# loopback. The filled database is kept: BENCH_SEARCH_REUSE=1 skips the
# fill when it is already there.
#
# Usage: bench/search.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/ferrostack-target}"
BIN="$CARGO_TARGET_DIR/release"
N=${BENCH_SEARCH_JOBS:-10000000}
TRIES=${BENCH_SEARCH_TRIES:-5}
DB=ferro_search_bench
APP_ROLE=ferro_search_bench_app
APP_PW=bench-app-password
SU_URL="postgres://postgres@127.0.0.1:5432"
PORT=18311

deploy/local/ensure-services.sh >/dev/null
echo "search-bench: building release binaries" >&2
cargo build --release -q -p api -p migrate

export DATABASE_URL="postgres://$APP_ROLE:$APP_PW@127.0.0.1:5432/$DB?sslmode=disable"
export MIGRATE_DATABASE_URL="$SU_URL/$DB"
export ADMIN_PASSWORD=bench-admin-password RUST_LOG=warn LOG_FORMAT=json
have=$(psql "$SU_URL/$DB" -tAc "SELECT count(*) FROM jobs" 2>/dev/null || echo 0)
if [ "${BENCH_SEARCH_REUSE:-0}" = 1 ] && [ "$have" -ge "$N" ]; then
  echo "search-bench: reusing $have jobs" >&2
else
  psql "$SU_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
  "$BIN/migrate" up
  echo "search-bench: writing $N jobs" >&2
  start=$(date +%s)
  # The trigram index is built after the rows are in: far quicker than
  # growing it row by row.
  psql "$SU_URL/$DB" -v ON_ERROR_STOP=1 -q <<SQL
SET maintenance_work_mem = '512MB';
DROP INDEX jobs_params_trgm_idx;
INSERT INTO jobs (tenant_id, kind, params, status, attempts, max_attempts, error,
                  created_at, started_at, finished_at, queue)
SELECT t.id, 'snmp.get',
       jsonb_build_object('host', '10.' || (i % 251) || '.' || (i / 251 % 251) || '.' || (i % 13),
                          'oids', jsonb_build_array('1.3.6.1.2.1.1.' || (i % 997) || '.0')),
       CASE WHEN i % 50 = 0 THEN 'failed' ELSE 'succeeded' END,
       CASE WHEN i % 50 = 0 THEN 3 ELSE 1 END, 3,
       CASE WHEN i % 50 = 0 THEN 'snmp: no answer from 10.' || (i % 251) || '.' || (i / 251 % 251)
                                 || ' after 3 tries (request ' || i || ')' END,
       now() - i * (interval '30 days' / $N),
       now() - i * (interval '30 days' / $N) + interval '40 ms',
       now() - i * (interval '30 days' / $N) + interval '90 ms',
       'default'
FROM generate_series(1, $N) i, tenants t WHERE t.slug = 'default';
INSERT INTO job_attempts (tenant_id, job_id, attempt, kind, queued_at, worker_id, started_at,
                          finished_at, outcome, error)
SELECT j.tenant_id, j.id, a.n, j.kind, j.created_at, 'bench:1', j.started_at, j.finished_at,
       CASE WHEN j.status = 'succeeded' THEN 'succeeded' WHEN a.n < 3 THEN 'retried' ELSE 'failed' END,
       j.error
FROM jobs j, generate_series(1, 3) a(n)
WHERE (j.status = 'failed' OR (a.n = 1 AND j.created_at > now() - interval '2 days'));
CREATE INDEX jobs_params_trgm_idx ON jobs USING gin ((params::text) extensions.gin_trgm_ops);
VACUUM ANALYZE jobs;
VACUUM ANALYZE job_attempts;
SQL
  echo "search-bench: filled in $(( $(date +%s) - start )) s" >&2
fi

psql "$SU_URL/$DB" -tAc "SELECT 'search-bench: ' || count(*) || ' jobs, ' || pg_size_pretty(pg_total_relation_size('jobs')) || ' with indexes' FROM jobs" >&2
REDIS_KEY_PREFIX="search-bench:" BROKER_PREFIX=search-bench PORT=$PORT HOST=127.0.0.1 \
  JWT_SECRET=bench-secret-bench-secret-bench-secret "$BIN/api" &
api=$!
trap 'kill $api 2>/dev/null' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null && break; sleep 0.1; done
token=$(curl -sf "http://127.0.0.1:$PORT/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}" | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
week=$(date -u -d '7 days ago' +%Y-%m-%dT%H:%M:%SZ)
host="10.17.203.5"
error_text="no%20answer%20from%2010.42.7"
cursor=$(curl -sf "http://127.0.0.1:$PORT/api/v1/jobs?size=100" -H "authorization: Bearer $token" \
  | sed 's/.*"next_cursor":"\([^"]*\)".*/\1/')

time_query() {
  local name=$1 query=$2 times=()
  for _ in $(seq "$TRIES"); do
    times+=("$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT/api/v1/$query" \
      -H "authorization: Bearer $token")")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v name="$name" -v q="$query" \
    '{t[NR]=$1} END {printf "%-34s median %7.1f ms  max %7.1f ms   GET /api/v1/%s\n", name, t[int((NR+1)/2)]*1000, t[NR]*1000, q}'
}

echo "search-bench: $TRIES tries each, through the api" >&2
time_query "newest page" "jobs?size=50"
time_query "next page by cursor" "jobs?size=50&cursor=$cursor"
time_query "failed, newest page" "jobs?status=failed&size=50"
time_query "by parameter text, last week" "jobs?q=$host&created_after=$week&size=50"
time_query "by parameter text, any time" "jobs?q=$host&size=50"
time_query "by error text, failed" "jobs?q=$error_text&status=failed&size=50"
time_query "statistics, 1 h by 1 min" "jobs/stats?window=1h&bucket=1m"
time_query "statistics, 24 h by 15 min" "jobs/stats?window=24h&bucket=15m"

# The plans, as the application role inside the tenant (row-level security on).
tenant=$(psql "$SU_URL/$DB" -tAc "SELECT id FROM tenants WHERE slug = 'default'")
explain() {
  echo "-- $1"
  psql "${3:-$DATABASE_URL}" -q <<SQL | grep -v '^$'
BEGIN;
SELECT set_config('app.tenant_id', '$tenant', true) \gset
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) $2;
ROLLBACK;
SQL
}
explain "by parameter text, last week" \
  "SELECT id FROM jobs WHERE true AND id IN (SELECT app_jobs_matching('%$host%')) AND created_at >= '$week' ORDER BY created_at DESC, id DESC LIMIT 50"
explain "  inside app_jobs_matching (as its owner, the tenant applied)" \
  "SELECT j.id FROM jobs j WHERE j.tenant_id = '$tenant' AND (j.params::text) ILIKE '%$host%' UNION SELECT a.job_id FROM job_attempts a WHERE a.tenant_id = '$tenant' AND a.error ILIKE '%$host%'" "$SU_URL/$DB"
explain "by error text, failed" \
  "SELECT id FROM jobs WHERE true AND status = ANY('{failed}') AND id IN (SELECT app_jobs_matching('%no answer from 10.42.7%')) ORDER BY created_at DESC, id DESC LIMIT 50"
explain "statistics, 24 h" \
  "SELECT kind, count(*) FROM job_attempts WHERE finished_at >= now() - interval '24 hours' GROUP BY kind"
