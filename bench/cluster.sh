#!/usr/bin/env bash
# Benchmark of several nodes on one PostgreSQL: a throw-away PostgreSQL
# (initdb in the temporary directory, Unix socket only, as the user postgres
# when run as root) and three atriumd nodes on loopback. Measures
#   1. settings propagation: CLUSTER_CHANGES changes (PATCH through each node
#      in turn), time until every node's /healthz shows the new version;
#   2. GET /api/v1/settings with wrk, one node against three (the same total
#      connections, spread over the three), alternating 1, 3, 1, 3;
#   3. chat (bench/rtload, closed loop) on one node against three (one rtload
#      per node, the pairs split between them);
#   4. meeting host failover: CLUSTER_KILLS times kill -9 of the host, time
#      until another node's /healthz says it hosts.
# Prints a summary; appends it to docs/benchmarks.md unless BENCH_NO_RECORD=1.
#
# Usage: bench/cluster.sh [BUILD_DIR]
# Environment: CLUSTER_CHANGES (1000), CLUSTER_KILLS (50),
#   BENCH_DURATION (5s), BENCH_CONNECTIONS (32), BENCH_WARMUP (1s),
#   CLUSTER_PAIRS (600, chat pairs in all), CLUSTER_CHAT_S (5),
#   CLUSTER_SKIP ("" or any of: propagate get chat failover),
#   PG_BIN (/usr/lib/postgresql/15/bin), BENCH_NO_RECORD=1.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

changes="${CLUSTER_CHANGES:-1000}"
kills="${CLUSTER_KILLS:-50}"
duration="${BENCH_DURATION:-5s}"
conns="${BENCH_CONNECTIONS:-32}"
warmup="${BENCH_WARMUP:-1s}"
pairs="${CLUSTER_PAIRS:-600}"
chat_s="${CLUSTER_CHAT_S:-5}"
skip=" ${CLUSTER_SKIP:-} "
pg_bin="${PG_BIN:-/usr/lib/postgresql/15/bin}"
results="$repo/docs/benchmarks.md"
names=(a b c)

bench_setup "${1:-build}" atrium-cluster wrk curl node
for b in initdb pg_ctl psql; do [ -x "$pg_bin/$b" ] || die "no $pg_bin/$b (apt-get install postgresql-15)"; done
tool="$build/tests/tools/store-tool"
rtload="$build/bench/rtload/rtload"

# The nodes (started here or by bench/cluster.mjs) stop before PostgreSQL,
# PostgreSQL before the directory goes.
cluster_cleanup() {
  set +e
  if [ -f "$tmp/pids" ]; then
    while read -r p; do bench_pids+=("$p"); done <"$tmp/pids"
  fi
  local pids=(${bench_pids[@]+"${bench_pids[@]}"})
  bench_pids=()
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  [ -f "$tmp/pg/data/postmaster.pid" ] && as_pg "$pg_bin/pg_ctl" -D "$tmp/pg/data" -m immediate -w -t 20 stop >/dev/null 2>&1
  bench_cleanup
}
trap cluster_cleanup EXIT

# initdb refuses root.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# ---- PostgreSQL -----------------------------------------------------------------
chmod 711 "$tmp"
mkdir -p "$tmp/pg"
[ "$(id -u)" -eq 0 ] && chown postgres: "$tmp/pg"
(cd "$tmp/pg" && as_pg "$pg_bin/initdb" -D "$tmp/pg/data" -U postgres --auth=trust -E UTF8 --no-locale --no-sync \
  >"$tmp/pg/initdb.log" 2>&1) || { cat "$tmp/pg/initdb.log" >&2; die "initdb failed"; }
# Durable commits as in production (fsync on); loopback only: no TCP at all.
cat >>"$tmp/pg/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$tmp/pg'
port = 5432
shared_buffers = 64MB
max_connections = 100
EOF
(cd "$tmp/pg" && as_pg "$pg_bin/pg_ctl" -D "$tmp/pg/data" -l "$tmp/pg/server.log" -w -t 30 start >/dev/null) \
  || { cat "$tmp/pg/server.log" >&2; die "PostgreSQL did not start"; }
"$pg_bin/psql" -h "$tmp/pg" -U postgres -XAtqc 'CREATE DATABASE atrium' >/dev/null
conninfo="host=$tmp/pg port=5432 dbname=atrium user=postgres"
pg_v="$("$pg_bin/postgres" --version | awk '{print $3}')"

