#!/usr/bin/env bash
# Benchmark of SIP federation (src/mod/sip): presence fan-out to remote
# watchers, and the subscriptions re-created after a domain change.
#
#   fan-out   FED_WATCHERS remote watchers of other domains (mutual TLS,
#             one test CA) SUBSCRIBE to one local user; the user changes
#             presence (presence.set on the real-time WebSocket) and the time
#             until the last watcher's NOTIFY was answered is measured, and
#             NOTIFYs/s. The peer, in the same run: kamailio's presence server
#             (presence + presence_xml, in memory) with as many watchers of one
#             of its users, whose PUBLISH (UDP) makes the same fan-out.
#   recreate  FED_RECREATE subscriptions stored under the old domain, their
#             watchers spread over FED_RECREATE_DOMAINS partner domains (SRV
#             records in dnsmasq); the domain changes, federation is switched
#             on, and the time until every SUBSCRIBE from a new address was
#             answered is measured, with the most one partner domain got in
#             one second (the pacing: 50 per domain and second).
#
# The SIP side of every partner is bench/fedload.mjs (node): TLS client and
# server, every NOTIFY answered 200 and timestamped when answered. All on
# loopback aliases 127.0.47.1-4 (atriumd, the generator, dnsmasq, kamailio).
#
# Usage: bench/federation.sh [BUILD_DIR]
# Environment:
#   FED_WATCHERS=10000     watchers of the fan-out
#   FED_DOMAINS=200        partner domains the watchers come from (atriumd takes
#                          50 new requests per partner domain and second)
#   FED_CHANGES=3          presence changes timed per server
#   FED_CONNS=4            generator's TLS connections for its SUBSCRIBEs
#   FED_RECREATE=100000    subscriptions re-created after the domain change
#   FED_RECREATE_DOMAINS=100
#   FED_TIMEOUT=120        bound of every single wait (s)
#   FED_SUBSCRIBE_TIMEOUT=300  bound of subscribing every watcher (s)
#   FED_PEERS="kamailio atrium recreate"   what runs
#   FED_NICE=-15           priority of everything started here (0: unchanged)
#   FED_OUT=DIR            keep the JSON reports and the servers' logs in DIR
#   BENCH_NO_RECORD=1      print only, do not append to docs/benchmarks.md
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

watchers="${FED_WATCHERS:-10000}"
domains="${FED_DOMAINS:-200}"
changes="${FED_CHANGES:-3}"
conns="${FED_CONNS:-4}"
recreate="${FED_RECREATE:-100000}"
rdomains="${FED_RECREATE_DOMAINS:-100}"
timeout="${FED_TIMEOUT:-120}"
sub_timeout="${FED_SUBSCRIBE_TIMEOUT:-300}"
peers="${FED_PEERS:-kamailio atrium recreate}"
results_md="$repo/docs/benchmarks.md"

bench_setup "${1:-build}" atrium-bench-fed node openssl dnsmasq kamailio sqlite3 curl awk
# The machine runs other work: the servers and the generator, all started
# from here, run at the same raised priority when that is allowed.
nice_level="${FED_NICE:--15}"
if [ "$nice_level" != 0 ] && renice -n "$nice_level" -p $$ >/dev/null 2>&1; then
  niced="nice $nice_level for servers and generator"
else
  niced="no priority change"
fi
kam_db_dir=""
trap 'bench_cleanup; [ -z "$kam_db_dir" ] || rm -rf "$kam_db_dir"' EXIT

OURS=127.0.47.1
GEN=127.0.47.2
DNS=127.0.47.3
KAM=127.0.47.4
PW="fed-bench-pass-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
ADMIN_PW="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# ---- PKI: one CA; atriumd, kamailio, and the generator with wildcards for its partner domains ----
pki="$tmp/pki"
mkdir -p "$pki"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$pki/ca.key" -out "$pki/ca.pem" -days 2 -subj '/CN=Federation Bench CA' \
  -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' 2>/dev/null
cert() { # name CN SAN
  openssl req "${ec[@]}" -keyout "$pki/$1.key" -out "$pki/$1.csr" -subj "/CN=$2" 2>/dev/null
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n' \
    "$3" >"$pki/$1.ext"
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
    -out "$pki/$1.pem" -days 2 -extfile "$pki/$1.ext" 2>/dev/null
}
cert ours sip.atrium.test "DNS:sip.atrium.test,DNS:atrium.test,DNS:old.test,DNS:new.test,IP:$OURS"
cert kam kam.test "DNS:kam.test,DNS:sip.kam.test,IP:$KAM"
cert gen fan.test "DNS:*.fan.test,DNS:*.partner.test,DNS:sip.partner.test,IP:$GEN"
gen_tls=(--key "$pki/gen.key" --cert "$pki/gen.pem" --ca "$pki/ca.pem" --host "$GEN")

