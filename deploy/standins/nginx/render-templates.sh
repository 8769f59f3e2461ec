#!/bin/bash
# Renders every /etc/nginx/templates/**/*.template into
# NGINX_ENVSUBST_OUTPUT_DIR (default /etc/nginx/conf.d), the suffix dropped,
# with envsubst substituting only the variables whose names match the
# extended regular expression NGINX_ENVSUBST_FILTER (all defined ones when
# it is unset): nginx's own $variables stay as they are.
set -euo pipefail
templates=${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}
suffix=${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}
output=${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}
filter=${NGINX_ENVSUBST_FILTER:-}
[[ -d "$templates" ]] || exit 0
names=$(env | cut -d= -f1 | grep -E "${filter:-.}" || true)
defined=$(printf '${%s} ' $names)
find "$templates" -type f -name "*$suffix" -print0 | while IFS= read -r -d '' template; do
  relative=${template#"$templates"/}
  target="$output/${relative%"$suffix"}"
  mkdir -p "$(dirname "$target")"
  envsubst "$defined" <"$template" >"$target"
done
