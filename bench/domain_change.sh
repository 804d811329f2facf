#!/usr/bin/env bash
# Benchmark (not a test): the domain change and client login lookups with a
# large directory. Generates BENCH_USERS users and as many federation
# subscriptions through the real import API, then measures end to end with
# curl: POST /api/v1/domain/change as a dry run and applied; and with wrk:
#   * POST /client/v1/login  - a full login: user lookup + Argon2id + token
#                              write (Argon2id dominates on purpose),
#   * GET  /client/v1/me     - the lookup alone: token hash -> user.
#
# Usage: bench/domain_change.sh [BUILD_DIR]
# Environment: BENCH_USERS (default 1000000), BENCH_CHUNK (200000),
#              BENCH_MOBILE (20 users with a mobile login), BENCH_DURATION (10s),
#              BENCH_CONNECTIONS (32), BENCH_THREADS (4).
# Prints the figures; docs/benchmarks.md ("Domain change") records them.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

users="${BENCH_USERS:-1000000}"
chunk="${BENCH_CHUNK:-200000}"
mobile="${BENCH_MOBILE:-20}"
duration="${BENCH_DURATION:-10s}"
conns="${BENCH_CONNECTIONS:-32}"
wthreads="${BENCH_THREADS:-4}"
password="bench-password-1"

bench_setup "${1:-build}" atrium-bench-dc wrk curl awk python3

port="$(free_port)"
url="http://127.0.0.1:$port"
mkdir -p "$tmp/data"
cat >"$tmp/atlas.xml" <<EOF
<?xml version="1.0"?><Atlas><Listen address="127.0.0.1" port="$port"/>
<DataDirectory>$tmp/data</DataDirectory><Domain>old.example</Domain></Atlas>
EOF
bench_start_atriumd "$url" ATRIUM_ADMIN_PASSWORD=bench-admin-pass ATRIUM_LOG_LEVEL=warning
token="$(bench_login "$url" bench-admin-pass)"
auth=(-H "Authorization: Bearer $token")

ms() { python3 -c "print(round($1 * 1000, 1))"; }
post_file() { # path content-type file -> prints seconds; fails on a non-2xx answer
  curl -fsS -o "$tmp/answer" -w '%{time_total}' "${auth[@]}" -H "Content-Type: $2" \
    --data-binary "@$3" "$url$1" || die "POST $1 failed: $(cat "$tmp/answer" 2>/dev/null)"
}

echo "bench: generating and importing $users users and $users subscriptions (chunks of $chunk)"
t_users=0 t_subs=0
for ((s = 0; s < users; s += chunk)); do
  e=$((s + chunk < users ? s + chunk : users))
  awk -v s="$s" -v e="$e" 'BEGIN { print "name,display_name"; for (i = s; i < e; i++) printf "u%07d,User %d\n", i, i }' >"$tmp/u.csv"
  t=$(post_file /api/v1/users/import text/csv "$tmp/u.csv")
  t_users=$(python3 -c "print($t_users + $t)")
  awk -v s="$s" -v e="$e" 'BEGIN { print "user,remote,state"; for (i = s; i < e; i++) printf "u%07d,c%d@partner%d.example,active\n", i, i, i % 97 }' >"$tmp/s.csv"
  t=$(post_file /api/v1/federation/subscriptions/import text/csv "$tmp/s.csv")
  t_subs=$(python3 -c "print($t_subs + $t)")
done
echo "bench: imported users in $(ms "$t_users") ms, subscriptions in $(ms "$t_subs") ms"

# Users with a password, each logged in from a phone: mobile registrations.
for ((i = 0; i < mobile; i++)); do
  curl -fsS -o /dev/null "${auth[@]}" -H 'Content-Type: application/json' \
    -d "{\"name\":\"m$i\",\"password\":\"$password\"}" "$url/api/v1/users"
  curl -fsS -o /dev/null -H 'Content-Type: application/json' \
    -d "{\"login\":\"m$i@old.example\",\"password\":\"$password\",\"device\":{\"id\":\"phone-$i\",\"platform\":\"android\"}}" \
    "$url/client/v1/login"
done
curl -fsS -o /dev/null "${auth[@]}" -X PATCH -H 'Content-Type: application/json' \
  -d '{"federation.fqdn":"sip.old.example"}' "$url/api/v1/settings"

change() { # domain dry_run -> prints seconds, keeps the answer
  printf '{"domain":"%s","dry_run":%s}' "$1" "$2" >"$tmp/change.json"
  post_file /api/v1/domain/change application/json "$tmp/change.json"
}
dry=()
for _ in 1 2 3; do dry+=("$(ms "$(change new.example true)")"); done
preview="$(cat "$tmp/answer")"
apply1="$(ms "$(change new.example false)")"
result="$(cat "$tmp/answer")"
python3 - "$preview" "$result" <<'EOF' || die "the preview's numbers differ from what happened"
import json, sys
p, r = json.loads(sys.argv[1]), json.loads(sys.argv[2])
p["dry_run"] = False
print("bench: preview users=%d mobile_devices=%d subscriptions=%d fqdn %s -> %s" % (
    p["users"], p["mobile_devices"], p["subscriptions"], p["federation_fqdn"]["old"],
    p["federation_fqdn"]["new"]))
sys.exit(0 if p == r else 1)
EOF
apply2="$(ms "$(change third.example false)")"
apply3="$(ms "$(change fourth.example false)")"
echo "bench: dry run ${dry[*]} ms; apply ${apply1} ms (then ${apply2}, ${apply3} ms)"

t_list="$(curl -fsS -o /dev/null -w '%{time_total}' "${auth[@]}" "$url/api/v1/users?q=u0999&limit=50")"
echo "bench: GET /api/v1/users?q=... (substring over all users): $(ms "$t_list") ms"

# Login lookups. m0 logs in again under the current domain for /me's token.
me_token="$(curl -fsS -H 'Content-Type: application/json' \
  -d "{\"login\":\"m0@fourth.example\",\"password\":\"$password\"}" "$url/client/v1/login" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
cat >"$tmp/login.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"login":"m%d@fourth.example","password":"$password"}', counter % $mobile)
  return wrk.format(nil, "/client/v1/login", nil, body)
end
EOF
cat >"$tmp/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format("RESULT rps=%.1f p50_ms=%.2f p99_ms=%.2f non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, non2xx))
end
EOF
cat "$tmp/report.lua" >>"$tmp/login.lua"
login_line="$(wrk -t"$wthreads" -c"$conns" -d"$duration" -s "$tmp/login.lua" "$url" | grep '^RESULT')"
me_line="$(wrk -t"$wthreads" -c"$conns" -d"$duration" -s "$tmp/report.lua" \
  -H "Authorization: Bearer $me_token" "$url/client/v1/me" | grep '^RESULT')"
echo "bench: POST /client/v1/login (Argon2id per request): $login_line"
echo "bench: GET /client/v1/me (lookup alone):            $me_line"
echo "bench: machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB RAM"
echo "bench: store size: $(du -sh "$tmp/data" | cut -f1)"