# ---- DNS: the partner domains of the re-created subscriptions --------------------------------
dns_port="$(free_port)"
partner_port="$(free_port)"
{
  for ((d = 0; d < rdomains; d++)); do echo "srv-host=_sipfederationtls._tcp.p$d.partner.test,sip.partner.test,$partner_port"; done
  echo "host-record=sip.partner.test,$GEN"
} >"$tmp/dnsmasq.conf"
dnsmasq -k --conf-file="$tmp/dnsmasq.conf" --port="$dns_port" --listen-address="$DNS" --bind-interfaces \
  --no-resolv --no-hosts --no-negcache --log-facility=- >"$tmp/dnsmasq.log" 2>&1 &
bench_pids+=("$!")
for _ in $(seq 1 100); do grep -q started "$tmp/dnsmasq.log" && break; sleep 0.05; done
grep -q started "$tmp/dnsmasq.log" || { cat "$tmp/dnsmasq.log" >&2; die "dnsmasq did not start"; }

nodever="$(node -v)"
reports=()

# stop_pid PID: TERM, bounded wait, KILL.
stop_pid() {
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

wait_tcp() { # host port: until it accepts, at most 10 s
  for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.05; done
  return 1
}

# ---- kamailio: a partner's presence server, tuned for the count --------------------------------
run_kamailio() {
  local dir="$tmp/kamailio" udp tlsp db
  mkdir -p "$dir"
  # presence_xml writes a watchers row per new subscription, SQLite syncing
  # each: on tmpfs, so that kamailio's disk is not what is measured.
  db="$(mktemp -d /dev/shm/atrium-bench-kam.XXXXXX)"
  kam_db_dir="$db"
  db="$db/presence.db"
  udp="$(free_port)"
  tlsp="$(free_port)"
  for f in standard-create.sql presence-create.sql; do sqlite3 "$db" <"/usr/share/kamailio/db_sqlite/$f"; done
  local side
  for side in server client; do
    printf '[%s:default]\nmethod = TLSv1.2+\nverify_certificate = yes\nrequire_certificate = yes\nprivate_key = %s\ncertificate = %s\nca_list = %s\n\n' \
      "$side" "$pki/kam.key" "$pki/kam.pem" "$pki/ca.pem"
  done >"$dir/tls.cfg"
  # What the defaults would break at this count: the write queues of one
  # connection (TCP 32 KiB, TLS clear text 64 KiB: the NOTIFYs to the
  # watchers' server fail once they are full), the presence hash tables
  # (2^9 buckets). One process each for UDP and TLS: presence_xml's SQLite
  # watchers table answers "database is locked" to concurrent writers.
  cat >"$dir/kamailio.cfg" <<EOF
#!KAMAILIO
debug=1
log_stderror=yes
children=1
tcp_children=1
auto_aliases=no
listen=udp:$KAM:$udp
listen=tls:$KAM:$tlsp
alias="kam.test"
enable_tls=yes
tcp_accept_no_cl=yes
tcp_max_connections=4096
tls_max_connections=4096
tcp_connection_lifetime=3600
tcp_async=yes
tcp_conn_wq_max=268435456
tcp_wq_max=1073741824
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tls.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "db_sqlite.so"
loadmodule "presence.so"
loadmodule "presence_xml.so"
modparam("tls", "config", "$dir/tls.cfg")
modparam("tls", "con_ct_wq_max", 268435456)
modparam("tls", "ct_wq_max", 1073741824)
modparam("presence|presence_xml", "db_url", "sqlite://$db")
modparam("presence", "subs_db_mode", 0)
modparam("presence", "subs_htable_size", 14)
modparam("presence", "pres_htable_size", 10)
modparam("presence", "max_expires", 7200)
modparam("presence_xml", "force_active", 1)
modparam("presence_xml", "integrated_xcap_server", 0)

request_route {
  if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
  if (is_method("OPTIONS")) { sl_send_reply("200", "OK"); exit; }
  if (is_method("PUBLISH|SUBSCRIBE")) {
    if (!t_newtran()) { sl_reply_error(); exit; }
    if (is_method("PUBLISH")) { handle_publish(); } else { handle_subscribe(); }
    t_release();
    exit;
  }
  sl_send_reply("404", "Not Here");
}
EOF
  # 1 GiB of shared memory: every subscription, transaction and queued
  # NOTIFY lives there (the default 64 MiB is not enough for 10,000).
  kamailio -DD -E -m 1024 -M 64 -f "$dir/kamailio.cfg" -Y "$dir" -P "$dir/kamailio.pid" >"$dir/kamailio.log" 2>&1 &
  local kpid=$!
  bench_pids+=("$kpid")
  wait_tcp "$KAM" "$tlsp" || { tail -50 "$dir/kamailio.log" >&2; die "kamailio did not listen"; }
  echo "fed: kamailio fan-out, $watchers watchers" >&2
  node "$here/fedload.mjs" --scenario fanout --peer kamailio "${gen_tls[@]}" --target "$KAM:$tlsp" \
    --publish "$KAM:$udp" --to erin@kam.test --watchers "$watchers" --domains "$domains" --fan-domain fan.test \
    --conns "$conns" --changes "$changes" --timeout "$timeout" --subscribe-timeout "$sub_timeout" --server-pid "$kpid" --max-time 900 \
    >"$tmp/kamailio-fanout.json" || echo "fed: kamailio fan-out failed (see above)" >&2
  reports+=("$tmp/kamailio-fanout.json")
  kamailio_v="$(kamailio -v 2>/dev/null | sed -n 's/^version: kamailio \([^ ]*\).*/\1/p')"
  grep -iE 'error|crit' "$dir/kamailio.log" | head -5 >&2 || true
  [ -z "${FED_OUT:-}" ] || { mkdir -p "$FED_OUT"; cp "$dir/kamailio.log" "$FED_OUT/kamailio.log"; }
  stop_pid "$kpid"
  rm -rf "$kam_db_dir"
}

# ---- atriumd ------------------------------------------------------------------------------------------
# atrium_start DOMAIN: a fresh data directory, federation configured; sets url, sip_port, token.
atrium_start() {
  local port
  port="$(free_port)"
  sip_port="$(free_port)"
  rm -rf "$tmp/data"
  mkdir -p "$tmp/data"
  cat >"$tmp/atlas.xml" <<EOF
<?xml version="1.0"?>
<Atlas>
  <Listen address="127.0.0.1" port="$port"/>
  <DataDirectory>$tmp/data</DataDirectory>
  <IMDeleteAfterDays>90</IMDeleteAfterDays>
  <JournalDeleteAfterDays>365</JournalDeleteAfterDays>
  <Domain>$1</Domain>
  <Limits connections="1000000" perAddress="1000000"/>
  <Federation address="$OURS" port="$sip_port" certificate="$pki/ours.pem" key="$pki/ours.key"
              ca="$pki/ca.pem" resolver="$DNS:$dns_port"/>
</Atlas>
EOF
  url="http://127.0.0.1:$port"
  bench_start_atriumd "$url" ATRIUM_ADMIN_PASSWORD="$ADMIN_PW" ATRIUM_LOG_LEVEL=warning
  wait_tcp "$OURS" "$sip_port" || { cat "$tmp/atriumd.log" >&2; die "atriumd's SIP listener did not come up"; }
  token="$(bench_login "$url" "$ADMIN_PW")"
}

api() { # method path [curl args...]: fails on a non-2xx answer
  local m="$1" p="$2"
  shift 2
  curl -fsS --max-time 600 -X "$m" -H "Authorization: Bearer $token" "$@" "$url$p" >/dev/null ||
    die "$m $p failed"
}

run_atrium() {
  atrium_start atrium.test
  api POST /api/v1/users/import -H 'content-type: application/json' --data "[{\"name\":\"alice\",\"password\":\"$PW\"}]"
  # alice has let every watcher in before they ask (the stored consent).
  awk -v n="$watchers" -v d="$domains" 'BEGIN { print "user,remote,state"; for (i = 0; i < n; i++) printf "alice,w%d@p%d.fan.test,active\n", i, i % d }' \
    >"$tmp/consent.csv"
  api POST /api/v1/federation/subscriptions/import -H 'content-type: text/csv' --data-binary "@$tmp/consent.csv"
  api PATCH /api/v1/settings -H 'content-type: application/json' --data '{"federation.enabled":true}'
  local ctoken
  ctoken="$(curl -fsS --max-time 20 -H 'content-type: application/json' \
    --data "{\"login\":\"alice@atrium.test\",\"password\":\"$PW\"}" "$url/client/v1/login" |
    sed -n 's/.*"token" *: *"\([^"]*\)".*/\1/p')"
  [ -n "$ctoken" ] || die "alice could not log in"
  echo "fed: atrium fan-out, $watchers watchers" >&2
  node "$here/fedload.mjs" --scenario fanout --peer atrium "${gen_tls[@]}" --target "$OURS:$sip_port" \
    --atrium-url "$url" --client-token "$ctoken" --admin-token "$token" --to alice@atrium.test --watchers "$watchers" \
    --domains "$domains" --fan-domain fan.test --conns "$conns" --changes "$changes" --timeout "$timeout" \
    --subscribe-timeout "$sub_timeout" --server-pid "$atrium_pid" --max-time 900 >"$tmp/atrium-fanout.json" || echo "fed: atrium fan-out failed (see above)" >&2
  reports+=("$tmp/atrium-fanout.json")
  [ -z "${FED_OUT:-}" ] || { mkdir -p "$FED_OUT"; cp "$tmp/atriumd.log" "$FED_OUT/atriumd-fanout.log"; }
  curl -sS --max-time 10 -H "Authorization: Bearer $token" "$url/api/v1/federation/status" >"$tmp/atrium-fanout-status.json" || true
  stop_pid "$atrium_pid"
}

run_recreate() {
  atrium_start old.test
  echo "fed: re-creating $recreate subscriptions over $rdomains partner domains" >&2
  node "$here/fedload.mjs" --scenario recreate "${gen_tls[@]}" --listen-port "$partner_port" \
    --atrium-url "$url" --admin-token "$token" --new-domain new.test --partner-domain partner.test \
    --subs "$recreate" --domains "$rdomains" --timeout "$timeout" --server-pid "$atrium_pid" --max-time 900 \
    >"$tmp/atrium-recreate.json" || echo "fed: re-creation failed (see above)" >&2
  reports+=("$tmp/atrium-recreate.json")
  [ -z "${FED_OUT:-}" ] || { mkdir -p "$FED_OUT"; cp "$tmp/atriumd.log" "$FED_OUT/atriumd-recreate.log"; }
  stop_pid "$atrium_pid"
}

for p in $peers; do
  case "$p" in
    kamailio) run_kamailio ;;
    atrium) run_atrium ;;
    recreate) run_recreate ;;
    *) die "FED_PEERS: unknown $p (kamailio, atrium, recreate)" ;;
  esac
