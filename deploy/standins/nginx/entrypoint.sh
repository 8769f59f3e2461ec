#!/bin/bash
# When the command is nginx, runs the scripts in /docker-entrypoint.d first
# (in name order), then nginx.
set -euo pipefail
if [[ "${1:-}" == nginx ]]; then
  for script in /docker-entrypoint.d/*.sh; do
    [[ -x "$script" ]] && "$script"
  done
fi
exec "$@"
