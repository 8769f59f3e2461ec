#!/usr/bin/env bash
# Makes sure PostgreSQL, Redis and RabbitMQ answer on loopback, starting the
# local installations if they do not. Idempotent; used by .ci/run and by
# developers. Exits non-zero if a service still does not answer.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # name port seconds
  local name=$1 port=$2 secs=$3
  for _ in $(seq 1 "$((secs * 4))"); do
    port_open "$port" && return 0
    sleep 0.25
  done
  echo "ensure-services: $name is not answering on 127.0.0.1:$port" >&2
  return 1
}

if ! port_open 5432; then
  echo "ensure-services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
fi
if ! port_open 6379; then
  echo "ensure-services: starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
fi
if ! port_open 5672; then
  echo "ensure-services: starting RabbitMQ"
  rabbitmq-server -detached
fi
# The Docker engine of Debian's docker.io (for the compose test), when
# installed and not running.
# (Debian puts dockerd in /usr/sbin.)
if [ -x /usr/sbin/dockerd ] && ! /usr/bin/docker info >/dev/null 2>&1; then
  echo "ensure-services: starting dockerd"
  setsid /usr/sbin/dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    /usr/bin/docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  /usr/bin/docker info >/dev/null 2>&1 || { echo "ensure-services: dockerd did not start" >&2; exit 1; }
fi
wait_port PostgreSQL 5432 30
wait_port Redis 6379 15
wait_port RabbitMQ 5672 90
echo "ensure-services: PostgreSQL, Redis and RabbitMQ are up"