done

if [ -n "${FED_OUT:-}" ]; then
  mkdir -p "$FED_OUT"
  for r in "${reports[@]}"; do [ -s "$r" ] && cp "$r" "$FED_OUT/"; done
fi

# ---- the summary -----------------------------------------------------------------------------------------
when="$(date -u '+%Y-%m-%d %H:%M UTC')"
commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
machine="$(nproc) CPUs, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1), $(free -g | awk '/Mem:/ {print $2}') GiB, Linux $(uname -r)"
summary="$(node --input-type=module - "$when" "$commit" "$machine" "${kamailio_v:-}" "$nodever" "$(basename "$build")" "$niced" "$changes" "${reports[@]}" <<'EOF'
import { readFileSync } from 'node:fs';
const [when, commit, machine, kamV, nodeV, build, niced, nChanges, ...files] = process.argv.slice(2);
const rep = {};
for (const f of files) {
  try { const r = JSON.parse(readFileSync(f, 'utf8')); rep[r.scenario === 'recreate' ? 'recreate' : r.server] = r; } catch { /* no report */ }
}
const n = (v, d = 0) => (typeof v === 'number' ? v.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '—');
const med = (a) => { const s = a.filter((x) => typeof x === 'number').sort((x, y) => x - y); return s.length ? s[Math.floor(s.length / 2)] : null; };
const fan = (r) => {
  if (!r) return null;
  const ok = r.changes.filter((c) => c.delivered === c.expected && c.expected > 0);
  return { r, ok: ok.length, last: med(ok.map((c) => c.last_ms)), p50: med(ok.map((c) => c.p50_ms)),
    rate: med(ok.map((c) => c.notifies_per_s)), all: r.changes.map((c) => c.last_ms),
    cpu: ok.length ? ok[Math.floor(ok.length / 2)].cpu : null };
};
const k = fan(rep.kamailio), a = fan(rep.atrium), rc = rep.recreate;
const lines = [];
lines.push(`### ${when}`, '');
lines.push(`- machine: ${machine}; other work ran on it meanwhile (the "others" CPU); ${niced}`);
lines.push(`- versions: atrium (commit ${commit}, build \`${build}\`), kamailio ${kamV || '—'}, generator bench/fedload.mjs on node ${nodeV}`);
const w = a?.r ?? k?.r;
if (w) lines.push(`- fan-out: ${n(w.watchers)} watchers from ${w.domains} partner domains over ${w.conns} TLS connections, ${nChanges} presence change${nChanges === "1" ? "" : "s"} per server`);
if (k || a) {
lines.push('');
lines.push('| measurement | kamailio | Atrium | ratio |', '|---|---:|---:|---:|');
const cell = (f, get, unit = '') => { const v = f ? get(f) : '—'; return v === '—' ? v : `${v}${unit}`; };
const ratio = (x, y, inv) => (typeof x === 'number' && typeof y === 'number' && x > 0 && y > 0 ? `${(inv ? x / y : y / x).toFixed(2)}×` : '—');
const subs = (f) => (f ? `${n(f.r.subscribe.active)}/${n(f.r.watchers)} in ${n(f.r.subscribe.ms)} ms${f.r.subscribe.retries_503 ? ` (${n(f.r.subscribe.retries_503)} × 503 retried)` : ''}` : '—');
lines.push(`| watchers subscribed (active) | ${subs(k)} | ${subs(a)} | |`);
lines.push(`| change → last NOTIFY answered (median of the complete changes) | ${cell(k, (f) => n(f.last, 1), ' ms')} | ${cell(a, (f) => n(f.last, 1), ' ms')} | ${ratio(k?.last, a?.last, true)} |`);
const each = (f) => (f ? f.r.changes.map((c) => `${n(c.last_ms, 0)} ms${c.delivered < c.expected ? ` (${n(c.delivered)}/${n(c.expected)})` : ''}`).join(', ') : '—');
lines.push(`| each change: last NOTIFY (delivered/expected when short) | ${each(k)} | ${each(a)} | |`);
lines.push(`| half the watchers had it | ${cell(k, (f) => n(f.p50, 1), ' ms')} | ${cell(a, (f) => n(f.p50, 1), ' ms')} | |`);
lines.push(`| NOTIFYs per second | ${cell(k, (f) => n(f.rate))} | ${cell(a, (f) => n(f.rate))} | ${ratio(k?.rate, a?.rate, false)} |`);
const cpu = (f) => (f?.cpu ? `${f.cpu.server_pct_core} / ${f.cpu.generator_pct_core} / ${f.cpu.others_pct_core}` : '—');
lines.push(`| CPU % of a core: server / generator / others | ${cpu(k)} | ${cpu(a)} | |`);
for (const [name, f] of [['kamailio', k], ['Atrium', a]]) if (f?.r.aborted) lines.push('', `${name}: ${f.r.aborted}`);
}
if (rc) {
  lines.push('', `Re-created subscriptions after the domain change (old.test → new.test):`, '');
  lines.push('| measurement | Atrium |', '|---|---:|');
  lines.push(`| subscriptions stored, partner domains | ${n(rc.subs)}, ${rc.domains} |`);
  lines.push(`| import (users + subscriptions, CSV) / domain change applied | ${n(rc.import_ms)} ms / ${n(rc.domain_change_ms)} ms |`);
  lines.push(`| federation on → last SUBSCRIBE answered | ${n(rc.last_ms / 1000, 1)} s (${n(rc.received)}/${n(rc.subs)} received) |`);
  lines.push(`| rate | ${n(rc.per_s)} SUBSCRIBE/s (pacing floor ${rc.pacing_floor_s} s: 50 per domain and second) |`);
  lines.push(`| most one partner domain got in one second (goal ≤ 50) | ${rc.max_per_domain_second} |`);
  lines.push(`| first SUBSCRIBE received after / busiest second (all domains) | ${n(rc.first_ms / 1000, 1)} s / ${n(rc.busiest_second)} |`);
  lines.push(`| CPU % of a core: server / generator / others | ${rc.cpu.server_pct_core} / ${rc.cpu.generator_pct_core} / ${rc.cpu.others_pct_core} |`);
  if (rc.aborted) lines.push('', `re-creation: ${rc.aborted}`);
}
console.log(lines.join('\n'));
EOF
)"
printf '\n%s\n' "$summary"
if [ "${BENCH_NO_RECORD:-}" != 1 ]; then
  printf '\n%s\n' "$summary" >>"$results_md"
  echo "fed: appended to $results_md" >&2
fi
