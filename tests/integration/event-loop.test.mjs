// Long-lived connections live on one event loop: 5,000 WebSockets open at
// once on a meeting's socket each get their pong, and atriumd's thread count
// stays what it was (no thread per connection); they all close at shutdown.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, wsOpen, threadCount, sleep } from './harness.mjs';
import { openMeeting, wsPing } from './meeting-client.mjs';

const SOCKETS = 5000;
let srv, wsPath;

before(async () => {
  // 500 handshakes in flight from one address is a load test, not a client:
  // the per-address connection limit is raised for it.
  srv = await startServer({ env: { ATRIUM_MEETING_ENABLED: 'true' }, atlas: '<Limits perAddress="2000"/>' });
  wsPath = `/webmeeting/ws?meeting=${(await openMeeting(srv)).id}`;
});
after(async () => { await srv?.stop(); });

/** Runs fn over items with at most `width` in flight. */
async function inBatches(items, width, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }));
  return out;
}

test(`${SOCKETS} WebSockets at once, a pong each, no thread per connection`, { timeout: 120000 },
  async () => {
    const threadsBefore = threadCount(srv.proc.pid);
    assert.ok(threadsBefore > 0);
    const started = Date.now();
    const sockets = await inBatches([...Array(SOCKETS).keys()], 500,
      (i) => wsOpen(srv.port, wsPath, { timeoutMs: 30000 }));
    assert.equal(sockets.length, SOCKETS);
    // Every one is open at the same time; each asks and is answered.
    const echoes = await inBatches(sockets, 1000, (ws, i) => wsPing(ws, `ping ${i}`, 30000));
    for (let i = 0; i < SOCKETS; i++) assert.equal(echoes[i], `ping ${i}`);
    assert.equal(sockets.filter((s) => s.closed()).length, 0, 'all still open');
    const threadsDuring = threadCount(srv.proc.pid);
    assert.equal(threadsDuring, threadsBefore,
      `threads before ${threadsBefore}, with ${SOCKETS} WebSockets open ${threadsDuring}`);
    // The server reports them, and others are still served meanwhile.
    const token = await srv.login();
    const m = await srv.api('GET', '/metrics', { token });
    const open = /^atrium_meeting_websockets (\d+)$/m.exec(m.text);
    assert.ok(open, 'atrium_meeting_websockets in /metrics');
    assert.equal(Number(open[1]), SOCKETS);
    const h = await srv.api('GET', '/healthz');
    assert.equal(h.status, 200);
    for (const ws of sockets) ws.close();
    // Closed from our side: the server forgets them within a bounded wait.
    let left = SOCKETS;
    for (let i = 0; i < 100 && left > 0; i++) {
      await sleep(100);
      const mm = await srv.api('GET', '/metrics', { token });
      left = Number(/^atrium_meeting_websockets (\d+)$/m.exec(mm.text)[1]);
    }
    assert.equal(left, 0, 'every WebSocket closed on the server');
    assert.ok(Date.now() - started < 120000);
  });

test('open WebSockets are told the server is going and closed at shutdown', async () => {
  const sockets = await Promise.all([...Array(20).keys()].map(() => wsOpen(srv.port, wsPath)));
  const t0 = Date.now();
  await srv.stop();
  srv = null;
  for (const ws of sockets) {
    let frame = await ws.next(5000);
    while (typeof frame === 'string') frame = await ws.next(5000); // the welcome
    assert.equal(frame.close, 1001, 'a close frame with 1001 (going away)');
  }
  assert.ok(Date.now() - t0 < 10000, 'shutdown took less than 10 s');
});
