#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL cluster, then removes it.
#
#   scripts/with-postgres.sh COMMAND [ARGS...]
#
# The cluster lives in a new directory under /tmp (initdb runs as the
# `postgres` user when this script runs as root: initdb refuses root), listens
# on a Unix socket in that directory only (listen_addresses = ''), trusts local
# connections and runs with fsync off: it holds test data and nothing else.
# COMMAND runs with ATRIUM_TEST_PG set to the libpq connection string of a
# fresh database "atrium"; its exit status is this script's. The server is
# stopped and the directory removed however COMMAND ends (trap), so two runs
# side by side never share anything.
#
# Exit 77 (a skipped test for meson) when the PostgreSQL server binaries are
# not installed: PG_BIN (default /usr/lib/postgresql/15/bin) names where.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
if [ $# -eq 0 ]; then
  echo "usage: $0 COMMAND [ARGS...]" >&2
  exit 2
fi
for b in initdb pg_ctl postgres psql; do
  if [ ! -x "$PG_BIN/$b" ]; then
    echo "with-postgres.sh: $PG_BIN/$b is missing; install the Debian package postgresql" \
         "(or set PG_BIN to the directory of initdb and pg_ctl)" >&2
    exit 77
  fi
done

as_owner=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || {
    echo "with-postgres.sh: running as root needs the user postgres to run initdb;" \
         "install the Debian package postgresql or run as an ordinary user" >&2
    exit 77
  }
  as_owner=(runuser -u postgres --)
fi

# /tmp and a short name: the socket path must fit in sun_path (107 bytes).
base=$(mktemp -d /tmp/atrium-pg.XXXXXX)
data="$base/data"
log="$base/server.log"

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -f "$data/postmaster.pid" ]; then
    (cd "$base" && "${as_owner[@]}" "$PG_BIN/pg_ctl" -D "$data" -m immediate -w -t 30 stop \
       >/dev/null 2>&1) || {
      pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
      [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    }
  fi
  rm -rf "$base"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

chmod 0700 "$base"
[ ${#as_owner[@]} -eq 0 ] || chown postgres: "$base"

# cd: initdb and pg_ctl look at the working directory, which the postgres
# user may not be allowed to enter (root's home).
if ! (cd "$base" && "${as_owner[@]}" "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust \
        -E UTF8 --no-locale --no-sync >"$base/initdb.log" 2>&1); then
  echo "with-postgres.sh: initdb failed:" >&2
  tail -n 20 "$base/initdb.log" >&2
  exit 1
fi
cat >>"$data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$base'
port = 5432
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 16MB
max_connections = 40
CONF
if ! (cd "$base" && "${as_owner[@]}" "$PG_BIN/pg_ctl" -D "$data" -l "$log" -w -t 30 start \
        >/dev/null 2>&1); then
  echo "with-postgres.sh: the server did not start:" >&2
  tail -n 20 "$log" >&2 || true
  exit 1
fi
"$PG_BIN/psql" -h "$base" -U postgres -d postgres -Xqtc "CREATE DATABASE atrium" >/dev/null

export ATRIUM_TEST_PG="host=$base port=5432 dbname=atrium user=postgres"
set +e
"$@"
status=$?
set -e
exit "$status"
