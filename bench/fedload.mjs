// The load generator and driver of bench/federation.sh: a partner domain's
// SIP side over mutual TLS, written for counts the test peers do not reach.
//
//   fanout   N watchers (w<i>@p<i mod D>.<fan domain>) SUBSCRIBE to one
//            presentity on the server under test, every NOTIFY is answered
//            200 and timestamped; then the presentity changes K times (atrium:
//            presence.set on the real-time WebSocket; kamailio: a PUBLISH over
//            UDP) and each change is timed until the last watcher's NOTIFY
//            carrying it was answered.
//   recreate atriumd holds N remote watchers (c<i>@p<i mod D>.<partner domain>)
//            stored under its old domain; the domain changes and federation
//            is switched on: time until every SUBSCRIBE from the new address
//            was answered, and the most any partner domain got in one second.
//
// Prints one JSON report on stdout. Every wait is bounded (--timeout s per
// phase, --max-time s in all).
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';

import { apiCall } from '../tests/integration/harness.mjs';
import { rtConnect } from '../tests/integration/rt-client.mjs';

const args = {};
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
  args[a.slice(2)] = process.argv[++i];
}
const num = (k, d) => (args[k] === undefined ? d : Number(args[k]));
const timeoutMs = num('timeout', 60) * 1000;
const started = Date.now();
const maxTime = num('max-time', 600) * 1000;
const log = (...m) => process.stderr.write(`fedload: ${m.join(' ')}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const over = () => Date.now() - started > maxTime;
const tag = () => crypto.randomBytes(6).toString('hex');

const key = fs.readFileSync(args.key);
const cert = fs.readFileSync(args.cert);
const ca = fs.readFileSync(args.ca);
const genHost = args.host;

// ---- CPU of the processes involved (/proc, clock ticks of 10 ms) ---------------------------------
const TICK_MS = 10;
function descendants(root) {
  const kids = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = fs.readFileSync(`/proc/${d}/stat`, 'latin1');
      const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
      if (!kids.has(ppid)) kids.set(ppid, []);
      kids.get(ppid).push(Number(d));
    } catch { /* gone */ }
  }
  const out = [];
  const walk = (p) => { out.push(p); for (const k of kids.get(p) ?? []) walk(k); };
  walk(root);
  return out;
}
function ticksOf(pids) {
  let t = 0;
  for (const p of pids) {
    try {
      const f = fs.readFileSync(`/proc/${p}/stat`, 'latin1').slice(0).split(') ')[1].split(' ');
      t += Number(f[11]) + Number(f[12]); // utime, stime
    } catch { /* gone */ }
  }
  return t;
}
function machineTicks() {
  const f = fs.readFileSync('/proc/stat', 'latin1').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { busy: f[0] + f[1] + f[2] + f[5] + f[6] + f[7], all: f.reduce((a, b) => a + b, 0) };
}
// Read again at every start: kamailio forks its workers after it listens.
const serverPidsNow = () => (args['server-pid'] ? descendants(Number(args['server-pid'])) : []);
function cpuStart() {
  const pids = serverPidsNow();
  return { t: performance.now(), pids, server: ticksOf(pids), gen: process.cpuUsage(), m: machineTicks() };
}
function cpuEnd(s) {
  const ms = performance.now() - s.t;
  const server = (ticksOf(s.pids) - s.server) * TICK_MS;
  const g = process.cpuUsage(s.gen);
  const gen = (g.user + g.system) / 1000;
  const m = machineTicks();
  const busy = (m.busy - s.m.busy) * TICK_MS;
  const pct = (x) => Math.round((100 * x) / ms);
  return { window_ms: Math.round(ms), server_pct_core: pct(server), generator_pct_core: pct(gen),
    others_pct_core: Math.max(0, pct(busy - server - gen)) };
}

// ---- SIP over TLS ---------------------------------------------------------------------------------
const COMPACT = { l: 'content-length', f: 'from', t: 'to', i: 'call-id', v: 'via', m: 'contact', c: 'content-type', o: 'event' };

/** Calls onMessage(msg, sock) for every SIP message of the stream. */
function framer(sock, onMessage) {
  let buf = null;
  return (chunk) => {
    buf = buf && buf.length ? Buffer.concat([buf, chunk]) : chunk;
    let off = 0;
    for (;;) {
      while (buf.length - off >= 2 && buf[off] === 13 && buf[off + 1] === 10) off += 2; // keep-alives
      const end = buf.indexOf('\r\n\r\n', off, 'latin1');
      if (end < 0) break;
      const head = buf.toString('latin1', off, end);
      const lines = head.split('\r\n');
      const headers = {};
      for (let i = 1; i < lines.length; i++) {
        const line = lines[i];
        const c = line.indexOf(':');
        if (c < 0) continue;
        let name = line.slice(0, c).trim().toLowerCase();
        name = COMPACT[name] ?? name;
        (headers[name] ??= []).push(line.slice(c + 1).trim());
      }
      const len = Number(headers['content-length']?.[0] ?? 0);
      if (buf.length < end + 4 + len) break;
      const body = len ? buf.toString('utf8', end + 4, end + 4 + len) : '';
      off = end + 4 + len;
      const msg = { start: lines[0], headers, body, h: (n) => headers[n]?.[0] };
      const m = /^SIP\/2\.0 (\d{3})/.exec(lines[0]);
      if (m) msg.status = Number(m[1]);
      else msg.method = lines[0].slice(0, lines[0].indexOf(' '));
      onMessage(msg, sock);
    }
    buf = off >= buf.length ? null : buf.subarray(off);
  };
}

function reply(sock, req, status, reason, extra = [], toTag = null) {
  const lines = [`SIP/2.0 ${status} ${reason}`];
  for (const v of req.headers.via ?? []) lines.push(`Via: ${v}`);
  const to = req.h('to');
  lines.push(`From: ${req.h('from')}`, `To: ${toTag && !/;tag=/.test(to) ? `${to};tag=${toTag}` : to}`,
    `Call-ID: ${req.h('call-id')}`, `CSeq: ${req.h('cseq')}`, ...extra, 'Content-Length: 0', '', '');
  sock.write(lines.join('\r\n'));
}

/** A TLS listener with this generator's certificate, the peer's verified. */
async function listen(port, onMessage) {
  const socks = new Set();
  const server = tls.createServer({ key, cert, ca, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' }, (s) => {
    socks.add(s);
    s.on('data', framer(s, onMessage));
    s.on('error', () => {});
    s.on('close', () => socks.delete(s));
  });
  server.on('tlsClientError', (e) => log('TLS client error', e.message));
  await new Promise((res, rej) => { server.once('error', rej); server.listen(port, genHost, res); });
  return { port: server.address().port, socks,
    close: () => { for (const s of socks) s.destroy(); server.close(); } };
}

async function connect(host, port, onMessage) {
  const s = tls.connect({ host, port, key, cert, ca, minVersion: 'TLSv1.2', localAddress: genHost,
    checkServerIdentity: () => undefined });
  await new Promise((res, rej) => { s.once('secureConnect', res); s.once('error', rej); });
  s.on('data', framer(s, onMessage));
  s.on('error', () => {});
  return s;
}

// ---- fan-out ----------------------------------------------------------------------------------------
async function fanout() {
  const n = num('watchers', 10000);
  const domains = num('domains', 200);
  const fanDomain = args['fan-domain'];
  const to = args.to; // the presentity, user@domain
  const [thost, tport] = args.target.split(':');
  const conns = num('conns', 4);
  const window = num('window', 500);
  const changes = num('changes', 3);
  const subs = [];
  const byCall = new Map();
  for (let i = 0; i < n; i++) {
    const s = { i, from: `w${i}@p${i % domains}.${fanDomain}`, callId: `${tag()}-${i}@${genHost}`, fromTag: tag(),
      cseq: 1, state: 'new', active: false, seen: -1, retries: 0 };
    subs.push(s);
    byCall.set(s.callId, s);
  }
  let marker = null, markerCount = 0, markerLast = 0, markerFirst = 0;
  const arrivals = [];
  let notifies = 0, activeCount = 0, unknown = 0, viaListener = 0;
  let contactListener = null;
  const states = {};
  const pending = new Map(); // branch -> sub
  const counts = { s2xx: 0, s503: 0, other: {} };

  const onMessage = (msg, sock) => {
    if (msg.status) {
      const branch = /branch=([^;, ]+)/.exec(msg.h('via') ?? '')?.[1];
      const s = pending.get(branch);
      if (!s || msg.status < 200) return;
      pending.delete(branch);
      if (msg.status < 300) { counts.s2xx++; s.state = 'accepted'; return; }
      if (msg.status === 503 && s.retries < 20) { counts.s503++; s.retries++; s.state = 'retry'; s.retryAt = Date.now() + 1000; return; }
      counts.other[msg.status] = (counts.other[msg.status] ?? 0) + 1;
      s.state = 'failed';
      return;
    }
    if (msg.method !== 'NOTIFY') { reply(sock, msg, 200, 'OK'); return; }
    reply(sock, msg, 200, 'OK');
    const now = performance.now();
    notifies++;
    if (contactListener.socks.has(sock)) viaListener++;
    const s = byCall.get(msg.h('call-id'));
    if (!s) { unknown++; return; }
    const ss = (msg.h('subscription-state') ?? '').split(';')[0].toLowerCase();
    states[ss] = (states[ss] ?? 0) + 1;
    if (!s.active && /^active/i.test(msg.h('subscription-state') ?? '')) { s.active = true; activeCount++; }
    if (marker && s.seen !== marker.k && msg.body.includes(marker.text)) {
      s.seen = marker.k;
      markerCount++;
      markerLast = now;
      if (markerCount === 1) markerFirst = now;
      arrivals.push(now);
    }
  };

  contactListener = await listen(0, onMessage);

  const socks = [];
  for (let c = 0; c < conns; c++) socks.push(await connect(thost, Number(tport), onMessage));

  const send = (s) => {
    const branch = 'z9hG4bK' + tag();
    const sock = socks[s.i % socks.length];
    const user = s.from.split('@')[0];
    const msg = [
      `SUBSCRIBE sip:${to} SIP/2.0`,
      `Via: SIP/2.0/TLS ${genHost}:${contactListener.port};branch=${branch}`,
      'Max-Forwards: 70',
      `From: <sip:${s.from}>;tag=${s.fromTag}`,
      `To: <sip:${to}>`,
      `Call-ID: ${s.callId}`,
      `CSeq: ${s.cseq++} SUBSCRIBE`,
      `Contact: <sip:${user}@${genHost}:${contactListener.port};transport=tls>`,
      'Event: presence', 'Accept: application/pidf+xml', 'Expires: 3600', 'Content-Length: 0', '', '',
    ].join('\r\n');
    s.state = 'sent';
    pending.set(branch, s);
    sock.write(msg);
  };

  // Subscribe, a window at a time, 503s again after their Retry-After.
  const c0 = cpuStart();
  const t0 = performance.now();
  const until = Date.now() + num('subscribe-timeout', 300) * 1000;
  let next = 0;
  while (Date.now() < until && !over()) {
    const now = Date.now();
    for (const s of subs) if (s.state === 'retry' && s.retryAt <= now && pending.size < window) send(s);
    while (next < n && pending.size < window) send(subs[next++]);
    if (next >= n && pending.size === 0 && !subs.some((s) => s.state === 'retry') && activeCount >= counts.s2xx) break;
    await sleep(5);
  }
  // The first NOTIFY of each (atriumd: active once the stored consent is read).
  while (activeCount < counts.s2xx && Date.now() < until && !over()) await sleep(20);
  const subscribeMs = performance.now() - t0;
  const subscribeCpu = cpuEnd(c0);
  log(`first NOTIFYs by state ${JSON.stringify(states)}, ${unknown} unknown`);
  log(`subscribed: ${counts.s2xx} accepted, ${activeCount} active, ${counts.s503} 503 retries, other ${JSON.stringify(counts.other)} in ${Math.round(subscribeMs)} ms`);
  const report = { scenario: 'fanout', server: args.peer, watchers: n, domains, conns,
    subscribe: { accepted: counts.s2xx, active: activeCount, notify_states: { ...states }, retries_503: counts.s503, other: counts.other,
      ms: Math.round(subscribeMs), cpu: subscribeCpu }, changes: [] };

  // The trigger.
  let trigger;
  if (args.peer === 'atrium') {
    const url = args['atrium-url'];
    const server = { url, port: Number(new URL(url).port), api: (m, p, o = {}) => apiCall(url, m, p, o) };
    const c = await rtConnect(server, args['client-token']);
    const states = ['busy', 'away', 'available'];
    trigger = async (k, text) => {
      const r = await c.request({ type: 'presence.set', state: states[k % states.length], note: text });
      if (r.type !== 'ok') throw new Error(`presence.set: ${JSON.stringify(r)}`);
    };
    report.close = () => c.close();
  } else {
    const [phost, pport] = args.publish.split(':');
    const udp = dgram.createSocket('udp4');
    await new Promise((r) => udp.bind(0, genHost, r));
    let answered = null, etag = null;
    udp.on('message', (m) => {
      const text = m.toString('latin1');
      const st = /^SIP\/2\.0 (\d{3})/.exec(text);
      if (!st || Number(st[1]) < 200) return;
      etag = /\r\nSIP-ETag: *([^\r]+)/i.exec(text)?.[1] ?? etag;
      answered?.(Number(st[1]));
    });
    const acts = ['busy', 'away', 'lunch'];
    trigger = async (k, text) => {
      const body = '<?xml version="1.0" encoding="UTF-8"?>\n'
        + `<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:${to}">`
        + '<tuple id="t1"><status><basic>open</basic></status></tuple>'
        + `<dm:person id="p1"><rpid:activities><rpid:${acts[k % acts.length]}/></rpid:activities></dm:person>`
        + `<note>${text}</note></presence>`;
      const m = [`PUBLISH sip:${to} SIP/2.0`, `Via: SIP/2.0/UDP ${genHost}:${udp.address().port};branch=z9hG4bK${tag()}`,
        'Max-Forwards: 70', `From: <sip:${to}>;tag=${tag()}`, `To: <sip:${to}>`, `Call-ID: ${tag()}@${genHost}`,
        'CSeq: 1 PUBLISH', 'Event: presence', 'Expires: 3600', 'Content-Type: application/pidf+xml',
        // The same publication modified (RFC 3903), as a client does: the
        // presentity keeps one tuple, as atriumd's user does.
        ...(etag ? [`SIP-If-Match: ${etag}`] : []),
        `Content-Length: ${Buffer.byteLength(body)}`, '', body].join('\r\n');
      const got = new Promise((res) => { answered = res; setTimeout(() => res(0), 5000); });
      udp.send(m, Number(pport), phost);
      const st = await got;
      if (st !== 200) throw new Error(`PUBLISH answered ${st}`);
    };
    report.close = () => udp.close();
  }

  for (let k = 0; k < changes && !over(); k++) {
    await sleep(1000); // the previous change's stragglers are answered
    marker = { k, text: `fedbench-${k}-${tag()}` };
    markerCount = 0;
    arrivals.length = 0;
    const before = notifies;
    const c1 = cpuStart();
    const start = performance.now();
    await trigger(k, marker.text);
    const triggered = performance.now() - start;
    const end = Date.now() + timeoutMs;
    while (markerCount < activeCount && Date.now() < end) await sleep(5);
    const cpu = cpuEnd(c1);
    const lastMs = markerLast - start;
    arrivals.sort((a, b) => a - b);
    const ch = { change: k, delivered: markerCount, expected: activeCount, trigger_answered_ms: +triggered.toFixed(1),
      first_ms: markerCount ? +(markerFirst - start).toFixed(1) : null,
      p50_ms: markerCount ? +(arrivals[Math.floor(arrivals.length / 2)] - start).toFixed(1) : null,
      last_ms: markerCount ? +lastMs.toFixed(1) : null,
      notifies_per_s: markerCount ? Math.round(markerCount / (lastMs / 1000)) : 0,
      notifies_total: notifies - before, cpu };
    log(`change ${k}: ${markerCount}/${activeCount} in ${ch.last_ms} ms (${ch.notifies_per_s} NOTIFY/s)`);
    report.changes.push(ch);
    if (markerCount < activeCount) { report.aborted = `change ${k}: ${activeCount - markerCount} watchers without the NOTIFY after ${timeoutMs / 1000} s`; break; }
  }
  report.unknown_notifies = unknown;
  report.notifies_via_listener = viaListener;
  report.notifies_all = notifies;
  if (args['admin-token']) {
    const st = await apiCall(args['atrium-url'], 'GET', '/api/v1/federation/status', { token: args['admin-token'] });
    report.server_status = st.json;
  }
  report.close();
  delete report.close;
  for (const s of socks) s.destroy();
  contactListener.close();
  return report;
}

