#!/usr/bin/env bash
# Runs every test of the workspace on a fresh Debian machine of this kind:
# installs what the tests need (deploy/local/install-test-deps.sh), starts
# PostgreSQL, Redis and RabbitMQ if they are down
# (deploy/local/ensure-services.sh), then runs the tests. Arguments go to
# `cargo nextest run` (a filter, say). Every test makes its own database,
# key prefix and broker names, so they run in parallel and leave nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
deploy/local/install-test-deps.sh
deploy/local/ensure-services.sh
exec cargo nextest run --workspace "$@"
