#!/usr/bin/env bash
# Runs every libFuzzer target over its seed corpus for a bounded time.
# Usage: scripts/run-fuzzers.sh BUILD_DIR SECONDS
# New inputs go to a scratch directory, so the committed corpus only changes
# when someone adds a reproducer on purpose.
set -euo pipefail
build=$(cd "$1" && pwd) seconds=${2:-15}
top=$(cd "$(dirname "$0")/.." && pwd)
fails=0 ran=0
for exe in "$build"/tests/fuzz/fuzz_*; do
  [ -f "$exe" ] && [ -x "$exe" ] || continue
  name=$(basename "$exe")
  ran=$((ran + 1))
  corpus="$top/tests/fuzz/corpus/$name"
  scratch=$(mktemp -d)
  echo "fuzz: $name for ${seconds}s"
  if ! (cd "$scratch" && ATRIUM_TEST_TMPDIR="$scratch" "$exe" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=4096 -print_final_stats=0 "$scratch" $( [ -d "$corpus" ] && echo "$corpus") \
        >"$scratch/log" 2>&1); then
    echo "fuzz: $name FAILED; last lines:"; tail -n 40 "$scratch/log"
    mkdir -p "$top/tests/fuzz/crashes"; cp "$scratch"/crash-* "$scratch"/leak-* "$top/tests/fuzz/crashes/" 2>/dev/null || true
    fails=$((fails + 1))
  else
    grep -E '^#[0-9]+.*DONE' "$scratch/log" | tail -n 1 || true
  fi
  rm -rf "$scratch"
done
# An empty or wrong build directory must not pass as "no crashes".
[ "$ran" -gt 0 ] || { echo "fuzz: no fuzz_* targets in $build/tests/fuzz (configure it with -Dfuzz=true)"; exit 1; }
[ "$fails" -eq 0 ] || { echo "fuzz: $fails target(s) failed"; exit 1; }
