#!/usr/bin/env bash
# Benchmark of the real-time core: rtload's three scenarios (idle
# connections, 1:1 chat, presence fan-out) against a throw-away Prosody 0.12
# (XMPP over WebSocket) and, once it exists, against atriumd's client
# WebSocket, with the same counts and message sizes for both. Each scenario
# gets a freshly started server. Prints a table; the JSON reports stay in
# RT_OUT when that is set. "others CPU %" is what other processes on the
# machine used meanwhile: far from 0, the figures were measured on a shared
# machine and are low.
#
# Usage: bench/rt.sh [BUILD_DIR]
# Environment (defaults are the counts the project needs):
#   RT_IDLE=20000 RT_HOLD=30        idle connections and how long they are held (s)
#   RT_PAIRS=2000 RT_WINDOW=1 RT_SIZE=100 RT_DURATION=10 RT_WARMUP=2
#                                   chat pairs, messages in flight per sender,
#                                   text bytes, measured and warm-up seconds
#   RT_WATCHERS=5000 RT_CHANGES=20  fan-out watchers and presence changes
#   RT_TIMEOUT=30                   bound of every single wait (s)
#   RT_PEERS="prosody atrium"       which servers to run
#   RT_OUT=DIR                      keep the JSON reports in DIR
#   RTLOAD=PATH                     the rtload binary (default BUILD_DIR/bench/rtload/rtload,
#                                   else built here with gcc)
#   RT_RATE=R                       Atrium's open-loop chat ("chat-rate"): R messages/s
#                                   over the same pairs, paced; default 3 x what
#                                   Prosody reached in this run (the issue's goal)
# Atrium (defaults: BUILD_DIR/atriumd, and a data directory seeded here with
# tests/tools/store-tool, which writes users and client tokens through the
# store, so that 20,000 logins do not each cost an Argon2 hash):
#   ATRIUMD=PATH          the atriumd binary
#   ATRIUM_DATA=DIR       a data directory seeded with the users whose client
#                         tokens ATRIUM_CREDS holds (copied per scenario, never
#                         written to)
#   ATRIUM_CREDS=FILE     "<address> <client-token>" a line, at least RT_IDLE lines;
#                         lines 1..1+RT_WATCHERS are the fan-out user and watchers,
#                         the chat pairs start after them (as for Prosody)
#   ATRIUM_WS_PATH=/client/v1/ws
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

build="${1:-build}"
case "$build" in /*) ;; *) build="$repo/$build" ;; esac

idle="${RT_IDLE:-20000}"
hold="${RT_HOLD:-30}"
pairs="${RT_PAIRS:-2000}"
window="${RT_WINDOW:-1}"
size="${RT_SIZE:-100}"
duration="${RT_DURATION:-10}"
warmup="${RT_WARMUP:-2}"
watchers="${RT_WATCHERS:-5000}"
changes="${RT_CHANGES:-20}"
timeout="${RT_TIMEOUT:-30}"
peers="${RT_PEERS:-prosody atrium}"

for c in node curl python3 gcc; do command -v "$c" >/dev/null || die "$c is missing"; done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/atrium-rt.XXXXXX")"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# ---- the generator -------------------------------------------------------------
rtload="${RTLOAD:-$build/bench/rtload/rtload}"
if [ ! -x "$rtload" ]; then
  rtload="$tmp/rtload"
  gcc -std=gnu11 -O2 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -D_GNU_SOURCE \
    -o "$rtload" "$here"/rtload/*.c -luv -lwslay -ljansson -lm || die "rtload did not build"
fi
"$rtload" --self-test >"$tmp/selftest.txt" || { cat "$tmp/selftest.txt" >&2; die "rtload --self-test failed"; }

# One process holds every idle socket, and so does the server: neither can
# pass the hard RLIMIT_NOFILE of this shell (without CAP_SYS_RESOURCE it
# cannot be raised). Leave room for each side's own descriptors.
# atriumd keeps 512 of its own (RUNTIME_FD_RESERVE) for the store, logs and
# requests; both servers get the same count.
hard="$(ulimit -Hn)"
if [ "$hard" != unlimited ] && [ "$idle" -gt $((hard - 600)) ]; then
  echo "rt: the hard open-file limit is $hard: idle runs with $((hard - 600)) connections instead of $idle" >&2
  idle=$((hard - 600))
fi
fan_users=$((1 + watchers))
chat_first=$fan_users
need_users=$(( idle > chat_first + 2 * pairs ? idle : chat_first + 2 * pairs ))

results=()   # "peer scenario file"

# run_scenario PEER SCENARIO URL PID CREDS
run_scenario() {
  local peer="$1" sc="$2" url="$3" pid="$4" creds="$5" proto out
  proto=$([ "$peer" = prosody ] && echo xmpp || echo atrium)
  out="$tmp/$peer-$sc.json"
  local common=(--proto "$proto" --url "$url" --creds "$creds" --server-pid "$pid" --timeout "$timeout")
  case "$sc" in
    idle) "$rtload" "${common[@]}" --scenario idle --conns "$idle" --hold "$hold" --max-time 1800 >"$out" || true ;;
    chat) "$rtload" "${common[@]}" --scenario chat --first "$chat_first" --pairs "$pairs" --window "$window" \
            --size "$size" --duration "$duration" --warmup "$warmup" --max-time 900 >"$out" || true ;;
    chat-rate) "$rtload" "${common[@]}" --scenario chat --first "$chat_first" --pairs "$pairs" --rate "$rate" \
            --size "$size" --duration "$duration" --warmup "$warmup" --max-time 900 >"$out" || true ;;
    fanout) "$rtload" "${common[@]}" --scenario fanout --watchers "$watchers" --changes "$changes" \
              --max-time 900 >"$out" || true ;;
  esac
  results+=("$peer $sc $out")
}

# ---- Prosody ----------------------------------------------------------------------
prosody_dir=""
prosody_stop() {
  if [ -n "$prosody_dir" ]; then "$here/prosody/prosody-bench.sh" stop "$prosody_dir" || true; fi
}

run_prosody() {
  command -v prosody >/dev/null || { echo "rt: prosody is not installed, skipped" >&2; return; }
  prosody_dir="$tmp/prosody"
  local line port pid
  line="$("$here/prosody/prosody-bench.sh" setup "$prosody_dir" --users "$need_users" --watchers "$watchers")"
  port="$(sed -n 's/.*http_port=\([0-9]*\).*/\1/p' <<<"$line")"
  for sc in idle chat fanout; do
    pid="$("$here/prosody/prosody-bench.sh" start "$prosody_dir" 2>/dev/null | sed -n 's/^pid=//p')"
    [ -n "$pid" ] || die "prosody did not start (see $prosody_dir/prosody.out)"
    bench_pids+=("$pid")
    run_scenario prosody "$sc" "ws://127.0.0.1:$port/xmpp-websocket" "$pid" "$prosody_dir/creds.txt"
    prosody_stop
  done
}

