#!/usr/bin/env bash
# Renders the nginx configuration for a native run into OUT_DIR:
#   OUT_DIR/nginx.conf, OUT_DIR/conf.d/*.conf|*.inc, OUT_DIR/tmp/
# then start it with: nginx -p OUT_DIR -c OUT_DIR/nginx.conf
# Environment: API_UPSTREAM (127.0.0.1:${PORT:-8001}), NGINX_PORT (8000),
# STATIC_ROOT (OUT_DIR/static), NGINX_HTML (proxy-config/html),
# NGINX_UPLOAD_MAX_BODY (21m: the upload routes' body limit), and for
# HTTPS both TLS_CERT and TLS_KEY (TLS_PORT, default 8443).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: render.sh OUT_DIR}
mkdir -p "$out/conf.d" "$out/tmp" "$out/static"
# nginx's workers (www-data when the master is root) write temporary files here.
chmod 1777 "$out/tmp"
out=$(cd "$out" && pwd)

export API_UPSTREAM=${API_UPSTREAM:-127.0.0.1:${PORT:-8001}}
export API_PROXY_PASS=http://ferrostack_api
export NGINX_PORT=${NGINX_PORT:-8000}
export STATIC_ROOT=${STATIC_ROOT:-$out/static}
export NGINX_HTML=${NGINX_HTML:-$here/html}
export TLS_PORT=${TLS_PORT:-8443} TLS_CERT=${TLS_CERT:-} TLS_KEY=${TLS_KEY:-}
export NGINX_UPLOAD_MAX_BODY=${NGINX_UPLOAD_MAX_BODY:-21m}
# Only our variables: nginx's own ($host, $request_id, ...) stay as they are.
vars='${API_UPSTREAM} ${API_PROXY_PASS} ${NGINX_PORT} ${STATIC_ROOT} ${NGINX_HTML} ${TLS_PORT} ${TLS_CERT} ${TLS_KEY} ${NGINX_UPLOAD_MAX_BODY}'

cp "$here/nginx.conf" "$out/nginx.conf"
rm -f "$out"/conf.d/*
for t in "$here"/templates/*.template; do
  envsubst "$vars" <"$t" >"$out/conf.d/$(basename "$t" .template)"
done
envsubst "$vars" <"$here/upstream.conf.template" >"$out/conf.d/ferrostack-upstream.conf"
if [ -n "$TLS_CERT" ] && [ -n "$TLS_KEY" ]; then
  envsubst "$vars" <"$here/tls/ferrostack-tls.conf.template" >"$out/conf.d/ferrostack.tls.conf"
fi
