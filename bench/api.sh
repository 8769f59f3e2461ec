#!/usr/bin/env bash
# API benchmark (issue 3), all in one run on this machine:
#   1. pgbench: the devices-list SQL transaction (tenant set_config + count +
#      page, -M prepared) as the database ceiling;
#   2. wrk: GET /api/v1/devices?page=1&size=20 through the api, with a token;
#   3. wrk: GET /api/v1/health on the api, and on a bare axum handler with no
#      middleware (baseline-health) as the ceiling for the framework;
#   4. the api's idle RSS.
# Data: 10 tenants of 1,000 devices each. Both the api and pgbench talk to
# PostgreSQL without TLS (loopback), so neither pays for encryption. Needs PostgreSQL, Redis, RabbitMQ
# (deploy/local/ensure-services.sh), wrk and pgbench.
#
# Usage: bench/api.sh [seconds per run, default 10] [connections, default 64]
#        (BENCH_ROUNDS=3 rounds; BENCH_DB_POOL=10 api pool and pgbench clients:
#        the api's own default DATABASE_MAX_CONNECTIONS)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-10}
CONNS=${2:-64}
ROUNDS=${BENCH_ROUNDS:-3}
POOL=${BENCH_DB_POOL:-10}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/ferrostack-target}"
BIN="$CARGO_TARGET_DIR/release"
API_PORT=18201
BASE_PORT=18202
DB=ferro_bench
APP_ROLE=ferro_bench_app
APP_PW=bench-app-password
SU_URL="postgres://postgres@127.0.0.1:5432"
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

command -v wrk >/dev/null || { echo "bench: install wrk (apt-get install wrk)" >&2; exit 1; }
command -v pgbench >/dev/null || { echo "bench: install pgbench (postgresql-client)" >&2; exit 1; }
deploy/local/ensure-services.sh >/dev/null

echo "bench: building release binaries" >&2
cargo build --release -q -p api -p migrate -p ferro-bench

echo "bench: preparing $DB (10 tenants x 1000 devices)" >&2
psql "$SU_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
export DATABASE_URL="postgres://$APP_ROLE:$APP_PW@127.0.0.1:5432/$DB?sslmode=disable"
export MIGRATE_DATABASE_URL="$SU_URL/$DB"
export ADMIN_PASSWORD=bench-admin-password RUST_LOG=warn LOG_FORMAT=json
"$BIN/migrate" up
psql "$SU_URL/$DB" -q -v ON_ERROR_STOP=1 <<'SQL'
DO $$
DECLARE t uuid;
BEGIN
  FOR i IN 1..10 LOOP
    t := internal_create_tenant('bench-' || i, 'Bench ' || i);
    INSERT INTO devices (tenant_id, name, protocol, host, port, tags, snmp_version, snmp_community)
    SELECT t, 'device-' || g, 'snmp', '10.' || i || '.' || (g / 256) || '.' || (g % 256), 161,
           ARRAY['rack-' || (g % 10)], 'v2c', 'public'
    FROM generate_series(1, 1000) AS g;
  END LOOP;
END $$;
VACUUM ANALYZE;
SQL
TENANT=$(psql "$SU_URL/$DB" -Atc "SELECT id FROM tenants WHERE slug = 'bench-1'")
ADMIN=$(psql "$SU_URL/$DB" -Atc "SELECT id FROM users WHERE username = 'admin'")

echo "bench: starting api and baseline" >&2
REDIS_KEY_PREFIX="bench:$$:" PORT=$API_PORT HOST=127.0.0.1 DATABASE_MAX_CONNECTIONS=$POOL \
  JWT_SECRET=bench-secret-bench-secret-bench-secret "$BIN/api" >"$WORK/api.log" 2>&1 &
PIDS+=($!); API_PID=$!
"$BIN/baseline-health" $BASE_PORT &
PIDS+=($!)
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$API_PORT/api/v1/health" >/dev/null && curl -sf "http://127.0.0.1:$BASE_PORT/api/v1/health" >/dev/null && break
  sleep 0.1
done
sleep 1
RSS_KB=$(awk '/VmRSS/ {print $2}' /proc/$API_PID/status)

