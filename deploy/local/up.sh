#!/usr/bin/env bash
# Runs the Ferrostack topology natively, in the foreground, as docker-compose.yml
# does in containers: `migrate up`, then api, worker and scheduler, and nginx
# with proxy-config/ on NGINX_PORT (default 8000) in front of the api.
#
#   deploy/local/up.sh            # Ctrl-C stops everything
#
# Settings come from the environment, then .env (variables already set win);
# without a .env, from .env.example, so a fresh clone runs as it is. Every line a
# service prints is prefixed with its name. Exits non-zero if a service fails
# to start or dies; 0 after Ctrl-C (or SIGTERM) once everything has stopped.
#
# Knobs (besides the services' own variables, see README.md):
#   NGINX_PORT          8000
#   WORKER_METRICS_ADDR, SCHEDULER_METRICS_ADDR   127.0.0.1:9101, 127.0.0.1:9102
#   FERRO_PROFILE       release (default) or dev: which cargo profile to build and run
#   FERRO_BIN_DIR       run the binaries from here and build nothing
#   FERRO_RUN_DIR       where nginx's rendered config and temp files go
#                       (default deploy/local/run)
#   FERRO_ENSURE_SERVICES  1 (default): start local PostgreSQL, Redis and
#                       RabbitMQ if they are not answering (ensure-services.sh)
#   FERRO_START_TIMEOUT seconds each service may take to become ready (60)
#   FERRO_STOP_TIMEOUT  seconds all services together may take to stop (40)
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1

say() { printf '[up] %s\n' "$*"; }
die() { printf '[up] error: %s\n' "$*" >&2; exit 1; }

