# Shared by the benchmarks (bench/*.sh), sourced after `set -euo pipefail`:
# the build directory, a temporary directory removed on exit together with
# the processes started, a free loopback port, atriumd started and logged in.
# shellcheck shell=bash

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() { echo "bench: $*" >&2; exit 1; }

# Processes that bench_cleanup stops, in this order.
bench_pids=()

bench_cleanup() {
  set +e
  local pid
  for pid in ${bench_pids[@]+"${bench_pids[@]}"}; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null
    fi
  done
  wait 2>/dev/null
  rm -rf "$tmp"
}

# bench_setup BUILD_DIR TMP_NAME TOOL...: sets build (relative to the
# repository unless absolute), atriumd and tmp, a new directory
# $TMPDIR/TMP_NAME.XXXXXX; checks that atriumd was built and the tools are
# there; arms bench_cleanup on exit.
bench_setup() {
  build="$1"
  case "$build" in /*) ;; *) build="$repo/$build" ;; esac
  atriumd="$build/atriumd"
  local name="$2" c
  shift 2
  [ -x "$atriumd" ] || die "no atriumd at $atriumd (run make build)"
  for c in "$@"; do command -v "$c" >/dev/null || die "$c is missing (scripts/deps.sh bench)"; done
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")"
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

# A free loopback port: bind to port 0 and read what the kernel gave.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null && return
  # Fallback without Python: probe random high ports for a listener.
  for _ in $(seq 1 50); do
    local p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free port found"
}

# Waits until URL answers 200, at most 10 s.
wait_200() {
  for _ in $(seq 1 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" || true)" = 200 ] && return 0
    sleep 0.05
  done
  return 1
}

# bench_start_atriumd URL [NAME=VALUE...]: starts atriumd on $tmp/atlas.xml
# with that environment added, its output in $tmp/atriumd.log, and waits
# until URL/healthz answers. Sets atrium_pid.
bench_start_atriumd() {
  local url="$1"
  shift
  env "$@" "$atriumd" -c "$tmp/atlas.xml" >"$tmp/atriumd.log" 2>&1 &
  atrium_pid=$!
  bench_pids+=("$atrium_pid")
  wait_200 "$url/healthz" || { cat "$tmp/atriumd.log" >&2; die "atriumd did not start"; }
}

# bench_login URL PASSWORD: logs in as admin; prints the session token.
bench_login() {
  local login token
  login="$(curl -sS --max-time 10 -H 'content-type: application/json' \
    --data "{\"user\":\"admin\",\"password\":\"$2\"}" "$1/api/v1/session")"
  token="$(printf '%s' "$login" | sed -n 's/.*"token" *: *"\([^"]*\)".*/\1/p')"
  [ -n "$token" ] || die "login failed: $login"
  printf '%s\n' "$token"
}

# What a recorded run says about itself: sets when, cpu, atrium_v,
# buildtype and commit for the run's Markdown header (after bench_setup).
# shellcheck disable=SC2034 # read by the scripts that source this file
bench_facts() {
  when="$(date -u '+%Y-%m-%d %H:%M UTC')"
  cpu="$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)"
  atrium_v="$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$build/meson-info/intro-projectinfo.json" 2>/dev/null | head -n1)"
  buildtype="$(python3 -c 'import json,sys; print(next(o["value"] for o in json.load(open(sys.argv[1])) if o["name"] == "buildtype"))' \
    "$build/meson-info/intro-buildoptions.json" 2>/dev/null || true)"
  commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
}
