// QoS for web meetings: what atriumd sends in answer to a request whose URL
// matches a qos.policies entry carries the policy's DSCP mark and is paced to
// its max_rate_mbps. Checked on the wire with tshark on the loopback interface
// (root only) and with ss (the kernel's pacing limit of the connection).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { startServer, sleep, wsOpen } from './harness.mjs';
import { openMeeting, wsPing } from './meeting-client.mjs';

const TSHARK = process.env.TSHARK || '/usr/bin/tshark';

/** Why packets cannot be captured here, or null when they can. */
function captureUnavailable() {
  if (!fs.existsSync(TSHARK)) return `${TSHARK} is missing (scripts/deps.sh test installs it)`;
  if (process.getuid?.() !== 0) return 'capturing on lo needs root';
  const r = spawnSync(TSHARK, ['-D'], { encoding: 'utf8', timeout: 10000 });
  if (r.status !== 0 || !/\blo\b/.test(r.stdout)) {
    return `tshark cannot list the loopback interface: ${(r.stderr || '').trim()}`;
  }
  return null;
}
const skipReason = captureUnavailable();
if (skipReason) console.log(`# qos.test.mjs skipped: ${skipReason}`);

let srv, token;
// One keep-alive agent: several requests share a connection, so the marking
// must also be cleared when the next request on it matches no policy.
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

before(async () => {
  if (skipReason) return;
  srv = await startServer({ atlas: '<TrustedProxies>127.0.0.1</TrustedProxies>' });
  token = await srv.login();
  // The default policies follow the meeting URL, which follows
  // server.public_url: point it at the address the test requests.
  const r = await patch({ 'server.public_url': `http://127.0.0.1:${srv.port}`,
    'meeting.enabled': true });
  assert.equal(r.status, 200, r.text);
});
after(async () => {
  agent.destroy();
  await srv?.stop();
});

const patch = (body) => srv.api('PATCH', '/api/v1/settings', { token, body });

/** GET on the shared keep-alive connection; resolves {status, headers, body}. */
function get(path, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: srv.port, path, agent, headers,
      timeout: 30000 }, (res) => {
      const localPort = res.socket.localPort;
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
        body: Buffer.concat(chunks), localPort }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** GET /healthz on a connection of its own; resolves the client's port. */
