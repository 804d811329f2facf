#!/usr/bin/env bash
# Benchmark: GET /api/v1/settings on atriumd against nginx serving the same
# bytes as a static file, both on loopback, measured by wrk with the same
# threads, connections, duration and headers in the same run.
#
# Usage: bench/run.sh [BUILD_DIR]     (make bench)
# Environment: BENCH_DURATION (default 10s), BENCH_CONNECTIONS (32),
#              BENCH_THREADS (2), BENCH_WARMUP (2s), BENCH_NO_RECORD=1 to
#              print the result without appending it to docs/benchmarks.md.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

duration="${BENCH_DURATION:-10s}"
conns="${BENCH_CONNECTIONS:-32}"
wthreads="${BENCH_THREADS:-2}"
warmup="${BENCH_WARMUP:-2s}"
results="$repo/docs/benchmarks.md"

bench_setup "${1:-build}" atrium-bench wrk nginx curl
nginx_bin="$(command -v nginx)"

# ---- atriumd ---------------------------------------------------------------
a_port="$(free_port)"
mkdir -p "$tmp/data"
cat >"$tmp/atlas.xml" <<EOF
<?xml version="1.0"?>
<Atlas>
  <Listen address="127.0.0.1" port="$a_port"/>
  <DataDirectory>$tmp/data</DataDirectory>
  <IMDeleteAfterDays>90</IMDeleteAfterDays>
  <JournalDeleteAfterDays>365</JournalDeleteAfterDays>
  <!-- The load generator is one address: no per-client limit for it. -->
  <Limits connections="1000000" perAddress="1000000"/>
</Atlas>
EOF
admin_pass="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
a_url="http://127.0.0.1:$a_port"
bench_start_atriumd "$a_url" ATRIUM_ADMIN_PASSWORD="$admin_pass"
token="$(bench_login "$a_url" "$admin_pass")"
auth="Authorization: Bearer $token"

mkdir -p "$tmp/www/api/v1"
code="$(curl -sS --max-time 10 -H "$auth" -o "$tmp/www/api/v1/settings" -w '%{http_code}' "$a_url/api/v1/settings")"
[ "$code" = 200 ] || die "GET /api/v1/settings answered $code"
body_bytes="$(wc -c <"$tmp/www/api/v1/settings")"

# atriumd's HTTP thread pool size, from its start-up line; nginx gets as many
# worker processes so that both have the same number of serving threads.
a_threads="$(sed -n 's/.*listening on .* with \([0-9][0-9]*\) threads.*/\1/p' "$tmp/atriumd.log" | head -n1)"
[ -n "$a_threads" ] || a_threads=2

# ---- nginx -------------------------------------------------------------------
n_port="$(free_port)"
while [ "$n_port" = "$a_port" ]; do n_port="$(free_port)"; done
chmod 755 "$tmp" "$tmp/www" "$tmp/www/api" "$tmp/www/api/v1"
chmod 644 "$tmp/www/api/v1/settings"
mkdir -p "$tmp/nginx"
user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root;"
cat >"$tmp/nginx/nginx.conf" <<EOF
$user_line
worker_processes $a_threads;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  keepalive_requests 1000000;
  # The strongest static-file setup: descriptor cache, sendfile.
  open_file_cache max=16 inactive=60s;
  open_file_cache_valid 60s;
  sendfile on;
  tcp_nopush on;
  server {
    listen 127.0.0.1:$n_port;
    root $tmp/www;
    location = /api/v1/settings { default_type application/json; }
  }
}
EOF
"$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' 2>"$tmp/nginx/stderr.log" &
bench_pids+=("$!")
n_url="http://127.0.0.1:$n_port"
wait_200 "$n_url/api/v1/settings" || { cat "$tmp/nginx/stderr.log" "$tmp/nginx/error.log" >&2 2>/dev/null; die "nginx did not start"; }

# Same bytes from both.
curl -sS --max-time 10 -H "$auth" -o "$tmp/a.json" "$a_url/api/v1/settings"
curl -sS --max-time 10 -H "$auth" -o "$tmp/n.json" "$n_url/api/v1/settings"
cmp -s "$tmp/a.json" "$tmp/n.json" || die "atriumd and nginx do not serve the same bytes"

