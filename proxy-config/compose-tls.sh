#!/bin/sh
# Run by the nginx image's entrypoint (mounted into /docker-entrypoint.d in
# docker-compose.yml): when a certificate and its key are mounted at
# /etc/nginx/certs/tls.crt and tls.key, renders the HTTPS server (port 8443
# in the container) next to the others; otherwise nginx serves HTTP only.
set -eu
if [ -f /etc/nginx/certs/tls.crt ] && [ -f /etc/nginx/certs/tls.key ]; then
  TLS_PORT=8443 TLS_CERT=/etc/nginx/certs/tls.crt TLS_KEY=/etc/nginx/certs/tls.key \
    envsubst '${TLS_PORT} ${TLS_CERT} ${TLS_KEY}' \
    </etc/nginx/ferrostack-tls.conf.template >/etc/nginx/conf.d/ferrostack.tls.conf
  echo "ferrostack: HTTPS on 8443 with /etc/nginx/certs/tls.crt"
fi