function probe() {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: srv.port, path: '/healthz', agent: false,
      timeout: 5000 }, (res) => {
      const port = res.socket.localPort;
      res.resume();
      res.on('end', () => resolve(port));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Captures what atriumd sends (tcp src port = its port) while fn runs.
 * Resolves the DSCP values of the packets that carry data (handshake and bare
 * ACK packets may be sent before the request is read, so they do not count).
 *
 * tshark reports packets in batches, some time after they were sent, and its
 * "Capturing on" line may come before the capture really runs. So a probe
 * request on a connection of its own is made until tshark shows it (the
 * capture runs), and again after fn (every packet before it has been
 * reported); the probes' own packets are left out.
 */
async function capture(fn) {
  const proc = spawn(TSHARK, ['-i', 'lo', '-f', `tcp src port ${srv.port}`, '-l', '-n',
    '-T', 'fields', '-e', 'tcp.dstport', '-e', 'tcp.len', '-e', 'ip.dsfield.dscp',
    '-a', 'duration:120'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const rows = [];
  let partial = '', err = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d) => {
    const lines = (partial + d).split('\n');
    partial = lines.pop();
    for (const l of lines) {
      const [dst, len, dscp] = l.trim().split('\t').map(Number);
      rows.push({ dst, len, dscp });
    }
  });
  proc.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  const probes = new Set();
  const seen = async (ms) => {
    const port = await probe();
    probes.add(port);
    const until = Date.now() + ms;
    while (Date.now() < until) {
      if (rows.some((r) => r.dst === port && r.len > 0)) return true;
      if (proc.exitCode !== null) throw new Error(`tshark ended: ${err}`);
      await sleep(25);
    }
    return false;
  };
  try {
    const deadline = Date.now() + 20000;
    while (!(await seen(1000))) {
      if (Date.now() > deadline) throw new Error(`tshark does not capture on lo: ${err}`);
    }
    await fn();
    assert.ok(await seen(15000), `tshark did not report the closing probe: ${err}`);
  } finally {
    proc.kill('SIGINT');
    const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
    await exited;
    clearTimeout(t);
  }
  return rows.filter((r) => r.len > 0 && !probes.has(r.dst)).map((r) => r.dscp);
}

function assertAll(dscps, want, what) {
  assert.ok(dscps.length > 0, `${what}: no data packets from atriumd were captured`);
  assert.deepEqual([...new Set(dscps)], [want], `${what}: DSCP of every data packet`);
}

/** A WebSocket echo on its own connection (RFC 6455 by hand: Node 20 has no client). */
function wsEcho(path, text) {
  return new Promise((resolve, reject) => {
    const key = crypto.randomBytes(16).toString('base64');
    const req = http.request({ host: '127.0.0.1', port: srv.port, path, timeout: 10000,
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': key } });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.on('response', (res) => reject(new Error(`no upgrade: HTTP ${res.statusCode}`)));
    req.on('upgrade', (res, sock) => {
      const payload = Buffer.from(text);
      const mask = crypto.randomBytes(4);
      const frame = Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask,
        Buffer.from(payload.map((b, i) => b ^ mask[i % 4]))]);
      let got = Buffer.alloc(0), done = false;
      const t = setTimeout(() => { sock.destroy(); reject(new Error('no echo')); }, 10000);
      sock.on('error', () => {});
      sock.on('data', (d) => {
        got = Buffer.concat([got, d]);
        if (!done && got.length >= 2 && got.length >= 2 + (got[1] & 0x7f)) {
          done = true;
          clearTimeout(t);
          sock.end(Buffer.from([0x88, 0x80, 0, 0, 0, 0])); // close, masked with zeros
          resolve(got.subarray(2, 2 + (got[1] & 0x7f)).toString());
        }
      });
      sock.write(frame);
    });
    req.end();
  });
}

/** The kernel's pacing rates (bits/s) of atriumd's end of the connection
 * whose client side is localPort. */
function pacingRates(localPort) {
  const r = spawnSync('ss', ['-tinH', 'state', 'established',
    `( sport = :${srv.port} and dport = :${localPort} )`],
    { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 0, `ss failed: ${r.stderr}`);
  const num = (v, unit) => Number(v) * ({ k: 1e3, K: 1e3, M: 1e6, G: 1e9 }[unit] ?? 1);
  return [...r.stdout.matchAll(/pacing_rate ([\d.]+)([kKMG]?)bps(?:\/([\d.]+)([kKMG]?)bps)?/g)]
    .map((m) => ({ rate: num(m[1], m[2]), max: m[3] !== undefined ? num(m[3], m[4]) : null }));
}

test('a meeting page is marked with the default policy (DSCP 34, AF41)',
  { skip: skipReason ?? false },
  async () => {
    const r = await srv.api('GET', '/api/v1/settings', { token });
    const policies = r.json.settings['qos.policies'].value;
    assert.ok(policies.some((p) => p.url === 'http://127.0.0.1/webmeeting' && p.dscp === 34),
      JSON.stringify(policies));
    const dscps = await capture(async () => {
      for (const p of ['/webmeeting/', '/webmeeting/meeting.js', '/webmeeting/no-such-file']) {
        const res = await get(p);
        assert.ok(res.status === 200 || res.status === 404, `${p}: ${res.status}`);
      }
    });
    assertAll(dscps, 34, 'meeting pages');
  });

test('an API answer is not marked, also on a connection a meeting page marked before',
  { skip: skipReason ?? false }, async () => {
    let res = await get('/webmeeting/');
    assert.equal(res.status, 200);
    const dscps = await capture(async () => {
      res = await get('/api/v1/settings', { authorization: `Bearer ${token}` });
      assert.equal(res.status, 200);
      res = await get('/healthz');
      assert.equal(res.status, 200);
    });
    assertAll(dscps, 0, '/api/v1 and /healthz');
  });

test('the meeting WebSocket is marked for its whole life', { skip: skipReason ?? false },
  async () => {
    let echo;
    const m = await openMeeting(srv, { admin: token });
    const dscps = await capture(async () => {
      const ws = await wsOpen(srv.port, `/webmeeting/ws?meeting=${m.id}`);
      echo = await wsPing(ws, 'hello');
      ws.close();
    });
    assert.equal(echo, 'hello');
    assertAll(dscps, 34, '101 answer and WebSocket frames');
  });

test('behind a trusted reverse proxy the published URL is what policies match',
  { skip: skipReason ?? false }, async () => {
    // The meeting is published at https://portal.example.com/atrium/webmeeting/;
    // the proxy forwards it to /webmeeting/ here (docs/operations/reverse-proxy.md).
    let r = await patch({ 'server.public_url': 'https://portal.example.com/atrium/' });
    assert.equal(r.status, 200, r.text);
    const fwd = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'portal.example.com',
      'x-forwarded-for': '203.0.113.9' };
    let dscps = await capture(async () => {
      const res = await get('/webmeeting/', fwd);
      assert.equal(res.status, 200);
    });
    assertAll(dscps, 34, 'proxied meeting page');
    // The same page asked for under another published host matches no policy.
    dscps = await capture(async () => {
      const res = await get('/webmeeting/', { ...fwd, 'x-forwarded-host': 'other.example.com' });
      assert.equal(res.status, 200);
    });
    assertAll(dscps, 0, 'meeting page under a host no policy names');
    r = await patch({ 'server.public_url': `http://127.0.0.1:${srv.port}` });
    assert.equal(r.status, 200, r.text);
  });

test('a changed policy counts from the next request, without a restart',
  { skip: skipReason ?? false }, async () => {
    const r = await patch({ 'qos.policies': [{ name: 'Meeting EF', dscp: 46, max_rate_mbps: 50,
      url: `http://127.0.0.1:${srv.port}/webmeeting`, include_subdirectories: true,
      any_destination: true }] });
    assert.equal(r.status, 200, r.text);
    let dscps = await capture(async () => {
      const res = await get('/webmeeting/');
      assert.equal(res.status, 200);
    });
    assertAll(dscps, 46, 'meeting page after the change');
    // A port in the policy URL must be the one asked for.
    const other = await patch({ 'qos.policies': [{ name: 'Meeting EF', dscp: 46,
      max_rate_mbps: 50, url: 'http://127.0.0.1:1/webmeeting', include_subdirectories: true,
      any_destination: true }] });
    assert.equal(other.status, 200, other.text);
    dscps = await capture(async () => {
      const res = await get('/webmeeting/');
      assert.equal(res.status, 200);
    });
    assertAll(dscps, 0, 'meeting page, policy for another port');
  });

test('max_rate_mbps limits the connection\'s sending rate', { skip: skipReason ?? false },
  async (t) => {
    const r = await patch({ 'qos.policies': [{ name: 'Slow docs', dscp: 10, max_rate_mbps: 1,
      url: 'http://127.0.0.1/docs', include_subdirectories: true, any_destination: true }] });
    assert.equal(r.status, 200, r.text);
    let res = await get('/docs/cli.html');
    assert.equal(res.status, 200);
    // The keep-alive connection stays open: the kernel shows its limit.
    const port = res.localPort;
    let rates = pacingRates(port);
    assert.equal(rates.length, 1, `one connection from the test: ${JSON.stringify(rates)}`);
    assert.equal(rates[0].max, 1e6, `max pacing rate 1 Mbit/s: ${JSON.stringify(rates)}`);
    assert.ok(rates[0].rate <= 1e6, `pacing rate at most 1 Mbit/s: ${JSON.stringify(rates)}`);

    // Measured too: the page a few times over, ~0.2 MB, cannot leave faster
    // than the limit allows (a lower bound: a slow machine only takes longer).
    // Linux sends the first ten data segments of a connection unpaced, and on
    // lo one segment holds a whole page: those go first, untimed.
    for (let i = 0; i < 10; i++) assert.equal((await get('/docs/cli.html')).status, 200);
    const start = process.hrtime.bigint();
    let bytes = 0;
    for (let i = 0; i < 8; i++) {
      res = await get('/docs/cli.html');
      assert.equal(res.status, 200);
      bytes += res.body.length;
    }
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const mbps = (bytes * 8) / seconds / 1e6;
    t.diagnostic(`${bytes} bytes in ${seconds.toFixed(2)} s = ${mbps.toFixed(2)} Mbit/s`);
    assert.ok(mbps < 1.5, `${bytes} bytes in ${seconds.toFixed(2)} s = ${mbps.toFixed(2)} Mbit/s`);

    // The next request on the same connection matches no policy: unlimited again.
    res = await get('/api/v1/settings', { authorization: `Bearer ${token}` });
    assert.equal(res.status, 200);
    assert.equal(res.localPort, port, 'the same keep-alive connection');
    rates = pacingRates(port);
    assert.equal(rates.length, 1, JSON.stringify(rates));
    assert.equal(rates[0].max, null, `no max pacing rate any more: ${JSON.stringify(rates)}`);
  });