# ---- wrk -----------------------------------------------------------------------
# run_wrk NAME URL: warm-up, then the measured run into $tmp/wrk-NAME.txt.
run_wrk() {
  wrk -t"$wthreads" -c"$conns" -d"$warmup" -H "$auth" "$2" >/dev/null
  wrk -t"$wthreads" -c"$conns" -d"$duration" --latency -H "$auth" "$2" >"$tmp/wrk-$1.txt"
  if grep -q 'Non-2xx or 3xx responses' "$tmp/wrk-$1.txt"; then
    cat "$tmp/wrk-$1.txt" >&2
    die "$1 answered errors under load"
  fi
  if grep -q 'Socket errors' "$tmp/wrk-$1.txt"; then
    echo "bench: $1: $(grep 'Socket errors' "$tmp/wrk-$1.txt" | sed 's/^ *//')" >&2
  fi
}
# p99 in milliseconds from wrk's --latency distribution.
p99_ms() {
  awk '$1 == "99%" {
    v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
    if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000;
    printf "%.2f", v }' "$1"
}
rps() { awk '$1 == "Requests/sec:" { printf "%.0f", $2 }' "$1"; }

# Alternate the two servers (nginx, atrium, nginx, atrium) so that a drift
# of a shared or throttled machine affects both alike; report the means and
# the worse p99 of each.
run_wrk nginx1 "$n_url/api/v1/settings"
run_wrk atrium1 "$a_url/api/v1/settings"
run_wrk nginx2 "$n_url/api/v1/settings"
run_wrk atrium2 "$a_url/api/v1/settings"

for r in nginx1 atrium1 nginx2 atrium2; do
  v="$(rps "$tmp/wrk-$r.txt")"; p="$(p99_ms "$tmp/wrk-$r.txt")"
  [ -n "$v" ] && [ -n "$p" ] || die "could not parse wrk output for $r"
  printf -v "rps_$r" '%s' "$v"; printf -v "p99_$r" '%s' "$p"
done
a_rps=$(( (rps_atrium1 + rps_atrium2) / 2 ))
n_rps=$(( (rps_nginx1 + rps_nginx2) / 2 ))
worse() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (a > b ? a : b) }'; }
a_p99="$(worse "$p99_atrium1" "$p99_atrium2")"
n_p99="$(worse "$p99_nginx1" "$p99_nginx2")"
ratio="$(awk -v a="$a_rps" -v n="$n_rps" 'BEGIN { printf "%.2f", a / n }')"
runs="nginx $rps_nginx1, atrium $rps_atrium1, nginx $rps_nginx2, atrium $rps_atrium2 req/s (p99 $p99_nginx1, $p99_atrium1, $p99_nginx2, $p99_atrium2 ms)"

# ---- report ----------------------------------------------------------------------
when="$(date -u '+%Y-%m-%d %H:%M UTC')"
cpu="$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)"
kernel="$(uname -r)"
nginx_v="$("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //')"
wrk_v="$( { wrk -v 2>&1 || true; } | head -n1 | awk '{print $2}')"
atrium_v="$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$build/meson-info/intro-projectinfo.json" 2>/dev/null | head -n1)"
commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
row="| $when | $a_rps | $n_rps | $ratio | $a_p99 | $n_p99 |"

cat <<EOF

GET /api/v1/settings, $body_bytes bytes, wrk -t$wthreads -c$conns -d$duration, $(nproc) CPUs ($cpu)
atriumd: $a_threads HTTP threads; nginx: $a_threads worker processes
runs in order: $runs

| date | atrium req/s | nginx req/s | atrium/nginx | atrium p99 ms | nginx p99 ms |
|---|---:|---:|---:|---:|---:|
$row
EOF

if [ "${BENCH_NO_RECORD:-0}" != 1 ]; then
  cat >>"$results" <<EOF

### $when

- machine: $(nproc) CPUs, $cpu, Linux $kernel
- versions: atrium ${atrium_v:-?} (commit $commit, build \`$(basename "$build")\`), $nginx_v, wrk $wrk_v
- load: wrk -t$wthreads -c$conns -d$duration --latency (after a $warmup warm-up), same Authorization header for both
- body: $body_bytes bytes; atriumd $a_threads HTTP threads, nginx $a_threads worker processes
- runs in order: $runs

| date | atrium req/s | nginx req/s | atrium/nginx | atrium p99 ms | nginx p99 ms |
|---|---:|---:|---:|---:|---:|
$row
EOF
  echo "bench: appended to ${results#"$repo"/}"
fi