TOKEN=$(curl -sf "http://127.0.0.1:$API_PORT/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\",\"tenant\":\"bench-1\"}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
TOTAL=$(curl -sf "http://127.0.0.1:$API_PORT/api/v1/devices?page=1&size=20" -H "authorization: Bearer $TOKEN" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
[ "$TOTAL" = 1000 ] || { echo "bench: expected 1000 devices in bench-1, saw $TOTAL" >&2; exit 1; }

# The same transaction the api runs for GET /devices?page=1&size=20.
# The api writes the page's LIMIT and OFFSET into its SQL (ferro_db::limit_offset),
# so pgbench runs the statement with the same numbers in its text.
cat >"$WORK/devices.sql" <<SQL
BEGIN;
SELECT set_config('app.tenant_id', '$TENANT', true), set_config('app.user_id', '$ADMIN', true);
SELECT (SELECT count(*) FROM devices) AS total, id, name, protocol, host, port, tags, status, last_seen_at, created_at, updated_at FROM devices ORDER BY created_at, id LIMIT 20 OFFSET 0;
END;
SQL

run_wrk() { # name url [header]
  local out="$WORK/$1.wrk"
  if [ $# -ge 3 ]; then
    wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -H "$3" "$2" >"$out"
  else
    wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "$2" >"$out"
  fi
  local rps p50 p99 errs
  rps=$(awk '/Requests\/sec/ {print $2}' "$out")
  p50=$(awk '$1 == "50%" {print $2}' "$out")
  p99=$(awk '$1 == "99%" {print $2}' "$out")
  errs=$(awk '/Non-2xx/ {print $5}' "$out")
  echo "$1 $rps $p50 $p99 ${errs:-0}"
}

run_pgbench() { # clients
  PGSSLMODE=disable PGPASSWORD=$APP_PW pgbench -n -M prepared -c "$1" -j 2 -T "$DURATION" -f "$WORK/devices.sql" \
    -h 127.0.0.1 -U $APP_ROLE $DB 2>/dev/null | awk '/^tps/ {print $3}'
}

echo "bench: warming up" >&2
wrk -t2 -c"$CONNS" -d3s -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$API_PORT/api/v1/devices?page=1&size=20" >/dev/null
run_pgbench "$POOL" >/dev/null

# Each pair is measured back to back, ROUNDS times, and the medians of the
# per-round figures are reported: this machine's speed drifts by 20% or more
# between minutes, so only side-by-side ratios mean anything.
echo "bench: $ROUNDS rounds of ${DURATION}s runs, $CONNS connections, db pool $POOL" >&2
: >"$WORK/rounds"
for round in $(seq 1 "$ROUNDS"); do
  pg=$(run_pgbench "$POOL")
  read -r _ dev dev50 dev99 deverr < <(run_wrk devices "http://127.0.0.1:$API_PORT/api/v1/devices?page=1&size=20" "authorization: Bearer $TOKEN")
  read -r _ base _ _ _ < <(run_wrk baseline-health "http://127.0.0.1:$BASE_PORT/api/v1/health")
  read -r _ health h50 h99 herr < <(run_wrk api-health "http://127.0.0.1:$API_PORT/api/v1/health")
  echo "$pg $dev $dev50 $dev99 $deverr $base $health $h50 $h99 $herr" >>"$WORK/rounds"
  echo "bench: round $round: pgbench $pg tx/s, devices $dev req/s, baseline $base req/s, health $health req/s" >&2
done

python3 - "$WORK/rounds" "$RSS_KB" "$CONNS" "$POOL" "$DURATION" <<'PY'
import statistics, sys
rounds_file, rss, conns, pool, dur = sys.argv[1:]
def ms(v):
    return float(v[:-2]) if v.endswith("ms") else float(v[:-2]) / 1000 if v.endswith("us") else float(v[:-1]) * 1000
rows = [line.split() for line in open(rounds_file)]
med = lambda xs: statistics.median(xs)
pg = [float(r[0]) for r in rows]; dev = [float(r[1]) for r in rows]
base = [float(r[5]) for r in rows]; health = [float(r[6]) for r in rows]
dev99 = [ms(r[3]) for r in rows]; h99 = [ms(r[8]) for r in rows]
errors = sum(int(r[4]) + int(r[9]) for r in rows)
r_dev = med([d / p for d, p in zip(dev, pg)]); r_health = med([h / b for h, b in zip(health, base)])
print(f"{len(rows)} rounds of {dur}s per measurement; wrk -t2 -c{conns}; api pool and pgbench clients: {pool}.")
print()
print("| measurement (median of rounds) | per second | p50 | p99 |")
print("|---|---|---|---|")
print(f"| pgbench: the devices transaction, -M prepared, {pool} clients | {med(pg):.0f} tx | | |")
print(f"| api: GET /api/v1/devices?page=1&size=20 | {med(dev):.0f} req | {med([ms(r[2]) for r in rows]):.2f} ms | {med(dev99):.2f} ms |")
print(f"| bare axum handler (baseline-health) | {med(base):.0f} req | | |")
print(f"| api: GET /api/v1/health | {med(health):.0f} req | {med([ms(r[7]) for r in rows]):.2f} ms | {med(h99):.2f} ms |")
print()
print("| target | measured | met |")
print("|---|---|---|")
print(f"| devices list >= 80% of pgbench | {r_dev:.0%} | {'yes' if r_dev >= 0.8 else 'no'} |")
print(f"| health >= 70% of a bare axum handler | {r_health:.0%} | {'yes' if r_health >= 0.7 else 'no'} |")
print(f"| p99 < 20 ms at {conns} connections: devices | {med(dev99):.2f} ms | {'yes' if med(dev99) < 20 else 'no'} |")
print(f"| p99 < 20 ms at {conns} connections: health | {med(h99):.2f} ms | {'yes' if med(h99) < 20 else 'no'} |")
print(f"| api idle RSS < 30 MB | {int(rss) / 1024:.1f} MB | {'yes' if int(rss) < 30 * 1024 else 'no'} |")
print(f"| non-2xx responses | {errors} | {'yes' if errors == 0 else 'no'} |")
PY
