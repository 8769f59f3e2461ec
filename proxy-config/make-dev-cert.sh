#!/usr/bin/env bash
# Makes a self-signed development certificate for localhost:
#   make-dev-cert.sh [DIR, default proxy-config/certs] -> DIR/tls.crt, DIR/tls.key
# Then: TLS_CERT=DIR/tls.crt TLS_KEY=DIR/tls.key deploy/local/up.sh (HTTPS on 8443),
# or docker compose up (HTTPS on NGINX_TLS_PORT, 443), which looks in proxy-config/certs.
set -euo pipefail
dir=${1:-$(dirname "$0")/certs}
mkdir -p "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 365 \
  -keyout "$dir/tls.key" -out "$dir/tls.crt" -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
chmod 600 "$dir/tls.key"
echo "make-dev-cert: wrote $dir/tls.crt and $dir/tls.key"
