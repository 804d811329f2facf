// The push benchmark's driver (bench/push.sh runs it): a real atriumd sends
// to the protocol-faithful APNs stand-in of the integration tests
// (tests/integration/peers/push-providers.mjs: HTTP/2 over TLS, ES256
// provider token verified on every request), directly and through a real
// squid (CONNECT); h2load then sends the same requests (the headers and the
// body atriumd sent) to the same stand-in, as the peer figure.
//
// Two loads, each once direct and once through squid:
//   burst: N notifications written into the outbox in one transaction
//          (tests/tools/store-tool push, what a burst of chats to phones
//          leaves), then the sender is woken by one chat: notifications/s,
//          and enqueue (the commit) -> arrival at the stand-in p50/p99;
//   paced: chats at a fixed rate to a user whose phone has a push token and
//          no client connected: chat.send -> arrival p50/p99, the real path.
// Every wait is bounded (PUSH_TIMEOUT). Prints a Markdown block; with
// PUSH_REPORT=FILE also writes it there.
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { ATRIUMD, STORE_TOOL, sleep, startServer } from '../../tests/integration/harness.mjs';
import { clientLogin, rtConnect } from '../../tests/integration/rt-client.mjs';
import { makeTlsFiles } from '../../tests/integration/peers/tls-files.mjs';
import { makeApnsKey, startApns } from '../../tests/integration/peers/push-providers.mjs';
import { startSquid } from '../../tests/integration/peers/squid.mjs';

const env = (k, d) => (process.env[k] !== undefined && process.env[k] !== '' ? process.env[k] : d);
const N = Number(env('PUSH_N', 20000));
const RATE = Number(env('PUSH_RATE', 1000));       // paced chats per second (the issue's 1,000/s)
const SECONDS = Number(env('PUSH_SECONDS', 5));    // paced duration
const TIMEOUT_MS = Number(env('PUSH_TIMEOUT', 120)) * 1000;
const H2LOAD = env('H2LOAD', 'h2load');
const WITH_SQUID = env('PUSH_SQUID', '1') !== '0'; // PUSH_SQUID=0: direct only (quicker, for trying changes)
const PERF = env('PUSH_PERF', '');                 // a file: perf record of atriumd during the direct burst
// PUSH_ATRIUMD_LOG=FILE keeps atriumd's output there.
const PW = 'push-bench-pass-1';
const KEY_ID = 'ABC123DEFG';
const TEAM_ID = 'TEAM123456';
const TOPIC = 'com.example.atrium';
const PER_CONN_RATE = 25; // under the real-time core's 30 chats a second per connection

const log = (...a) => console.error('push:', ...a);

async function until(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const pct = (xs, p) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};

// CPU time of a process (every thread), in seconds, from /proc.
const HZ = 100;
function cpuOf(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / HZ;
  } catch { return NaN; }
}
// CPU time of the whole machine (busy, all cores), in seconds.
function cpuAll() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / HZ;
}
function meter(pids) {
  const t0 = Date.now(), all0 = cpuAll(), node0 = process.cpuUsage();
  const p0 = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuOf(p)]));
  return () => {
    const wall = (Date.now() - t0) / 1000;
    const u = process.cpuUsage(node0);
    const out = { standin: (u.user + u.system) / 1e6 / wall };
    let mine = out.standin;
    for (const [k, p] of Object.entries(pids)) { out[k] = (cpuOf(p) - p0[k]) / wall; mine += out[k]; }
    out.others = Math.max(0, (cpuAll() - all0) / wall - mine);
    return out;
  };
}
const pc = (x) => `${Math.round(x * 100)} %`;