// ---- re-created subscriptions after a domain change --------------------------------------------------
async function recreate() {
  const n = num('subs', 100000);
  const domains = num('domains', 100);
  const url = args['atrium-url'];
  const token = args['admin-token'];
  const newDomain = args['new-domain'];
  const api = (m, p, o = {}) => apiCall(url, m, p, { token, timeoutMs: 600000, ...o });
  const seen = new Set();
  const perDomainSecond = new Map(); // "domain second" -> count
  let count = 0, last = 0, first = 0, wrongFrom = 0, dup = 0, other = 0;
  let start = 0;
  const onMessage = (msg, sock) => {
    if (msg.status) return;
    if (msg.method !== 'SUBSCRIBE') { reply(sock, msg, 200, 'OK'); other++; return; }
    const expires = msg.h('expires') ?? '3600';
    reply(sock, msg, 202, 'Accepted', [`Expires: ${expires}`, `Contact: <sip:partner@${genHost}:${lst.port};transport=tls>`], tag());
    const now = performance.now();
    if (expires === '0') return;
    const from = /<sip:([^>;]+)/.exec(msg.h('from') ?? '')?.[1] ?? '';
    const ruri = msg.start.split(' ')[1].replace(/^sips?:/, '');
    if (!from.endsWith(`@${newDomain}`)) { wrongFrom++; return; }
    const k = `${from} ${ruri}`;
    if (seen.has(k)) { dup++; return; }
    seen.add(k);
    count++;
    last = now;
    if (count === 1) first = now;
    const d = ruri.split('@')[1];
    const sec = Math.floor(Date.now() / 1000); // atriumd's seconds (time(NULL)), not ours
    const dk = `${d} ${sec}`;
    perDomainSecond.set(dk, (perDomainSecond.get(dk) ?? 0) + 1);
  };
  const lst = await listen(num('listen-port', 0), onMessage);

  // The directory: users u<i>, each watched by c<i> of partner p<i mod D>.
  const chunk = 50000;
  const tImport = performance.now();
  for (let s = 0; s < n; s += chunk) {
    const e = Math.min(n, s + chunk);
    let u = 'name,display_name\n', sub = 'user,remote,state\n';
    for (let i = s; i < e; i++) { u += `u${i},User ${i}\n`; sub += `u${i},c${i}@p${i % domains}.${args['partner-domain']},active\n`; }
    let r = await api('POST', '/api/v1/users/import', { raw: u, headers: { 'content-type': 'text/csv' } });
    if (r.status !== 200) throw new Error(`users import: ${r.status} ${r.text.slice(0, 300)}`);
    r = await api('POST', '/api/v1/federation/subscriptions/import', { raw: sub, headers: { 'content-type': 'text/csv' } });
    if (r.status !== 200) throw new Error(`subscriptions import: ${r.status} ${r.text.slice(0, 300)}`);
  }
  const importMs = performance.now() - tImport;
  let r = await api('PATCH', '/api/v1/settings', { body: { 'federation.enabled': false } });
  if (r.status !== 200) throw new Error(`federation off: ${r.status} ${r.text}`);
  const tChange = performance.now();
  r = await api('POST', '/api/v1/domain/change', { body: { domain: newDomain, dry_run: false } });
  if (r.status !== 200) throw new Error(`domain change: ${r.status} ${r.text}`);
  const changeMs = performance.now() - tChange;
  const preview = r.json;
  log(`imported ${n} users and subscriptions in ${Math.round(importMs)} ms; domain change ${Math.round(changeMs)} ms: ${JSON.stringify(preview)}`);

  const c0 = cpuStart();
  start = performance.now();
  r = await api('PATCH', '/api/v1/settings', { body: { 'federation.enabled': true } });
  if (r.status !== 200) throw new Error(`federation on: ${r.status} ${r.text}`);
  const end = Date.now() + timeoutMs;
  let lastLog = Date.now();
  while (count < n && Date.now() < end && !over()) {
    await sleep(20);
    if (Date.now() - lastLog > 5000) { lastLog = Date.now(); log(`re-created so far: ${count}`); }
  }
  const cpu = cpuEnd(c0);
  let maxPerDomainSecond = 0;
  const perSecond = new Map();
  for (const [dk, v] of perDomainSecond) {
    maxPerDomainSecond = Math.max(maxPerDomainSecond, v);
    const sec = dk.split(' ')[1];
    perSecond.set(sec, (perSecond.get(sec) ?? 0) + v);
  }
  const busiest = Math.max(0, ...perSecond.values());
  const st = await api('GET', '/api/v1/federation/status');
  const lastMs = last - start;
  const report = { scenario: 'recreate', server: 'atrium', subs: n, domains, import_ms: Math.round(importMs),
    domain_change_ms: Math.round(changeMs), preview,
    received: count, first_ms: count ? +(first - start).toFixed(1) : null, last_ms: count ? +lastMs.toFixed(1) : null,
    per_s: count ? Math.round(count / (lastMs / 1000)) : 0,
    pacing_floor_s: Math.ceil(n / (50 * domains)) - 1,
    max_per_domain_second: maxPerDomainSecond, busiest_second: busiest, wrong_from: wrongFrom, duplicates: dup, other_requests: other,
    connections: lst.socks.size, cpu, status: st.json };
  if (count < n) report.aborted = `${n - count} SUBSCRIBEs not received after ${timeoutMs / 1000} s`;
  lst.close();
  return report;
}

const scen = args.scenario;
const run = scen === 'fanout' ? fanout : scen === 'recreate' ? recreate : null;
if (!run) throw new Error('--scenario fanout|recreate');
const timer = setTimeout(() => { log('max time reached'); process.exit(3); }, maxTime + 30000);
run().then((rep) => {
  process.stdout.write(JSON.stringify(rep, null, 1) + '\n');
  clearTimeout(timer);
  process.exit(0);
}, (e) => { log(e.stack ?? e.message); process.exit(1); });
