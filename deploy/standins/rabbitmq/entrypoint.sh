#!/bin/bash
# rabbitmq-server as the rabbitmq user; the node is rabbit@<hostname>, its
# database and Erlang cookie in /var/lib/rabbitmq.
set -euo pipefail
if [[ "${1:-}" == rabbitmq-server ]]; then
  mkdir -p /var/lib/rabbitmq /var/log/rabbitmq
  chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
  export RABBITMQ_LOGS=- RABBITMQ_NODENAME="rabbit@$(hostname)"
  exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups -- \
    /usr/lib/rabbitmq/bin/rabbitmq-server
fi
exec "$@"