# --- settings: environment, then .env, then .env.example ---------------------
load_env_file() {
  local file=$1 line key value
  [ -f "$file" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%$'\r'}
    [[ $line =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
    key=${BASH_REMATCH[2]} value=${BASH_REMATCH[3]}
    [ -n "${!key+x}" ] && continue
    if [[ $value =~ ^\"(.*)\"$ || $value =~ ^\'(.*)\'$ ]]; then
      value=${BASH_REMATCH[1]}
    else
      value=${value%%[[:space:]]#*}
    fi
    export "$key=$value"
  done <"$file"
}
if [ -f .env ]; then
  load_env_file .env
else
  say "no .env: using the development defaults of .env.example"
  load_env_file .env.example
fi

# The api is reached through nginx: by default it listens on loopback only.
export HOST=${HOST:-127.0.0.1}
export PORT=${PORT:-8001}
export NGINX_PORT=${NGINX_PORT:-8000}
export WORKER_METRICS_ADDR=${WORKER_METRICS_ADDR:-127.0.0.1:9101}
export SCHEDULER_METRICS_ADDR=${SCHEDULER_METRICS_ADDR:-127.0.0.1:9102}
export API_UPSTREAM=${API_UPSTREAM:-127.0.0.1:$PORT}
# nginx resolves relative certificate paths against its own prefix: anchor them here.
for v in TLS_CERT TLS_KEY; do
  if [ -n "${!v:-}" ] && [[ ${!v} != /* ]]; then export "$v=$root/${!v}"; fi
done
profile=${FERRO_PROFILE:-release}
run_dir=${FERRO_RUN_DIR:-$root/deploy/local/run}
# Uploaded files: the api and the worker must see the same directory.
export UPLOADS_DIR=${UPLOADS_DIR:-$run_dir/uploads}
if [[ $UPLOADS_DIR != /* ]]; then export UPLOADS_DIR=$root/$UPLOADS_DIR; fi
start_timeout=${FERRO_START_TIMEOUT:-60}
[ -n "${DATABASE_URL:-}" ] || die "DATABASE_URL is not set (and no .env or .env.example sets it)"

# --- what the stack needs on this machine ------------------------------------
if ! command -v nginx >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "nginx is not installed: apt-get install nginx (as root)"
  say "installing nginx (Debian package)"
  # Keep the package from starting its own nginx on port 80.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; } \
    || { rm -f /usr/sbin/policy-rc.d; die "could not install nginx"; }
  rm -f /usr/sbin/policy-rc.d
fi
command -v envsubst >/dev/null 2>&1 || die "envsubst is missing: apt-get install gettext-base"
if [ "${FERRO_ENSURE_SERVICES:-1}" = 1 ]; then
  "$root/deploy/local/ensure-services.sh" || die "PostgreSQL, Redis or RabbitMQ is not answering"
fi

if [ -n "${FERRO_BIN_DIR:-}" ]; then
  bin_dir=$FERRO_BIN_DIR
else
  target=${CARGO_TARGET_DIR:-$root/target}
  if [ "$profile" = dev ]; then bin_dir=$target/debug; else bin_dir=$target/$profile; fi
  say "building the binaries (cargo --profile $profile; quick when nothing changed)"
  cargo build --profile "$profile" --bin api --bin worker --bin scheduler --bin migrate \
    || die "cargo build failed"
fi
for b in api worker scheduler migrate; do
  [ -x "$bin_dir/$b" ] || die "$bin_dir/$b is missing"
done

# --- the services -------------------------------------------------------------
names=() pids=()
stopping=0

# prefix NAME: copies stdin to stdout, each line behind "[NAME] ".
prefix() {
  local name=$1 line
  # Ctrl-C reaches the whole process group: keep reading until the service
  # itself has stopped and closed its output.
  trap '' INT TERM
  while IFS= read -r line || [ -n "$line" ]; do
    printf '%-10s %s\n' "[$name]" "$line"
  done
}

# start NAME COMMAND...: runs COMMAND in the background, output prefixed.
start() {
  local name=$1
  shift
  "$@" > >(prefix "$name") 2>&1 &
  names+=("$name")
  pids+=("$!")
}

alive() { kill -0 "$1" 2>/dev/null; }

stop_all() {
  local i deadline
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    alive "${pids[$i]}" && kill -TERM "${pids[$i]}" 2>/dev/null
  done
  # Workers may finish running jobs (WORKER_SHUTDOWN_GRACE_SECONDS, 30 s).
  deadline=$((SECONDS + ${FERRO_STOP_TIMEOUT:-40}))
  for ((i = 0; i < ${#pids[@]}; i++)); do
    while alive "${pids[$i]}" && ((SECONDS < deadline)); do sleep 0.1; done
    if alive "${pids[$i]}"; then
      say "${names[$i]} did not stop in time; killing it"
      kill -KILL "${pids[$i]}" 2>/dev/null
    fi
    wait "${pids[$i]}" 2>/dev/null
  done
  pids=()
  names=()
}

on_signal() {
  stopping=1
}
# HUP too: a closed terminal must not leave nginx (which reloads on HUP) behind.
trap on_signal INT TERM HUP

fail() {
  printf '[up] error: %s\n' "$*" >&2
  stop_all
  exit 1
}

# wait_ready NAME PID CHECK...: until CHECK succeeds; fails if PID dies first.
wait_ready() {
  local name=$1 pid=$2 deadline=$((SECONDS + start_timeout))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((stopping)); then
      say "stopping"
      stop_all
      exit 0
    fi
    alive "$pid" || fail "$name exited during start-up (see its lines above)"
    ((SECONDS < deadline)) || fail "$name was not ready within ${start_timeout}s"
    sleep 0.2
  done
  say "$name is ready"
}

# Ports must be free: a readiness check must not find some other process.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for spec in "api:$PORT" "nginx:$NGINX_PORT" "worker metrics:${WORKER_METRICS_ADDR##*:}" \
  "scheduler metrics:${SCHEDULER_METRICS_ADDR##*:}"; do
  port_in_use "${spec##*:}" && die "port ${spec##*:} (${spec%:*}) is already in use"
done

say "migrate up"
"$bin_dir/migrate" up > >(prefix migrate) 2>&1
status=$?
if ((stopping)); then
  say "stopped"
  exit 0
fi
((status == 0)) || die "migrate up failed (exit $status)"

start api "$bin_dir/api"
wait_ready api "${pids[-1]}" "$bin_dir/api" healthcheck

start worker "$bin_dir/worker"
wait_ready worker "${pids[-1]}" "$bin_dir/worker" ping --pid "${pids[-1]}"

start scheduler "$bin_dir/scheduler"
wait_ready scheduler "${pids[-1]}" "$bin_dir/scheduler" ping --pid "${pids[-1]}"

mkdir -p "$run_dir"
"$root/proxy-config/render.sh" "$run_dir/nginx" >/dev/null || fail "could not render the nginx configuration"
nginx -t -q -p "$run_dir/nginx" -c "$run_dir/nginx/nginx.conf" || fail "nginx -t refused the configuration"
start nginx nginx -p "$run_dir/nginx" -c "$run_dir/nginx/nginx.conf" -g "daemon off;"
# Ready when the api answers through it (the api's own check, on nginx's port).
wait_ready nginx "${pids[-1]}" env PORT="$NGINX_PORT" "$bin_dir/api" healthcheck

if ((!stopping)); then
  cat <<EOF
[up] Ferrostack is up. Ctrl-C stops everything.
[up]   http://localhost:$NGINX_PORT/             root page (nginx)
[up]   http://localhost:$NGINX_PORT/api/v1/      REST API
[up]   http://localhost:$NGINX_PORT/docs         Swagger UI, /redoc, /openapi.json
[up]   http://localhost:$NGINX_PORT/monitor      jobs and workers
[up]   http://127.0.0.1:$PORT/metrics      api metrics (not through nginx)
[up]   http://$WORKER_METRICS_ADDR/metrics, http://$SCHEDULER_METRICS_ADDR/metrics
[up]   administrator: ${ADMIN_USERNAME:-admin} (password ADMIN_PASSWORD) in tenant default
EOF
  if [ -n "${TLS_CERT:-}" ] && [ -n "${TLS_KEY:-}" ]; then
    say "  https://localhost:${TLS_PORT:-8443}/            the same over TLS"
  fi
fi

# --- supervise ------------------------------------------------------------------
while ((!stopping)); do
  for ((i = 0; i < ${#pids[@]}; i++)); do
    if ! alive "${pids[$i]}"; then
      wait "${pids[$i]}" 2>/dev/null
      fail "${names[$i]} died (exit $?); stopping the others"
    fi
  done
  sleep 0.5
done
say "stopping"
stop_all
say "stopped"
exit 0
