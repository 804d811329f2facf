// Connection limits (<Limits> in atlas.xml): a slowloris from one loopback
// address (127.0.12.2) cannot keep the admin on 127.0.0.1 out; the request
// head has a deadline that trickling bytes does not extend; a full server
// makes room by closing the connection that has waited longest for its head.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { startServer, sleep } from './harness.mjs';

/** A socket from `localAddress` that sends a request head one byte at a time
 * and never finishes it. Resolves {sock, closed: Promise<ms open>}. */
function trickler(port, localAddress, everyMs) {
  return new Promise((resolve) => {
    const started = Date.now();
    const sock = net.connect({ host: '127.0.0.1', port, localAddress });
    let timer = null;
    const closed = new Promise((res) => {
      sock.on('close', () => { clearInterval(timer); res(Date.now() - started); });
    });
    sock.on('error', () => {});
    sock.on('connect', () => {
      sock.write('GET /healthz HTTP/1.1\r\nHost: atrium\r\nX-Slow: ');
      timer = setInterval(() => { if (!sock.destroyed) sock.write('a'); }, everyMs);
      resolve({ sock, closed, connected: true });
    });
    sock.on('close', () => resolve({ sock, closed, connected: false }));
  });
}

/** GET /api/v1/settings on a new connection from localAddress; {status, ms}. */
function freshGet(srv, token, localAddress = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const sock = net.connect({ host: '127.0.0.1', port: srv.port, localAddress });
    let data = '';
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('no answer in 5 s')); }, 5000);
    sock.on('connect', () => sock.write(`GET /api/v1/settings HTTP/1.1\r\nHost: atrium\r\n`
      + `Authorization: Bearer ${token}\r\nConnection: close\r\n\r\n`));
    sock.setEncoding('latin1');
    sock.on('data', (d) => { data += d; });
    sock.on('error', () => {});
    sock.on('close', () => {
      clearTimeout(timer);
      resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(data)?.[1] ?? 0), ms: performance.now() - t0 });
    });
  });
}

async function timedGet(srv, token) {
  const t0 = performance.now();
  const r = await srv.api('GET', '/api/v1/settings', { token, timeoutMs: 5000 });
  return { status: r.status, ms: performance.now() - t0 };
}

const servers = [];
after(async () => { for (const s of servers) await s.stop(); });

describe('connection limits', () => {
  test('a slowloris from 127.0.12.2 leaves the admin on 127.0.0.1 answered in under a second', async () => {
    const srv = await startServer();
    servers.push(srv);
    const token = await srv.login();
    const socks = [];
    const deadline = Date.now() + 50000;
    // 1,500 trickling sockets from one address, in batches.
    for (let i = 0; i < 1500 && Date.now() < deadline; i += 100) {
      const batch = await Promise.all(Array.from({ length: 100 }, () => trickler(srv.port, '127.0.12.2', 1000)));
      socks.push(...batch);
    }
    const latencies = [];
    const until = Date.now() + 8000;
    while (Date.now() < until) {
      const r = latencies.length % 2 ? await timedGet(srv, token) : await freshGet(srv, token);
      assert.equal(r.status, 200);
      latencies.push(r.ms);
      await sleep(200);
    }
    await sleep(500);
    const open = socks.filter((s) => !s.sock.destroyed && s.sock.readyState === 'open').length;
    for (const s of socks) s.sock.destroy();
    const max = Math.max(...latencies);
    assert.ok(max < 1000, `admin took ${max.toFixed(0)} ms`);
    // perAddress is 128 by default; a few more may slip in while accepts race.
    assert.ok(open <= 128 + 8, `${open} attacker connections held`);
    assert.ok(open >= 100, `${open}: the limit, not something else, refused them`);
    const out = await srv.waitOutput(/127\.0\.12\.2 has \d+ connections open/);
    assert.equal((out.match(/127\.0\.12\.2 has \d+ connections open/g) ?? []).length, 1,
      'one log line for the address, not one per connection');
    const m = await srv.api('GET', '/metrics', { token });
    const refused = Number(/atrium_http_connections_refused_total\{reason="per_address"\} (\d+)/.exec(m.text)?.[1]);
    assert.ok(refused >= 1000, `refused ${refused}`);
  });

  test('the request head has a deadline that trickled bytes do not extend', async () => {
    const srv = await startServer({ atlas: '<Limits headerTimeout="2"/>' });
    servers.push(srv);
    const s = await trickler(srv.port, '127.0.12.6', 200);
    assert.ok(s.connected);
    const ms = await Promise.race([s.closed, sleep(8000).then(() => -1)]);
    s.sock.destroy();
    assert.ok(ms >= 1800 && ms < 5000, `closed after ${ms} ms`);
    // The same tick closed the harness's idle keep-alive connection (an idle
    // connection waits for its next head): let this process see that FIN
    // before the pool hands the socket out again.
    await sleep(300);
    // A prompt client is not affected, keep-alive included.
    const token = await srv.login();
    for (let i = 0; i < 3; i++) assert.equal((await timedGet(srv, token)).status, 200);
    const m = await srv.api('GET', '/metrics', { token });
    assert.match(m.text, /atrium_http_header_timeouts_total [1-9]/);
  });

  test('a full server closes the longest-waiting head to make room', async () => {
    const srv = await startServer({ atlas: '<Limits connections="60" perAddress="40" loopbackReserve="4"/>' });
    servers.push(srv);
    const token = await srv.login();
    const socks = [];
    for (const addr of ['127.0.12.7', '127.0.12.8']) {
      socks.push(...await Promise.all(Array.from({ length: 40 }, () => trickler(srv.port, addr, 1000))));
    }
    await sleep(1200);
    const r = await freshGet(srv, token);
    for (const s of socks) s.sock.destroy();
    assert.equal(r.status, 200);
    assert.ok(r.ms < 1000, `${r.ms} ms`);
    const m = await srv.api('GET', '/metrics', { token });
    assert.match(m.text, /atrium_http_connections_evicted_total [1-9]/);
  });

  test('bad <Limits> values are refused at start, naming the attribute', async () => {
    for (const [xml, re] of [
      ['<Limits perAddress="0"/>', /perAddress="0".*from 1/],
      ['<Limits connections="10"/>', /connections="10".*from 16/],
      ['<Limits headerTimeout="x"/>', /headerTimeout/],
      ['<Limits connections="100" loopbackReserve="100"/>', /loopbackReserve \(100\) must be smaller/],
      ['<Limits perIp="3"/>', /perIp/],
    ]) {
      await assert.rejects(startServer({ atlas: xml, startTimeoutMs: 5000 }), (e) => re.test(e.message), xml);
    }
  });
});