# ---- the nodes ------------------------------------------------------------------
admin_pass="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
declare -A port url pid
for n in "${names[@]}"; do
  port[$n]="$(free_port)"
  url[$n]="http://127.0.0.1:${port[$n]}"
  mkdir -p "$tmp/node-$n/data"
  cat >"$tmp/node-$n/atlas.xml" <<EOF
<?xml version="1.0"?>
<Atlas>
  <Listen address="127.0.0.1" port="${port[$n]}"/>
  <DataDirectory>$tmp/node-$n/data</DataDirectory>
  <Store backend="postgresql" conninfo="$conninfo"/>
  <Node name="$n"/>
  <IMDeleteAfterDays>90</IMDeleteAfterDays>
  <JournalDeleteAfterDays>365</JournalDeleteAfterDays>
  <!-- The load generators are one address: no per-client limit for them. -->
  <Limits connections="1000000" perAddress="1000000"/>
</Atlas>
EOF
done

ulimit -n "$(ulimit -Hn)"
# start_node NAME: as bench_start_atriumd, one log per node.
start_node() {
  ATRIUM_ADMIN_PASSWORD="$admin_pass" "$atriumd" -c "$tmp/node-$1/atlas.xml" >>"$tmp/node-$1/atriumd.log" 2>&1 &
  pid[$1]=$!
  # bench/cluster.mjs kills it: no "Killed" line from this shell.
  disown "${pid[$1]}"
  bench_pids+=("${pid[$1]}")
  wait_200 "${url[$1]}/healthz" || { cat "$tmp/node-$1/atriumd.log" >&2; die "node $1 did not start"; }
}
# The first node makes the schema, the admin and the secret key the others
# get a copy of (docs/operations/cluster.md).
start_node a
for n in b c; do cp "$tmp/node-a/data/secret.key" "$tmp/node-$n/data/"; done
start_node b
start_node c
token="$(bench_login "${url[a]}" "$admin_pass")"
auth="Authorization: Bearer $token"
for n in "${names[@]}"; do
  code="$(curl -sS --max-time 5 -H "$auth" -o /dev/null -w '%{http_code}' "${url[$n]}/api/v1/settings")"
  [ "$code" = 200 ] || die "node $n: GET /api/v1/settings answered $code with a session from node a"
done
a_threads="$(sed -n 's/.*listening on .* with \([0-9][0-9]*\) threads.*/\1/p' "$tmp/node-a/atriumd.log" | head -n1)"

nodes_json() {
  local sep="" n
  printf '['
  for n in "${names[@]}"; do
    printf '%s{"name":"%s","url":"%s","atlas":"%s","log":"%s","pid":%s}' "$sep" "$n" "${url[$n]}" \
      "$tmp/node-$n/atlas.xml" "$tmp/node-$n/atriumd.log" "${pid[$n]}"
    sep=,
  done
  printf ']\n'
}
nodes_json >"$tmp/nodes.json"
jget() { node -e 'const o = JSON.parse(require("fs").readFileSync(0, "utf8")); const v = process.argv[1].split(".").reduce((x, k) => x?.[k], o); console.log(typeof v === "number" ? (Number.isInteger(v) ? v : v.toFixed(1)) : JSON.stringify(v));' "$1"; }
others_pct() { # CPU of the whole machine over $1 seconds, in % of one core
  local a b
  a="$(awk '/^cpu / {print $2+$3+$4+$7+$8, $5+$6}' /proc/stat)"
  sleep "$1"
  b="$(awk '/^cpu / {print $2+$3+$4+$7+$8, $5+$6}' /proc/stat)"
  awk -v a="$a" -v b="$b" -v s="$1" 'BEGIN { split(a, x); split(b, y); printf "%.0f", (y[1] - x[1]) / s }'
}
idle_load="$(others_pct 2)"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
summary=()

