#!/usr/bin/env bash
# Installs the Debian packages a make target needs, and only those missing.
# Usage: scripts/deps.sh build|test|bench
# Why a script and not a README paragraph: CI and fresh machines start bare,
# and "make run" / "make test" promise to work there unaided.
set -euo pipefail

build_pkgs=(gcc make meson ninja-build pkg-config libmicrohttpd-dev libgnutls28-dev libuv1-dev
  libldap2-dev libkrb5-dev libwslay-dev
  libjansson-dev libsqlite3-dev libsodium-dev libcurl4-gnutls-dev libnghttp2-dev liburiparser-dev
  libidn2-dev libxml2-dev libsystemd-dev libpq-dev libturbojpeg0-dev libspng-dev
  libsofia-sip-ua-dev
  libcmocka-dev) # meson setup needs cmocka: tests/unit/meson.build requires it
test_pkgs=(clang libclang-rt-14-dev nodejs npm sqlite3 curl openssl
  squid nginx-light chromium fonts-dejavu-core slapd ldap-utils krb5-kdc krb5-admin-server krb5-user
  iproute2 procps tshark
  postgresql   # the store-pg unit test runs a throwaway server (scripts/with-postgres.sh)
  baresip dnsmasq-base sipsak  # federation: the partner's user, its SRV records, PUBLISH
  kamailio kamailio-presence-modules kamailio-tls-modules kamailio-sqlite-modules) # its presence server
bench_pkgs=(wrk nginx-light curl
  nodejs openssl squid nghttp2-client  # bench/push.sh: the stand-in, squid, h2load
  sqlite3 dnsmasq-base  # bench/federation.sh: (with nodejs, openssl) generator, test CA, partners' SRV
  kamailio kamailio-presence-modules kamailio-tls-modules kamailio-sqlite-modules) # its peer

case "${1:-build}" in
  build) want=("${build_pkgs[@]}") ;;
  test)  want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  bench) want=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "deps.sh: unknown group '$1' (build, test or bench)" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  # node/npm may come from elsewhere (the CI image ships them): accept the command.
  case "$p" in
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm)    command -v npm  >/dev/null 2>&1 && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