# ---- Atrium -------------------------------------------------------------------------
# Starts atriumd on a copy of ATRIUM_DATA, as bench/run.sh does; sets a_url
# and atrium_pid. The lead wires ATRIUM_DATA/ATRIUM_CREDS from the seeding
# step; nothing here creates users or tokens.
atrium_start() {
  local port
  port="$(free_port)"
  rm -rf "$tmp/atrium-data"
  cp -a "$ATRIUM_DATA" "$tmp/atrium-data"
  cat >"$tmp/atlas.xml" <<EOF
<?xml version="1.0"?>
<Atlas>
  <Listen address="127.0.0.1" port="$port"/>
  <DataDirectory>$tmp/atrium-data</DataDirectory>
  <IMDeleteAfterDays>90</IMDeleteAfterDays>
  <JournalDeleteAfterDays>365</JournalDeleteAfterDays>
  <!-- The load generator is one address: no per-client limit for it. -->
  <Limits connections="1000000" perAddress="1000000"/>
</Atlas>
EOF
  atriumd="$ATRIUMD"
  a_url="http://127.0.0.1:$port"
  ulimit -n "$(ulimit -Hn)"
  bench_start_atriumd "$a_url"
}

atrium_stop() {
  kill -TERM "$atrium_pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$atrium_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$atrium_pid" 2>/dev/null || true
  wait "$atrium_pid" 2>/dev/null || true
}

# A data directory with need_users users u1..uN and their client tokens:
# atriumd makes the store once, store-tool fills it.
atrium_seed() {
  local tool="$build/tests/tools/store-tool"
  [ -x "$tool" ] || die "no store-tool at $tool (run make build)"
  ATRIUM_DATA="$tmp/atrium-seed"
  ATRIUM_CREDS="$tmp/atrium-creds.txt"
  mkdir -p "$ATRIUM_DATA"
  local keep_data="$ATRIUM_DATA"
  ATRIUM_DATA="$(mktemp -d "$tmp/empty.XXXXXX")"
  atrium_start
  atrium_stop
  rm -rf "$keep_data"
  mv "$tmp/atrium-data" "$keep_data"
  ATRIUM_DATA="$keep_data"
  "$tool" "$ATRIUM_DATA" users u "$need_users" >"$ATRIUM_CREDS" || die "store-tool could not seed the users"
}

