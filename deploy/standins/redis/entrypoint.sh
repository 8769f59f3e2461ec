#!/bin/bash
# redis-server as the redis user, its files in /data; protected mode off
# (containers reach it over the network) unless the command sets it.
set -euo pipefail
if [[ "${1:-}" == redis-server ]]; then
  chown -R redis:redis /data
  if [[ " $* " != *" --protected-mode "* ]]; then
    set -- "$@" --protected-mode no
  fi
  exec setpriv --reuid=redis --regid=redis --init-groups -- "$@"
fi
exec "$@"
