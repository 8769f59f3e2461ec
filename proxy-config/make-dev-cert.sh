#!/usr/bin/env bash
# Makes a self-signed development certificate for localhost:
#   make-dev-cert.sh [DIR, default proxy-config/certs] -> DIR/dev.crt, DIR/dev.key
# Then: TLS_CERT=DIR/dev.crt TLS_KEY=DIR/dev.key deploy/local/up.sh (HTTPS on 8443).
set -euo pipefail
dir=${1:-$(dirname "$0")/certs}
mkdir -p "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 365 \
  -keyout "$dir/dev.key" -out "$dir/dev.crt" -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
chmod 600 "$dir/dev.key"
echo "make-dev-cert: wrote $dir/dev.crt and $dir/dev.key"