# ---- 1. propagation -------------------------------------------------------------
if [[ "$skip" != *" propagate "* ]]; then
  echo "cluster: $changes settings changes..." >&2
  node "$here/cluster.mjs" propagate "$tmp/nodes.json" "$token" "$changes" >"$tmp/propagate.json"
  p="$tmp/propagate.json"
  prop_send="$(jget from_send.p50_ms <"$p") / $(jget from_send.p99_ms <"$p") / $(jget from_send.max_ms <"$p")"
  prop_ans="$(jget from_answer.p50_ms <"$p") / $(jget from_answer.p99_ms <"$p") / $(jget from_answer.max_ms <"$p")"
  prop_patch="$(jget patch.p50_ms <"$p") / $(jget patch.p99_ms <"$p") / $(jget patch.max_ms <"$p")"
  prop_ok="$(node -e 'const r = JSON.parse(require("fs").readFileSync(0, "utf8")); console.log(r.from_send.p99_ms < 250 && r.from_send.max_ms < 1000 ? "met" : "NOT met");' <"$p")"
  same="$(jget same_hash <"$p")"
  summary+=("| propagation, $changes changes, PATCH sent → applied on all 3 (p50 / p99 / max ms) | $prop_send | p99 < 250, max < 1000: $prop_ok |")
  summary+=("| propagation, PATCH answered → applied on all 3 | $prop_ans | |")
  summary+=("| the PATCH itself (commit included) | $prop_patch | same hash on every node after: $same |")
  slow_changes="$(node -e 'const r = JSON.parse(require("fs").readFileSync(0, "utf8")); const o = r.over_ms;
    const c = Object.entries(r.counters).map(([n, v]) => `${n} ${v.notifications}/${v.polls_behind}`).join(", ");
    const q = Object.entries(r.per_node_from_send).map(([n, v]) => `${n} ${v.p99_ms.toFixed(0)}`).join(", ");
    console.log(`${o[100]} / ${o[250]} / ${o[500]} | p99 per node (ms): ${q}; notifications heard / versions found by the 500 ms poll first: ${c}`);' <"$p")"
  summary+=("| changes slower than 100 / 250 / 500 ms (from send) | $slow_changes |")
fi

# ---- 2. GET /api/v1/settings, 1 node against 3 ----------------------------------
wrk_one() { # NAME THREADS CONNS URL
  wrk -t"$2" -c"$3" -d"$duration" --latency -H "$auth" "$4/api/v1/settings" >"$tmp/wrk-$1.txt"
  if grep -q 'Non-2xx or 3xx responses' "$tmp/wrk-$1.txt"; then cat "$tmp/wrk-$1.txt" >&2; die "$1 answered errors under load"; fi
}
rps() { awk '$1 == "Requests/sec:" { printf "%.0f", $2 }' "$1"; }
p99_ms() {
  awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
    if (u == "us") v /= 1000; else if (u == "s") v *= 1000; printf "%.2f", v }' "$1"
}
if [[ "$skip" != *" get "* ]]; then
  echo "cluster: GET /api/v1/settings, 1 node and 3 nodes..." >&2
  third=$(( (conns + 2) / 3 ))
  wrk -t2 -c"$conns" -d"$warmup" -H "$auth" "${url[a]}/api/v1/settings" >/dev/null
  one=() three=()
  for round in 1 2; do
    wrk_one "one$round" 2 "$conns" "${url[a]}"
    one+=("$(rps "$tmp/wrk-one$round.txt")/$(p99_ms "$tmp/wrk-one$round.txt")")
    jobs_=()
    for n in "${names[@]}"; do wrk_one "three$round$n" 1 "$third" "${url[$n]}" & jobs_+=($!); done
    wait "${jobs_[@]}"
    s=0 w=0
    for n in "${names[@]}"; do
      s=$((s + $(rps "$tmp/wrk-three$round$n.txt")))
      w="$(awk -v a="$w" -v b="$(p99_ms "$tmp/wrk-three$round$n.txt")" 'BEGIN { print (a > b ? a : b) }')"
    done
    three+=("$s/$w")
  done
  mean() { local a="${1%%/*}" b="${2%%/*}"; echo $(( (a + b) / 2 )); }
  worse() { awk -v a="${1#*/}" -v b="${2#*/}" 'BEGIN { printf "%.2f", (a > b ? a : b) }'; }
  get_one="$(mean "${one[@]}")"; get_three="$(mean "${three[@]}")"
  get_ratio="$(awk -v a="$get_three" -v b="$get_one" 'BEGIN { printf "%.2f", a / b }')"
  summary+=("| GET /api/v1/settings, 1 node: wrk -t2 -c$conns (req/s, worse p99 ms) | $get_one req/s, p99 $(worse "${one[@]}") ms | runs: ${one[*]} |")
  summary+=("| GET /api/v1/settings, 3 nodes: 3 × wrk -t1 -c$third, summed | $get_three req/s, p99 $(worse "${three[@]}") ms | runs: ${three[*]}; 3 nodes / 1 node = $get_ratio |")
fi

