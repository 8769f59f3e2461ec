#!/usr/bin/env bash
# Builds the stand-ins for the official images the project names (see
# README.md: only because no registry is reachable here). Idempotent: an
# image whose recipe has not changed is kept. Needs Docker (the engine of
# Debian's docker.io package), debootstrap, and the machine's Rust 1.95.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work=/var/tmp/ferrostack-standins
docker=${DOCKER:-/usr/bin/docker}
mkdir -p "$work"

# The hash of a recipe: its files, and what else goes into the image.
recipe_hash() { # dir [extra...]
  local dir=$1; shift
  { find "$dir" -type f -print0 | sort -z | xargs -0 sha256sum; printf '%s\n' "$@"; } | sha256sum | cut -c1-16
}

current() { # tag hash: true if the image exists with this recipe
  [[ "$("$docker" image inspect "$1" --format '{{index .Config.Labels "ferrostack.standin"}}' 2>/dev/null)" == "$2" ]]
}

build() { # tag dir context [extra hash input]
  local tag=$1 dir=$2 context=$3 extra=${4:-}
  local hash; hash=$(recipe_hash "$dir" "$extra" "$(base_id)")
  if current "$tag" "$hash"; then
    echo "standins: $tag is current"
    return
  fi
  echo "standins: building $tag"
  DOCKER_BUILDKIT=1 "$docker" build -q --label "ferrostack.standin=$hash" -t "$tag" \
    -f "$dir/Dockerfile" "$context" >/dev/null
}

base_id() { "$docker" image inspect debian:bookworm-slim --format '{{.Id}}' 2>/dev/null || true; }

# debian:bookworm-slim: a minimal debootstrap of bookworm, with the host's
# CA bundle (HTTPS from containers goes through the host's authority here).
base_hash=$(recipe_hash "$here/README.md" "$(sha256sum /etc/ssl/certs/ca-certificates.crt)")
if ! current debian:bookworm-slim "$base_hash"; then
  echo "standins: debootstrap of bookworm"
  rm -rf "$work/rootfs"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$work/rootfs" \
    http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  cat >"$work/rootfs/etc/apt/sources.list" <<'LIST'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
LIST
  cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/usr/local/share/ca-certificates/host-bundle.crt"
  cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  tar -C "$work/rootfs" -c . | "$docker" import \
    --change 'CMD ["bash"]' --change "LABEL ferrostack.standin=$base_hash" \
    - debian:bookworm-slim >/dev/null
  rm -rf "$work/rootfs"
else
  echo "standins: debian:bookworm-slim is current"
fi

build postgres:16 "$here/postgres" "$here/postgres"
build redis:7 "$here/redis" "$here/redis"
build rabbitmq:3-management "$here/rabbitmq" "$here/rabbitmq"
build nginx:1.27 "$here/nginx" "$here/nginx"

# rust:1.95-slim-bookworm: the machine's own toolchain, without its docs.
toolchain=$(rustc +1.95.0 --print sysroot 2>/dev/null || rustc --print sysroot)
version=$("$toolchain/bin/rustc" --version)
case "$version" in
  "rustc 1.95."*) ;;
  *) echo "standins: the machine's rustc is $version, not 1.95" >&2; exit 1 ;;
esac
hash=$(recipe_hash "$here/rust" "$version" "$(base_id)")
if current rust:1.95-slim-bookworm "$hash"; then
  echo "standins: rust:1.95-slim-bookworm is current"
else
  echo "standins: building rust:1.95-slim-bookworm from $toolchain"
  ctx="$work/rust-context"
  rm -rf "$ctx"
  mkdir -p "$ctx/toolchain"
  cp -a "$toolchain/bin" "$toolchain/lib" "$ctx/toolchain/"
  cp "$here/rust/Dockerfile" "$ctx/"
  DOCKER_BUILDKIT=1 "$docker" build -q --label "ferrostack.standin=$hash" \
    -t rust:1.95-slim-bookworm "$ctx" >/dev/null
  rm -rf "$ctx"
fi
