#!/usr/bin/env bash
# MIBs at scale (issue 25): through the release api and worker, times the
# compile of net-snmp's MIB directory (/usr/share/snmp/mibs, Debian's
# libsnmp-base) and of a generated module of BENCH_MIB_OBJECTS objects
# (default 50,000: tables of 98 columns), from upload to the job's end; then
# BENCH_MIB_TRIES (default 2,000) browses of a random node with its children
# (`GET /api/v1/mibs/objects?oid=`), over one keep-alive connection, p50,
# p99 and max. Needs PostgreSQL, Redis and RabbitMQ on loopback.
#
# Usage: bench/mibs.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/ferrostack-target}"
BIN="$CARGO_TARGET_DIR/release"
N=${BENCH_MIB_OBJECTS:-50000}
TRIES=${BENCH_MIB_TRIES:-2000}
DB=ferro_mibs_bench
APP_ROLE=ferro_mibs_bench_app
APP_PW=bench-app-password
SU_URL="postgres://postgres@127.0.0.1:5432"
PORT=18312
WORK=$(mktemp -d /tmp/ferro-mibs-bench.XXXXXX)

deploy/local/ensure-services.sh >/dev/null
[ -d /usr/share/snmp/mibs ] || { echo "mibs-bench: no /usr/share/snmp/mibs (apt-get install libsnmp-base)" >&2; exit 1; }
echo "mibs-bench: building release binaries" >&2
cargo build --release -q -p api -p worker -p migrate

export DATABASE_URL="postgres://$APP_ROLE:$APP_PW@127.0.0.1:5432/$DB?sslmode=disable"
export MIGRATE_DATABASE_URL="$SU_URL/$DB"
export ADMIN_PASSWORD=bench-admin-password RUST_LOG=warn LOG_FORMAT=json
export REDIS_KEY_PREFIX="mibs-bench:" BROKER_PREFIX=mibs-bench UPLOADS_DIR="$WORK/uploads"
export JWT_SECRET=bench-secret-bench-secret-bench-secret
psql "$SU_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
"$BIN/migrate" up >/dev/null

PORT=$PORT HOST=127.0.0.1 "$BIN/api" &
api=$!
WORKER_CONCURRENCY=2 "$BIN/worker" >"$WORK/worker.log" 2>&1 &
worker=$!
trap 'kill $api $worker 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null && break; sleep 0.1; done
token=$(curl -sf "http://127.0.0.1:$PORT/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}" | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
auth=(-H "authorization: Bearer $token")

# Uploads the files given, waits for the compile; prints the seconds taken.
compile() {
  local args=() start job status
  for f in "$@"; do args+=(-F "file=@$f"); done
  start=$(date +%s.%N)
  job=$(curl -sf "http://127.0.0.1:$PORT/api/v1/mibs" "${auth[@]}" "${args[@]}" \
    | sed 's/^{"job":{"id":"\([^"]*\)".*/\1/')
  while :; do
    status=$(curl -sf "http://127.0.0.1:$PORT/api/v1/jobs/$job" "${auth[@]}" | sed 's/.*"status":"\([a-z]*\)".*/\1/')
    case $status in succeeded) break ;; failed|cancelled) echo "mibs-bench: compile $status" >&2; exit 1 ;; esac
    sleep 0.05
  done
  awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN { print a - b }'
}

echo "mibs-bench: net-snmp's MIB directory ($(ls /usr/share/snmp/mibs | wc -l) files)" >&2
t=$(compile /usr/share/snmp/mibs/*)
printf 'compile net-snmp MIBs, upload to done     %6.2f s\n' "$t"

python3 - "$N" >"$WORK/BENCH-BIG-MIB.txt" <<'PY'
import sys
n = int(sys.argv[1])
cols = 98
tables = max(1, n // (cols + 2))
out = ["BENCH-BIG-MIB DEFINITIONS ::= BEGIN",
       "IMPORTS MODULE-IDENTITY, OBJECT-TYPE, Integer32, Counter32, enterprises FROM SNMPv2-SMI",
       "        DisplayString FROM SNMPv2-TC;",
       'benchBig MODULE-IDENTITY LAST-UPDATED "202612080000Z" ORGANIZATION "bench"',
       '    CONTACT-INFO "none" DESCRIPTION "Generated." ::= { enterprises 99990 }']
for t in range(1, tables + 1):
    entry = f"BenchT{t}Entry"
    out.append(f"benchT{t}Table OBJECT-TYPE SYNTAX SEQUENCE OF {entry} MAX-ACCESS not-accessible")
    out.append(f'    STATUS current DESCRIPTION "Table {t}." ::= {{ benchBig {t} }}')
    out.append(f"benchT{t}Entry OBJECT-TYPE SYNTAX {entry} MAX-ACCESS not-accessible")
    out.append(f'    STATUS current DESCRIPTION "Row of table {t}." INDEX {{ benchT{t}C1 }} ::= {{ benchT{t}Table 1 }}')
    fields = ", ".join(f"benchT{t}C{c} {'Integer32' if c == 1 else ('Counter32' if c % 2 else 'DisplayString')}" for c in range(1, cols + 1))
    out.append(f"{entry} ::= SEQUENCE {{ {fields} }}")
    for c in range(1, cols + 1):
        syntax = "Integer32 (1..65535)" if c == 1 else ("Counter32" if c % 2 else "DisplayString")
        access = "not-accessible" if c == 1 else "read-only"
        out.append(f"benchT{t}C{c} OBJECT-TYPE SYNTAX {syntax} MAX-ACCESS {access}")
        out.append(f'    STATUS current DESCRIPTION "Column {c} of table {t}." ::= {{ benchT{t}Entry {c} }}')
out.append("END")
print("\n".join(out))
PY
echo "mibs-bench: generated module, $(du -h "$WORK/BENCH-BIG-MIB.txt" | cut -f1)" >&2
t=$(compile "$WORK/BENCH-BIG-MIB.txt")
printf 'compile %d-object module, upload to done %6.2f s\n' "$N" "$t"
nodes=$(psql "$SU_URL/$DB" -tAc "SELECT count(*) FROM mib_nodes")
printf 'nodes in the tree                          %8d\n' "$nodes"

# Random nodes (tables, rows, columns, and the generated module's root),
# each asked for with its children, on one connection.
psql "$SU_URL/$DB" -tAc "SELECT oid FROM mib_nodes ORDER BY random() LIMIT $TRIES" \
  | sed "s|^|url = \"http://127.0.0.1:$PORT/api/v1/mibs/objects?oid=|; s|$|\"\noutput = /dev/null|" >"$WORK/urls"
curl -s -K "$WORK/urls" "${auth[@]}" -w '%{http_code} %{time_total}\n' >"$WORK/times"
if grep -qv '^200 ' "$WORK/times"; then echo "mibs-bench: a browse did not answer 200" >&2; exit 1; fi
cut -d' ' -f2 "$WORK/times" | sort -n | awk '{t[NR]=$1} END {
  printf "browse a node and its children, %d tries  p50 %5.1f ms  p99 %5.1f ms  max %5.1f ms\n",
    NR, t[int(NR*0.5)]*1000, t[int(NR*0.99)]*1000, t[NR]*1000 }'
root_children=$(curl -sf "http://127.0.0.1:$PORT/api/v1/mibs/objects?oid=1.3.6.1.4.1.99990" "${auth[@]}" \
  | grep -o '"oid":"1.3.6.1.4.1.99990\.[0-9]*"' | wc -l)
printf 'the generated module root has %d children\n' "$root_children"