# ---- 3. chat, 1 node against 3 --------------------------------------------------
if [[ "$skip" != *" chat "* ]]; then
  if [ ! -x "$tool" ] || [ ! -x "$rtload" ]; then
    summary+=("| chat | not run | no $tool or $rtload (ninja -C build) |")
  else
    echo "cluster: chat, 1 node and 3 nodes..." >&2
    "$tool" "postgresql:$conninfo" users cu $((2 * pairs)) >"$tmp/creds.txt" || die "store-tool could not seed the chat users"
    per=$((pairs / 3))
    run_chat() { # NAME NODE FIRST PAIRS
      "$rtload" --proto atrium --url "ws://${url[$2]#http://}/client/v1/ws" --creds "$tmp/creds.txt" \
        --server-pid "${pid[$2]}" --timeout 30 --scenario chat --first "$3" --pairs "$4" --window 1 \
        --size 100 --duration "$chat_s" --warmup 1 --max-time 300 >"$tmp/chat-$1.json" || true
    }
    run_chat one a 0 "$pairs"
    chat_one="$(jget chat.messages_per_s <"$tmp/chat-one.json")"
    chat_one_lat="$(jget chat.latency.p50_ms <"$tmp/chat-one.json") / $(jget chat.latency.p99_ms <"$tmp/chat-one.json")"
    k=0
    jobs_=()
    for n in "${names[@]}"; do run_chat "three-$n" "$n" $((k * 2 * per)) "$per" & jobs_+=($!); k=$((k + 1)); done
    wait "${jobs_[@]}"
    chat_three=0 chat_three_lat=""
    for n in "${names[@]}"; do
      v="$(jget chat.messages_per_s <"$tmp/chat-three-$n.json")"
      chat_three="$(awk -v a="$chat_three" -v b="$v" 'BEGIN { printf "%.0f", a + b }')"
      chat_three_lat+="$n $(jget chat.latency.p50_ms <"$tmp/chat-three-$n.json")/$(jget chat.latency.p99_ms <"$tmp/chat-three-$n.json") "
    done
    summary+=("| chat, closed loop, $pairs pairs, 100 B, ${chat_s} s, 1 node (msg/s; p50 / p99 ms) | $chat_one msg/s; $chat_one_lat | rtload on node a |")
    summary+=("| chat, 3 nodes: one rtload per node, $per pairs each, summed | $chat_three msg/s; ${chat_three_lat% } | both users of a pair on the same node |")
  fi
fi

# ---- 4. failover ----------------------------------------------------------------
if [[ "$skip" != *" failover "* ]]; then
  echo "cluster: $kills kill -9 of the meeting host..." >&2
  : >>"$tmp/pids"
  node "$here/cluster.mjs" failover "$tmp/nodes.json" "$kills" "$atriumd" "$tmp/pids" >"$tmp/failover.json"
  f="$tmp/failover.json"
  fo="$(jget failover.p50_ms <"$f") / $(jget failover.p99_ms <"$f") / $(jget failover.max_ms <"$f")"
  fo_ok="$(node -e 'const r = JSON.parse(require("fs").readFileSync(0, "utf8")); console.log(r.failover.max_ms <= 2000 ? "met" : "NOT met");' <"$f")"
  summary+=("| meeting host failover, $kills × kill -9 of the host (p50 / p99 / max ms) | $fo | ≤ 2000: $fo_ok; epoch steps $(jget epoch_steps <"$f"), rounds with two hosts $(jget rounds_with_two_hosts <"$f") |")
fi

# ---- report ---------------------------------------------------------------------
when="$(date -u '+%Y-%m-%d %H:%M UTC')"
cpu="$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)"
commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
atrium_v="$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$build/meson-info/intro-projectinfo.json" 2>/dev/null | head -n1)"
buildtype="$(sed -n 's/.*"name": *"buildtype", *"value": *"\([^"]*\)".*/\1/p' "$build/meson-info/intro-buildoptions.json" 2>/dev/null | head -n1)"
block="### $when

- machine: $(nproc) CPUs, $cpu, Linux $(uname -r); the whole machine used ${idle_load} % of a core in the 2 s before the run (other work on it); load average $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after; nice $(nice)
- versions: atrium ${atrium_v:-?} (commit $commit, build \`$(basename "$build")\`${buildtype:+, $buildtype}), PostgreSQL $pg_v (Unix socket, fsync on), $(wrk -v 2>&1 | head -n1 | awk '{print "wrk", $2}')
- three nodes on 127.0.0.1 ($a_threads HTTP threads each), one database; every load generator on the same 2 CPUs

| measurement | result | note |
|---|---:|---|
$(printf '%s\n' ${summary[@]+"${summary[@]}"})"
printf '\n%s\n' "$block"
if [ "${BENCH_NO_RECORD:-0}" != 1 ]; then
  printf '\n%s\n' "$block" >>"$results"
  echo "bench: appended to ${results#"$repo"/}" >&2
fi