async function main() {
  const tls = await makeTlsFiles();
  const apnsKey = makeApnsKey();
  const apns = await startApns({ cert: tls.cert, key: tls.key, keyId: KEY_ID, teamId: TEAM_ID, topic: TOPIC, publicKey: apnsKey.publicKey });
  log(`APNs stand-in at ${apns.url}`);
  let srv, squid;
  const clients = [];
  const cleanup = async () => {
    for (const c of clients) { try { c.close(); } catch { /* gone */ } }
    await srv?.stop();
    await squid?.stop();
    await apns.close();
    await tls.remove();
  };
  try {
    const senders = Array.from({ length: Math.max(1, Math.ceil(RATE / PER_CONN_RATE)) }, (_, i) => `s${i}`);
    srv = await startServer({
      atlas: `<Domain>push.example</Domain><CABundle>${tls.caFile}</CABundle>`,
      env: { ATRIUM_PUSH_APNS_URL: apns.url },
    });
    const admin = await srv.login();
    let r = await srv.api('POST', '/api/v1/users/import', { token: admin, body: ['bob', ...senders].map((name) => ({ name, password: PW })) });
    if (r.status !== 200) throw new Error(`import: ${r.text}`);
    const patch = async (body) => {
      const p = await srv.api('PATCH', '/api/v1/settings', { token: admin, body });
      if (p.status !== 200) throw new Error(`settings: ${p.text}`);
    };
    await patch({
      'mobile.push_enabled': true, 'mobile.apns_key_id': KEY_ID, 'mobile.apns_team_id': TEAM_ID,
      'mobile.apns_topic': TOPIC, 'mobile.apns_key': apnsKey.pem,
    });
    const bobToken = crypto.randomBytes(32).toString('hex');
    const phone = await clientLogin(srv, 'bob', PW, { id: 'bob-phone', platform: 'ios' });
    r = await srv.api('PUT', '/client/v1/device', { token: phone, body: { push_token: bobToken } });
    if (r.status !== 200) throw new Error(`device: ${r.text}`);
    for (const s of senders) clients.push(await rtConnect(srv, await clientLogin(srv, s, PW)));

    let seq = 0;
    const chat = (c, text) => {
      const id = `p${++seq}`;
      c.send({ type: 'chat.send', id, to: 'bob@push.example', text });
      return id;
    };
    const answer = async (c, id) => {
      const a = await c.waitFor((f) => (f.type === 'ok' || f.type === 'error') && f.id === id, TIMEOUT_MS, `answer ${id}`);
      if (a.type !== 'ok') throw new Error(`chat.send: ${JSON.stringify(a)}`);
      return a.message_id;
    };
    const arrivalOf = (collapse, from) => {
      for (let i = from; i < apns.received.length; i++) if (apns.received[i].headers['apns-collapse-id'] === collapse) return apns.received[i].at;
      return 0;
    };

    // Warm-up: the connection, the provider token, Apple's raised stream limit.
    const w = await answer(clients[0], chat(clients[0], 'warm-up'));
    await until(() => arrivalOf(`m${w}`, 0), 10000, 'the warm-up push');
    const sample = apns.received[apns.received.length - 1];

    const metrics = async () => {
      const t = (await srv.api('GET', '/metrics', { token: admin })).text;
      const one = (n) => Number((new RegExp(`^${n} (\\S+)$`, 'm').exec(t) ?? [])[1] ?? NaN);
      return { lost: one('atrium_push_lost_streams_total'), retried: one('atrium_push_retries_total') };
    };
    const burst = async (label) => {
      const base = apns.received.length;
      const m0 = await metrics();
      const conns0 = apns.connections, resets0 = apns.resets ?? 0;
      const streams0 = apns.maxStreamsSeen;
      apns.maxStreamsSeen = 0;
      const out = execFileSync(STORE_TOOL, [srv.dataDir, 'push', 'bob', 'bob-phone', 'ios', bobToken, String(N)], { encoding: 'utf8' });
      const committed = Date.now();
      const created = Number(out.trim());
      let perf = null;
      if (PERF && label === 'direct') {
        perf = spawn('perf', ['record', '-g', '-F', '999', '-o', PERF, '-p', String(srv.proc.pid)], { stdio: 'ignore' });
        await sleep(200);
      }
      const m = meter({ atriumd: srv.proc.pid, ...(squid?.pid ? { squid: squid.pid } : {}) });
      const t0 = Date.now();
      await answer(clients[0], chat(clients[0], 'wake up'));
      // The first arrival of each (a repeat carries the same apns-id).
      const firstAt = new Map();
      let seen = base, dups = 0;
      const gaps = [];
      await until(() => {
        for (; seen < apns.received.length; seen++) {
          const x = apns.received[seen];
          if (!/^b\d+$/.test(x.headers['apns-collapse-id'])) continue;
          if (firstAt.has(x.apnsId)) { dups++; gaps.push(x.at - firstAt.get(x.apnsId)); }
          else firstAt.set(x.apnsId, x.at);
        }
        return firstAt.size >= N;
      }, TIMEOUT_MS, `${N} notifications (${label})`);
      const cpu = m();
      if (perf) { perf.kill('SIGINT'); await new Promise((res) => perf.once('exit', res)); }
      const at = [...firstAt.values()];
      const m1 = await metrics();
      const first = Math.min(...at), last = Math.max(...at);
      const lat = at.map((a) => a - committed);
      const res = {
        label, n: at.length, rate: at.length / ((last - t0) / 1000), rateSteady: (at.length - 1) / ((last - first) / 1000),
        p50: pct(lat, 50), p99: pct(lat, 99), wakeToFirst: first - t0, commitMs: committed - created,
        streams: apns.maxStreamsSeen, conns: apns.connections - conns0, open: apns.sessions.size, resets: (apns.resets ?? 0) - resets0, dups, dupGapP50: pct(gaps, 50), lost: m1.lost - m0.lost, retried: m1.retried - m0.retried, cpu,
      };
      apns.maxStreamsSeen = Math.max(streams0, apns.maxStreamsSeen);
      log(JSON.stringify(res));
      return res;
    };

    const paced = async (label) => {
      const base = apns.received.length;
      const total = Math.round(RATE * SECONDS);
      const sent = []; // [client index, id, time]
      const t0 = Date.now();
      const m = meter({ atriumd: srv.proc.pid, ...(squid?.pid ? { squid: squid.pid } : {}) });
      for (let i = 0; i < total; i++) {
        const due = t0 + (i * 1000) / RATE;
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait);
        const k = i % clients.length;
        sent.push([k, chat(clients[k], `paced ${i}`), Date.now()]);
      }
      const ids = [];
      for (const [k, id, at] of sent) ids.push([await answer(clients[k], id), at]);
      const want = new Map(ids.map(([mid, at]) => [`m${mid}`, at]));
      const got = new Map();
      await until(() => {
        for (let i = base; i < apns.received.length; i++) {
          const c = apns.received[i].headers['apns-collapse-id'];
          if (want.has(c) && !got.has(c)) got.set(c, apns.received[i].at - want.get(c));
        }
        return got.size >= want.size;
      }, TIMEOUT_MS, `${total} paced notifications (${label})`);
      const cpu = m();
      const lat = [...got.values()];
      const res = { label, n: lat.length, offered: RATE, p50: pct(lat, 50), p99: pct(lat, 99), max: Math.max(...lat), cpu };
      log(JSON.stringify(res));
      return res;
    };

    const results = { burst: [], paced: [] };
    results.burst.push(await burst('direct'));
    results.paced.push(await paced('direct'));

    if (WITH_SQUID) {
      squid = await startSquid({});
      try { squid.pid = Number(fs.readFileSync(path.join(squid.dir, 'squid.pid'), 'utf8').trim()); } catch { squid.pid = 0; }
      await patch({ 'mobile.push_use_proxy': true, 'proxy.enabled': true, 'proxy.host': '127.0.0.1', 'proxy.port': squid.port });
      const w2 = await answer(clients[0], chat(clients[0], 'warm-up via squid'));
      await until(() => arrivalOf(`m${w2}`, 0), 10000, 'the warm-up push via squid');
      results.burst.push(await burst('squid'));
      results.paced.push(await paced('squid'));
    }
    const streamsUsed = Math.max(...results.burst.map((b) => b.streams));

    // The peer: h2load, the same request, one connection, as many streams as the sender used.
    const hdrs = [];
    for (const [k, v] of Object.entries(sample.headers)) {
      if (k.startsWith(':') || k === 'content-length') continue;
      hdrs.push('-H', `${k}: ${v}`);
    }
    const bodyFile = path.join(os.tmpdir(), `atrium-push-body-${process.pid}.json`);
    fs.writeFileSync(bodyFile, JSON.stringify(sample.body));
    const h2 = [];
    const m = Number(env('PUSH_H2LOAD_STREAMS', streamsUsed || 1000));
    for (const streams of [...new Set([m, 100])]) {
      const base = apns.received.length;
      const args = ['-n', String(N), '-c', '1', '-m', String(streams), '-d', bodyFile, ...hdrs, `${apns.url}/3/device/${bobToken}`];
      const mt = meter({});
      const t0 = Date.now();
      const out = await new Promise((resolve, reject) => {
        const p = spawn(H2LOAD, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        let s = '';
        p.stdout.on('data', (d) => { s += d; });
        p.stderr.on('data', (d) => { s += d; });
        const t = setTimeout(() => p.kill('SIGKILL'), TIMEOUT_MS);
        p.on('error', reject);
        p.on('exit', () => { clearTimeout(t); resolve(s); });
      });
      const cpu = mt();
      const fin = /finished in ([\d.]+)s, ([\d.]+) req\/s/.exec(out);
      const ok = /(\d+) 2xx/.exec(out);
      const rt = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out);
      const res = {
        streams, rate: fin ? Number(fin[2]) : NaN, ok: ok ? Number(ok[1]) : 0,
        received: apns.received.length - base, wall: (Date.now() - t0) / 1000,
        mean: rt ? rt[3] : '?', max: rt ? rt[2] : '?', cpu,
      };
      log(JSON.stringify(res));
      if (!fin) log(out);
      h2.push(res);
    }
    fs.rmSync(bodyFile, { force: true });

    // squid writes a tunnel's line when it closes: stop atriumd first.
    await srv.stop();
    if (process.env.PUSH_ATRIUMD_LOG) fs.writeFileSync(process.env.PUSH_ATRIUMD_LOG, srv.output());
    srv = null;
    const alog = squid ? await squid.settleAccessLog(400, 5000) : '';
    const tunnels = alog.split('\n').filter((l) => l.includes(`CONNECT 127.0.0.1:${apns.port}`)).length;

    const hb = h2[0];
    const d = results.burst[0], s = results.burst[1] ?? results.burst[0];
    const ver = (() => { try { return execFileSync(H2LOAD, ['--version'], { encoding: 'utf8' }).trim(); } catch { return '?'; } })();
    const sq = (() => { try { return execFileSync(squid ? '/usr/sbin/squid' : 'true', ['-v'], { encoding: 'utf8' }).split('\n')[0]; } catch { return '?'; } })();
    const f0 = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '?');
    const lines = [];
    lines.push(`- load: burst of ${N.toLocaleString('en-US')} notifications in the outbox (one transaction, ${d.commitMs} ms), sender woken by a chat; paced: ${RATE} chats/s for ${SECONDS} s from ${clients.length} connections to a user whose phone has a push token and no client connected`);
    lines.push(`- peer: ${ver}, \`h2load -n ${N} -c 1 -m <streams>\`, the headers (the same provider token) and the ${JSON.stringify(sample.body).length}-byte body atriumd sent, to the same stand-in; ${sq}; squid saw ${tunnels} CONNECT tunnel(s) to the stand-in`);
    lines.push(`- streams open at once at the stand-in: ${d.streams} (direct), ${s.streams} (squid); sent twice: ${d.dups} (direct), ${s.dups} (squid); streams lost (no answer, sent again): ${d.lost}, ${s.lost}; retried: ${d.retried}, ${s.retried}; connections opened during the burst: ${d.conns}, ${s.conns}; streams reset: ${d.resets}, ${s.resets}`);
    lines.push('');
    lines.push('| measurement | direct | through squid | h2load (direct) |');
    lines.push('|---|---:|---:|---:|');
    lines.push(`| burst: notifications/s (wake → last) | **${f0(d.rate)}** | **${f0(s.rate)}** | **${f0(hb.rate)}** (-m ${hb.streams})${h2[1] ? `; ${f0(h2[1].rate)} (-m ${h2[1].streams})` : ''} |`);
    lines.push(`| ratio to h2load (goal ≥ 0.8) | ${(d.rate / hb.rate).toFixed(2)} | ${(s.rate / hb.rate).toFixed(2)} | 1 |`);
    lines.push(`| burst: enqueue → arrival p50 / p99 | ${f0(d.p50)} / ${f0(d.p99)} ms | ${f0(s.p50)} / ${f0(s.p99)} ms | mean ${hb.mean}, max ${hb.max} per request |`);
    lines.push(`| burst: wake → first arrival | ${d.wakeToFirst} ms | ${s.wakeToFirst} ms | |`);
    const P = results.paced.length > 1 ? results.paced : [results.paced[0], results.paced[0]];
    lines.push(`| paced ${RATE}/s: chat.send → arrival p50 / p99 / max | ${f0(P[0].p50)} / ${f0(P[0].p99)} / ${f0(P[0].max)} ms | ${f0(P[1].p50)} / ${f0(P[1].p99)} / ${f0(P[1].max)} ms | |`);
    const cpuRow = (c) => `atriumd ${pc(c.atriumd)}${c.squid !== undefined ? `, squid ${pc(c.squid)}` : ''}, stand-in ${pc(c.standin)}, others ${pc(c.others)}`;
    lines.push(`| burst: CPU (of one core) | ${cpuRow(d.cpu)} | ${cpuRow(s.cpu)} | stand-in ${pc(hb.cpu.standin)}, h2load + others ${pc(hb.cpu.others)} |`);
    const text = lines.join('\n') + '\n';
    process.stdout.write(text);
    if (process.env.PUSH_REPORT) fs.writeFileSync(process.env.PUSH_REPORT, text);
    if (d.n < N || s.n < N || hb.ok < N) { log(`incomplete: direct ${d.n}, squid ${s.n}, h2load 2xx ${hb.ok} of ${N}`); process.exitCode = 1; }
  } finally {
    await cleanup();
  }
}

log(`atriumd ${ATRIUMD}`);
main().catch((e) => { console.error(e); process.exit(1); });