run_atrium() {
  ATRIUMD="${ATRIUMD:-$build/atriumd}"
  [ -x "$ATRIUMD" ] || die "ATRIUMD=$ATRIUMD is not an executable (run make build)"
  if [ -z "${ATRIUM_DATA:-}" ] || [ -z "${ATRIUM_CREDS:-}" ]; then atrium_seed; fi
  [ -x "$ATRIUMD" ] || die "ATRIUMD=$ATRIUMD is not an executable"
  [ -d "$ATRIUM_DATA" ] || die "ATRIUM_DATA=$ATRIUM_DATA is not a directory"
  [ -f "$ATRIUM_CREDS" ] || die "ATRIUM_CREDS=$ATRIUM_CREDS does not exist"
  local have
  have="$(grep -cv '^\(#\|$\)' "$ATRIUM_CREDS")"
  [ "$have" -ge "$need_users" ] || die "ATRIUM_CREDS has $have users; the counts need $need_users"
  if [ -z "${RT_RATE:-}" ]; then
    local pj="$tmp/prosody-chat.json"
    rate="$(node -e 'try { const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(Math.round(3 * r.chat.messages_per_s)); } catch { console.log(0); }' "$pj")"
    [ "$rate" -gt 0 ] || rate=9000
  else
    rate="$RT_RATE"
  fi
  for sc in idle chat chat-rate fanout; do
    atrium_start
    run_scenario atrium "$sc" "ws://${a_url#http://}${ATRIUM_WS_PATH:-/client/v1/ws}" "$atrium_pid" "$ATRIUM_CREDS"
    atrium_stop
  done
}

for p in $peers; do
  case "$p" in
    prosody) run_prosody ;;
    atrium) run_atrium ;;
    *) die "RT_PEERS: unknown peer $p (prosody, atrium)" ;;
  esac
done
[ ${#results[@]} -gt 0 ] || die "no scenario ran"

if [ -n "${RT_OUT:-}" ]; then
  mkdir -p "$RT_OUT"
  for r in "${results[@]}"; do
    read -r peer sc file <<<"$r"
    cp "$file" "$RT_OUT/$peer-$sc.json"
  done
fi

# ---- the table ------------------------------------------------------------------------
printf '%s\n' "${results[@]}" | node --input-type=module -e '
import { readFileSync } from "node:fs";
const rows = readFileSync(0, "utf8").trim().split("\n").map((l) => l.split(" "));
const f = (v, d = 0) => (typeof v === "number" ? v.toFixed(d) : "-");
const ms = (s, k) => (s && typeof s[k] === "number" ? s[k].toFixed(1) : "-");
const out = [["server", "scenario", "connected", "result", "latency p50 / p99 / max ms", "gen CPU %", "server CPU %", "others CPU %", "note"]];
for (const [peer, sc, file] of rows) {
  let r;
  try { r = JSON.parse(readFileSync(file, "utf8")); } catch { out.push([peer, sc, "-", "no report", "", "", "", "", ""]); continue; }
  const c = r.connect || {};
  const conn = `${c.established ?? "-"}/${c.requested ?? "-"}`;
  let res = "", lat = "", cpu = {}, note = r.aborted ? `aborted: ${r.aborted}` : "";
  if (sc === "idle") {
    const i = r.idle || {};
    res = `${i.held} held, ${f(i.server_rss_bytes_per_conn / 1024, 1)} KiB RSS/conn`;
    lat = `connect ${f(c.per_s)}/s`;
    cpu = r.cpu_total || {};
    if (!note) note = `RSS ${f(i.server_rss_kib_before / 1024)} -> ${f(i.server_rss_kib_after_hold / 1024)} MiB`;
  } else if (sc === "chat" || sc === "chat-rate") {
    const ch = r.chat || {};
    res = `${f(ch.messages_per_s)} msg/s (${ch.pairs_active} pairs, ${ch.size} B${ch.offered_rate ? `, offered ${f(ch.offered_rate)}/s` : ""})`;
    lat = `${ms(ch.latency, "p50_ms")} / ${ms(ch.latency, "p99_ms")} / ${ms(ch.latency, "max_ms")}`;
    if (ch.ok_latency) lat += ` (ok p50 ${ms(ch.ok_latency, "p50_ms")})`;
    cpu = r.cpu_window || {};
    if (!note) note = `${f(cpu.server_us_per_event)} us server CPU/msg, lost ${ch.lost}`;
  } else {
    const fo = r.fanout || {};
    res = `${f(fo.deliveries_per_s)} deliveries/s, ${fo.changes_complete}/${fo.changes} complete`;
    lat = `last watcher ${ms(fo.last_watcher, "p50_ms")} / - / ${ms(fo.last_watcher, "max_ms")}`;
    cpu = r.cpu_changes || {};
    if (!note) note = `${fo.watchers_active} watchers, missing ${fo.missing}`;
  }
  out.push([peer, sc, conn, res, lat, f(cpu.generator_pct_core), f(cpu.server_pct_core), f(cpu.others_pct_core), note]);
}
const w = out[0].map((_, i) => Math.max(...out.map((r) => String(r[i]).length)));
for (const r of out) console.log(r.map((v, i) => String(v).padEnd(w[i])).join("  ").trimEnd());
'
