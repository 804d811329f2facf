#!/usr/bin/env bash
# Benchmark of the web meeting's screen sharing (src/mod/meeting/share.c):
# atriumd in a network namespace; viewers each in a namespace of their own
# behind a `tbf` link of 2, 5, 20 and 50 Mbit/s, and one of 0.5 Mbit/s that
# joins later; a presenter (node) with the capture time in each frame,
# scrolling a page of text (windows A and B, before and after the late
# viewer joins), then showing "every frame new" (the page rotated
# horizontally, nothing a delta frame can reuse; window C); then 1, 2, 4, 8,
# 16 unshaped viewers of "every frame new" for atriumd's CPU per added
# viewer. Everything twice, in the same run: as the server is (each
# tier of a frame encoded once and shared) and with the benchmark's baseline
# ATRIUM_SCREEN_ENCODE=per-viewer (every viewer's frames encoded for it
# alone). The driver is bench/meeting/meeting-bench.mjs; what it measures is
# described there and in docs/benchmarks.md. Prints a Markdown block and
# appends it to docs/benchmarks.md unless BENCH_NO_RECORD=1. Needs root
# (network namespaces, tc).
#
# Usage: bench/meeting.sh [BUILD_DIR]        (default: build)
# Environment:
#   MEET_W=1280 MEET_H=720 MEET_FPS=30   the presenter's screen and frame rate
#   MEET_LINKS_MBIT="2 5 20 50 0.5"      the links; the last joins later
#   MEET_CPU_VIEWERS="1 2 4 8 16"        unshaped viewer counts for the CPU figure
#   MEET_MODES="shared per-viewer"       what runs
#   MEET_OUT=FILE                        keep the driver's JSON
#   MEET_NICE=-15                        priority of everything started here (0: unchanged)
#   BENCH_NO_RECORD=1                    print only
# The machine may run other work: compare the same-run ratio, not absolute CPU.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

bench_setup "${1:-build}" atrium-meeting node ip tc
[ "$(id -u)" = 0 ] || die "network namespaces need root"
read -r -a links_mbit <<<"${MEET_LINKS_MBIT:-2 5 20 50 0.5}"
[ "${#links_mbit[@]}" -ge 4 ] || die "MEET_LINKS_MBIT needs at least 4 links (the last joins later)"

tag=$$
ns_srv="amb-srv-$tag"
namespaces=("$ns_srv")
cleanup_net() {
  local ns pid
  for ns in "${namespaces[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  done
  ip link del "ambh$tag" 2>/dev/null || true
  for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap 'cleanup_net; bench_cleanup' EXIT

# The server's namespace: one unshaped veth to this one (the presenter and
# the unshaped viewers), one shaped veth per link viewer.
ip netns add "$ns_srv"
ip link add "ambh$tag" type veth peer name "ambs$tag" netns "$ns_srv"
ip addr add 10.78.0.1/24 dev "ambh$tag"
ip link set "ambh$tag" up
ip -n "$ns_srv" addr add 10.78.0.2/24 dev "ambs$tag"
ip -n "$ns_srv" link set "ambs$tag" up
ip -n "$ns_srv" link set lo up
links=""
i=0
for mbit in "${links_mbit[@]}"; do
  i=$((i + 1))
  ns="amb-v$i-$tag"
  namespaces+=("$ns")
  ip netns add "$ns"
  ip -n "$ns_srv" link add "amb${i}s$tag" type veth peer name "amb${i}v$tag" netns "$ns"
  ip -n "$ns_srv" addr add "10.78.$i.1/24" dev "amb${i}s$tag"
  ip -n "$ns_srv" link set "amb${i}s$tag" up
  ip -n "$ns" addr add "10.78.$i.2/24" dev "amb${i}v$tag"
  ip -n "$ns" link set "amb${i}v$tag" up
  ip -n "$ns" link set lo up
  kbit="$(awk -v m="$mbit" 'BEGIN { printf "%d", m * 1000 }')"
  # What the server sends the viewer: the rate, a queue of at most 100 ms,
  # a bucket of at least 16 KiB and of 2 ms at the rate (the timer's grain).
  burst="$(awk -v k="$kbit" 'BEGIN { b = k * 1000 / 8 * 0.002; printf "%d", b < 16384 ? 16384 : b }')"
  ip netns exec "$ns_srv" tc qdisc add dev "amb${i}s$tag" root tbf rate "${kbit}kbit" burst "$burst" latency 100ms
  links="$links $mbit:$ns:10.78.$i.1"
done

prio=()
nice_level="${MEET_NICE:--15}"
if [ "$nice_level" != 0 ] && nice -n "$nice_level" true 2>/dev/null; then prio=(nice -n "$nice_level"); fi
report="$tmp/report.md"
ATRIUMD="$atriumd" MEET_NS_SRV="$ns_srv" MEET_SRV_IP=10.78.0.2 MEET_PORT=8090 MEET_LINKS="$links" \
  MEET_TMP="$tmp" MEET_REPORT="$report" \
  timeout 900 ${prio[@]+"${prio[@]}"} node "$here/meeting/meeting-bench.mjs"
[ -s "$report" ] || die "the driver wrote no report"

bench_facts
tj="$(pkg-config --modversion libturbojpeg 2>/dev/null || true)"
block="$(cat <<EOF

### $when

- machine: $(nproc) CPUs, $cpu, Linux $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end (other work on the machine)${prio[0]+; everything of the benchmark at \`nice -n $nice_level\`}
- versions: atrium ${atrium_v:-?} (commit $commit, build \`$(basename "$build")\`${buildtype:+, $buildtype})${tj:+, libjpeg-turbo $tj}, $(node --version) presenter and viewers
$(cat "$report")
EOF
)"
printf '%s\n' "$block"
if [ "${BENCH_NO_RECORD:-0}" != 1 ]; then
  printf '%s\n' "$block" >>"$repo/docs/benchmarks.md"
  echo "bench: appended to docs/benchmarks.md"
fi
