#!/usr/bin/env bash
# Installs what the tests need on a Debian machine, only what is missing
# (so it is quick the second time): Debian's packages for the peers the
# tests start (snmpd, an SMTP server, nginx, Chromium, promtool, ...), and
# schemathesis (from PyPI, pinned) in a virtualenv outside the clone, for
# the OpenAPI conformance test. Run as root (CI and these machines are).
set -euo pipefail

# nginx: the proxy tests and deploy/local/up.sh; chromium: the docs pages
# under the proxy's Content-Security-Policy; prometheus: promtool checks the
# Prometheus configuration and alert rules; python3-aiosmtpd: the SMTP
# server of the email tests; snmpd, snmp: the SNMP agent and its tools;
# docker.io, docker-compose, debootstrap: the compose test (the engine and
# client of Debian's docker.io, Compose 1.29, the stand-in images' base).
APT_PACKAGES=(postgresql-client redis-tools snmpd snmp python3-aiosmtpd nginx prometheus
  gettext-base curl openssl chromium docker.io docker-compose debootstrap)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "install-test-deps: installing ${missing[*]}"
  # Keep the packages from starting their own daemons (nginx on port 80,
  # snmpd, prometheus): the tests start what they need on ports of their own.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
  trap - EXIT
fi

# The property-based OpenAPI tester; api/tests/api/conformance.rs finds it
# here (or where SCHEMATHESIS points).
SCHEMATHESIS_VERSION=4.32.5
VENV=/var/tmp/ferrostack-schemathesis
if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "install-test-deps: installing schemathesis $SCHEMATHESIS_VERSION in $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

command -v cargo-nextest >/dev/null || {
  echo "install-test-deps: installing cargo-nextest"
  cargo install --locked cargo-nextest
}
