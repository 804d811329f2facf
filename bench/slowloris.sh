#!/usr/bin/env bash
# Benchmark: does one address trickling request heads slow the admin down?
# atriumd with its default <Limits>; the admin's GET /api/v1/settings from
# 127.0.0.1 is timed (p99), first with no attack, then while 1,000
# connections from 127.0.0.2 each send a header byte a second and never end
# their head (reopened whenever the server closes or refuses them), then
# with no attack again, all in the same run. Both a new connection per
# request and one kept-alive connection are measured.
#
# Usage: bench/slowloris.sh [BUILD_DIR]
# Environment: BENCH_ATTACKERS (1000), BENCH_SAMPLES (2000 per measure),
#              BENCH_SETTLE (5 s between starting the attack and measuring).
# Prints the figures; docs/benchmarks.md ("Slow clients") records them.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

attackers="${BENCH_ATTACKERS:-1000}"
samples="${BENCH_SAMPLES:-2000}"
settle="${BENCH_SETTLE:-5}"
here="$(cd "$(dirname "$0")" && pwd)"

bench_setup "${1:-build}" atrium-bench-slow node curl

port="$(free_port)"
url="http://127.0.0.1:$port"
mkdir -m 700 -p "$tmp/data"
cat >"$tmp/atlas.xml" <<XML
<?xml version="1.0"?>
<Atlas>
  <Listen address="127.0.0.1" port="$port"/>
  <DataDirectory>$tmp/data</DataDirectory>
  <IMDeleteAfterDays>90</IMDeleteAfterDays>
  <JournalDeleteAfterDays>365</JournalDeleteAfterDays>
</Atlas>
XML
admin_pass="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
bench_start_atriumd "$url" ATRIUM_ADMIN_PASSWORD="$admin_pass"
token="$(bench_login "$url" "$admin_pass")"
limits_line="$(grep -o 'at most .* for a request head' "$tmp/atriumd.log" | head -n1 || true)"

measure() { node "$here/slowloris/slowloris.mjs" measure "$port" "$token" "$samples" "$1"; }
field() { node -e 'const o = JSON.parse(process.argv[1]); console.log(o[process.argv[2]].toFixed ? o[process.argv[2]].toFixed(2) : o[process.argv[2]])' "$1" "$2"; }

echo "bench: no attack"
quiet_new1="$(measure new)"; quiet_ka1="$(measure keepalive)"
echo "  $quiet_new1"; echo "  $quiet_ka1"

# Long enough for the settle time and both measures (at most 60 s each).
node "$here/slowloris/slowloris.mjs" attack "$port" "$attackers" $((settle + 130)) 127.0.0.2 >"$tmp/attack.log" 2>&1 &
attack_pid=$!
bench_pids=("$attack_pid" "${bench_pids[@]}")
sleep "$settle"
load_attack="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench: attack from 127.0.0.2 ($attackers connections): $(tail -n1 "$tmp/attack.log")"
attack_new="$(measure new)"; attack_ka="$(measure keepalive)"
echo "  $attack_new"; echo "  $attack_ka"
attack_status="$(tail -n1 "$tmp/attack.log")"
# The server's view: connections open and refused by the limits.
metrics="$(curl -sS --max-time 5 -H "Authorization: Bearer $token" "$url/metrics" | grep -E '^atrium_http_(conn|header)' | tr '\n' ' ' || true)"
kill -TERM "$attack_pid" 2>/dev/null || true
wait "$attack_pid" 2>/dev/null || true
sleep 2

echo "bench: no attack again"
quiet_new2="$(measure new)"; quiet_ka2="$(measure keepalive)"
echo "  $quiet_new2"; echo "  $quiet_ka2"

worse() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (a > b ? a : b) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
for m in new ka; do
  q1="quiet_${m}1"; q2="quiet_${m}2"; a="attack_$m"
  qp="$(worse "$(field "${!q1}" p99)" "$(field "${!q2}" p99)")"
  ap="$(field "${!a}" p99)"
  printf -v "q_$m" '%s' "$qp"; printf -v "a_$m" '%s' "$ap"
  printf -v "r_$m" '%s' "$(ratio "$ap" "$qp")"
done
cat <<REPORT

machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), Linux $(uname -r); load average at the end $(cut -d' ' -f1-3 /proc/loadavg)
atriumd: commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown), build $(basename "$build"); $limits_line
load average when the attack was measured: $load_attack
attack at the end: $attack_status; server: $metrics
| measure | p99 no attack (worse of before/after) ms | p99 under attack ms | ratio (goal ≤ 2) |
|---|---:|---:|---:|
| new connection per request | $q_new | $a_new | $r_new |
| one kept-alive connection | $q_ka | $a_ka | $r_ka |
errors under attack: new $(field "$attack_new" errors), keep-alive $(field "$attack_ka" errors)
REPORT
