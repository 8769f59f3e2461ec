#!/usr/bin/env bash
# Jobs benchmark (issues 4 and 22): for RabbitMQ and for Redis Streams, in
# one run, bench/src/bin/jobs_bench/main.rs alternates the ceiling (pgbench
# running the single-submission transaction at 64 clients), POST
# /api/v1/jobs under wrk -t2 -c64 and 5,000 jobs end to end from 32
# clients, then measures single-job latency and the idle RSS of the api
# (after a login) and the worker. Needs PostgreSQL, Redis and RabbitMQ on
# loopback (deploy/local/ensure-services.sh), pgbench and wrk (installed
# here if missing).
#
# Usage: bench/jobs.sh            (BENCH_SECONDS=15 BENCH_CONNS=64
#                                  BENCH_POSTS=5000 BENCH_CLIENTS=32
#                                  BENCH_PAIRS=3 BENCH_API_POOL=10
#                                  BENCH_WORKER_CONCURRENCY=256 BENCH_ROUNDS=1;
#                                  BENCH_ONLY=drain BENCH_JOBS=20000 for the
#                                  raw broker loop against the worker's drain;
#                                  BENCH_BASELINE=REV to measure REV's api and
#                                  worker side by side with these)
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/ferrostack-target}"
export BENCH_BIN="$CARGO_TARGET_DIR/release"
ROUNDS=${BENCH_ROUNDS:-1}
DB=ferro_jobs_bench
APP_ROLE=ferro_jobs_bench_app
APP_PW=bench-app-password
SU_URL="postgres://postgres@127.0.0.1:5432"

deploy/local/ensure-services.sh >/dev/null
command -v wrk >/dev/null && command -v pgbench >/dev/null || {
  echo "bench: installing wrk and pgbench (Debian's wrk, postgresql-client)" >&2
  apt-get install -y -qq wrk postgresql-client >/dev/null
}
echo "bench: building release binaries" >&2
cargo build --release -q -p api -p worker -p migrate -p ferro-bench

psql "$SU_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
export DATABASE_URL="postgres://$APP_ROLE:$APP_PW@127.0.0.1:5432/$DB?sslmode=disable"
export MIGRATE_DATABASE_URL="$SU_URL/$DB"
export BENCH_SU_URL="$SU_URL/$DB"
export ADMIN_PASSWORD=bench-admin-password RUST_LOG=warn LOG_FORMAT=json
"$BENCH_BIN/migrate" up

# BENCH_BASELINE=REV: REV's api, worker and migrate, built from `git
# archive` into a target directory of REV's own (kept for the next run),
# with a database of their own migrated by REV's migrate. One target
# directory per revision: two revisions' workspace crates get the same
# unit hashes, and cargo would take one's artifacts as fresh for the other.
if [ -n "${BENCH_BASELINE:-}" ]; then
  rev=$(git rev-parse --short "$BENCH_BASELINE")
  base_root="${CARGO_TARGET_DIR}-baseline"
  base_src="$base_root/src-$rev"
  base_target="$base_root/target-$rev"
  if [ ! -d "$base_src" ]; then
    mkdir -p "$base_src.tmp" && git archive "$rev" | tar -x -m -C "$base_src.tmp"
    mv "$base_src.tmp" "$base_src"
  fi
  echo "bench: building the baseline $rev" >&2
  (cd "$base_src" && CARGO_TARGET_DIR="$base_target" cargo build --release -q -p api -p worker -p migrate)
  mkdir -p "$base_target/bin-$rev"
  cp "$base_target/release/"{api,worker,migrate} "$base_target/bin-$rev/"
  export BENCH_BASELINE_BIN="$base_target/bin-$rev"
  psql "$SU_URL/postgres" -qc "DROP DATABASE IF EXISTS ${DB}_base WITH (FORCE)" >/dev/null
  export BENCH_BASELINE_SU_URL="$SU_URL/${DB}_base"
  export BENCH_BASELINE_DATABASE_URL="postgres://$APP_ROLE:$APP_PW@127.0.0.1:5432/${DB}_base?sslmode=disable"
  DATABASE_URL="$BENCH_BASELINE_DATABASE_URL" MIGRATE_DATABASE_URL="$BENCH_BASELINE_SU_URL" \
    "$BENCH_BASELINE_BIN/migrate" up
fi

for round in $(seq 1 "$ROUNDS"); do
  for broker in "amqp://guest:guest@127.0.0.1:5672/%2f" "redis://127.0.0.1:6379/0"; do
    echo "bench: round $round, $broker" >&2
    BROKER_URL="$broker" "$BENCH_BIN/jobs-bench"
  done
done
