#!/usr/bin/env bash
# Benchmark of the push sender: a real atriumd sends to the APNs stand-in of
# the integration tests (HTTP/2 over TLS, the ES256 provider token verified
# on every request), directly and through squid (CONNECT), and h2load sends
# the same requests to the same stand-in in the same run as the peer figure.
# The driver is bench/push/push-bench.mjs; what it measures is described
# there and in docs/benchmarks.md. Prints a Markdown block and appends it to
# docs/benchmarks.md unless BENCH_NO_RECORD=1.
#
# Usage: bench/push.sh [BUILD_DIR]        (default: build)
# Environment:
#   PUSH_N=20000          notifications in the burst (and requests of h2load)
#   PUSH_RATE=1000 PUSH_SECONDS=5
#                         the paced load: chats per second and for how long
#   PUSH_TIMEOUT=120      bound of every single wait (s)
#   PUSH_H2LOAD_STREAMS   h2load's -m (default: the streams the sender had open at once)
#   PUSH_SQUID=0          direct only (quicker, to try a change)
#   PUSH_PERF=FILE        perf record -g of atriumd during the direct burst
#   PUSH_ATRIUMD_LOG=FILE keep atriumd's output
#   BENCH_NO_RECORD=1     print only
# The figures depend heavily on what else the machine runs: compare the
# same-run ratio, not absolute rates.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

bench_setup "${1:-build}" atrium-push node h2load
[ -x /usr/sbin/squid ] || die "squid is missing (scripts/deps.sh bench)"
store_tool="$build/tests/tools/store-tool"
[ -x "$store_tool" ] || die "no store-tool at $store_tool (ninja -C ${build#"$repo"/})"

report="$tmp/report.md"
# Other work shares this machine: atriumd, the stand-in, squid and h2load
# all run at a higher priority than it when that is allowed (as root), the
# same for each, so that the ratio compares the two senders and not their
# luck with the scheduler.
prio=()
if nice -n -15 true 2>/dev/null; then prio=(nice -n -15); fi
ATRIUMD="$atriumd" ATRIUM_STORE_TOOL="$store_tool" PUSH_REPORT="$report" \
  timeout 900 ${prio[@]+"${prio[@]}"} node "$here/push/push-bench.mjs" >/dev/null
[ -s "$report" ] || die "the driver wrote no report"

bench_facts
block="$(cat <<EOF

### $when

- machine: $(nproc) CPUs, $cpu, Linux $(uname -r); other work on the machine in the "others" CPU figures${prio[0]+; everything of the benchmark at \`nice -n -15\`}
- versions: atrium ${atrium_v:-?} (commit $commit, build \`$(basename "$build")\`${buildtype:+, $buildtype}), $(node --version) stand-in
$(cat "$report")
EOF
)"
printf '%s\n' "$block"
if [ "${BENCH_NO_RECORD:-0}" != 1 ]; then
  printf '%s\n' "$block" >>"$repo/docs/benchmarks.md"
  echo "bench: appended to docs/benchmarks.md"
fi
