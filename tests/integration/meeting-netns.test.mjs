// Screen sharing with a viewer behind a real slow link: atriumd runs in a
// network namespace with two veth pairs, one unshaped towards the test (the
// presenter and two fast viewers), one through `tbf` at 2 Mbit/s towards a
// second namespace where the slow viewer runs as a process of its own. This
// kernel has no netem: the link is a rate and a queue, no added delay.
// The presenter pans its page diagonally, so every frame is a whole
// picture (a plain scroll would go as small deltas that fit 2 Mbit/s).
// Asserts: the slow viewer gets a lower tier and a bounded delay, the fast
// viewers' tier and frame rate do not change when it joins.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { ATRIUMD, REPO, apiCall, sleep } from './harness.mjs';
import { meetingConnect, screenRegion, textPage } from './meeting-client.mjs';

const tag = String(process.pid % 100000);
const SRV = `at16-srv${tag}`, SLOW = `at16-slow${tag}`;
const PORT = 8016;
const HOST_SIDE = '10.16.1.2', SRV_A = '10.16.1.1', SRV_B = '10.16.2.1', SLOW_SIDE = '10.16.2.2';
const W = 640, H = 360, PAGE_H = 1600, FPS = 15, RATE = 2e6;

function sh(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 15000 });
  return { code: r.status, out: (r.stdout || '') + (r.stderr || '') };
}
function must(cmd, args) {
  const r = sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.out.trim()}`);
}

let skip = null;
if (process.getuid?.() !== 0) skip = 'network namespaces need root';
else if (sh('tc', ['-V']).code !== 0) skip = 'tc (iproute2) is missing';

describe('a viewer behind a 2 Mbit/s link (tbf in a network namespace)', { skip: skip ?? false }, () => {
  let daemon, dir, out = '';
  const base = `http://${SRV_A}:${PORT}`;
  const server = { port: PORT, api: (m, p, o) => apiCall(base, m, p, o) };
  const open = [];

  before(async () => {
    must('ip', ['netns', 'add', SRV]);
    must('ip', ['netns', 'add', SLOW]);
    must('ip', ['link', 'add', `at16a${tag}`, 'type', 'veth', 'peer', 'name', `at16b${tag}`, 'netns', SRV]);
    must('ip', ['addr', 'add', `${HOST_SIDE}/24`, 'dev', `at16a${tag}`]);
    must('ip', ['link', 'set', `at16a${tag}`, 'up']);
    must('ip', ['-n', SRV, 'addr', 'add', `${SRV_A}/24`, 'dev', `at16b${tag}`]);
    must('ip', ['-n', SRV, 'link', 'set', `at16b${tag}`, 'up']);
    must('ip', ['-n', SRV, 'link', 'set', 'lo', 'up']);
    must('ip', ['-n', SRV, 'link', 'add', `at16c${tag}`, 'type', 'veth', 'peer', 'name', `at16d${tag}`, 'netns', SLOW]);
    must('ip', ['-n', SRV, 'addr', 'add', `${SRV_B}/24`, 'dev', `at16c${tag}`]);
    must('ip', ['-n', SRV, 'link', 'set', `at16c${tag}`, 'up']);
    must('ip', ['-n', SLOW, 'addr', 'add', `${SLOW_SIDE}/24`, 'dev', `at16d${tag}`]);
    must('ip', ['-n', SLOW, 'link', 'set', `at16d${tag}`, 'up']);
    must('ip', ['-n', SLOW, 'link', 'set', 'lo', 'up']);
    // What the server sends the slow namespace: 2 Mbit/s, a queue of at most 100 ms.
    must('ip', ['netns', 'exec', SRV, 'tc', 'qdisc', 'add', 'dev', `at16c${tag}`, 'root', 'tbf',
      'rate', '2mbit', 'burst', '16kb', 'latency', '100ms']);
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'atrium-at16-'));
    await fsp.mkdir(path.join(dir, 'data'));
    await fsp.writeFile(path.join(dir, 'atlas.xml'), '<?xml version="1.0"?><Atlas>'
      + `<Listen address="0.0.0.0" port="${PORT}"/><DataDirectory>${path.join(dir, 'data')}</DataDirectory></Atlas>\n`);
    daemon = spawn('ip', ['netns', 'exec', SRV, ATRIUMD, '-c', path.join(dir, 'atlas.xml')], {
      env: { ...process.env, ATRIUM_ADMIN_PASSWORD: 'netns-pass-1', ATRIUM_MEETING_ENABLED: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'] });
    daemon.stdout.on('data', (d) => { out += d; });
    daemon.stderr.on('data', (d) => { out += d; });
    for (let i = 0; i < 200; i++) {
      try { if ((await apiCall(base, 'GET', '/healthz', { timeoutMs: 500 })).status === 200) break; } catch { /* starting */ }
      await sleep(50);
    }
  });
  after(async () => {
    for (const c of open) c.close();
    if (daemon && daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await new Promise((r) => { const t = setTimeout(() => { daemon.kill('SIGKILL'); r(); }, 10000); daemon.once('exit', () => { clearTimeout(t); r(); }); });
    }
    sh('ip', ['link', 'del', `at16a${tag}`]);
    sh('ip', ['netns', 'del', SLOW]);
    sh('ip', ['netns', 'del', SRV]);
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  test('the slow viewer gets a lower tier and bounded delay; the fast ones keep theirs', { timeout: 90000 }, async (t) => {
    const admin = (await server.api('POST', '/api/v1/session', { body: { user: 'admin', password: 'netns-pass-1' } })).json.token;
    const users = ['pres', 'fa', 'fb', 'slow'];
    const imp = await server.api('POST', '/api/v1/users/import', { token: admin, body: users.map((name) => ({ name, password: 'netns-user-1' })) });
    assert.equal(imp.status, 200, imp.text + out);
    const tok = {};
    for (const n of users) tok[n] = (await server.api('POST', '/client/v1/login', { body: { login: n, password: 'netns-user-1' } })).json.token;
    const m = (await server.api('POST', '/client/v1/meetings', { token: tok.pres, body: { title: 'Slow link' } })).json;
    const join = async (n) => { const c = await meetingConnect(server, m.id, { token: tok[n], sock: { host: SRV_A } }); open.push(c); return c; };
    const presenter = await join('pres');
    const page = textPage(W, PAGE_H);
    let seq = 0, scrolling = true;
    // When each frame left the presenter: on a busy machine it sends fewer
    // than FPS, and a viewer can only be held to what was sent.
    const sentAt = [];
    const offered = (a, b) => sentAt.filter((x) => x >= a && x < b).length / ((b - a) / 1000);
    const sender = (async () => {
      const t0 = Date.now();
      while (scrolling) {
        presenter.sendBinary(screenRegion(page, W, PAGE_H, H, seq * 6, seq, { pan: seq * 5 }));
        sentAt.push(Date.now());
        seq++;
        await sleep(Math.max(0, t0 + (seq * 1000) / FPS - Date.now()));
      }
    })();
    const watchFast = (c) => {
      const seen = [];
      let stop = false;
      const loop = (async () => {
        while (!stop) {
          let f;
          try { f = await c.waitFor((x) => x.type === '#frame', 500); } catch { continue; }
          seen.push(f);
          c.send({ type: 'ack', frame: f.seq, decode_ms: 0 });
        }
      })();
      return { seen, async stop() { stop = true; await loop; } };
    };
    const fa = watchFast(await join('fa'));
    const fb = watchFast(await join('fb'));
    await sleep(3000);
    const tA = Date.now();
    await sleep(4000);
    const tB = Date.now();
    const ticket = (await server.api('POST', `/client/v1/meetings/${m.id}/ticket`, { token: tok.slow })).json.ticket;
    const slowProc = spawn('ip', ['netns', 'exec', SLOW, process.execPath, path.join(REPO, 'tests/integration/meeting-viewer.mjs'),
      SRV_B, String(PORT), m.id, ticket, '14000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let slowOut = '', slowErr = '';
    slowProc.stdout.on('data', (d) => { slowOut += d; });
    slowProc.stderr.on('data', (d) => { slowErr += d; });
    const slowDone = new Promise((r) => slowProc.once('exit', r));
    await sleep(7000);
    const tC = Date.now();
    await sleep(5000);
    const tD = Date.now();
    await slowDone;
    presenter.send({ type: 'stats' });
    const stats = await presenter.type('stats', 5000);
    scrolling = false;
    await sender;
    await Promise.all([fa.stop(), fb.stop()]);

    const slow = slowOut.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((f) => f.seq !== undefined);
    assert.ok(slow.length > 10, `slow viewer frames: ${slow.length}; ${slowErr}`);
    const rate = (seen, a, b) => seen.filter((f) => f.at >= a && f.at < b && f.tier !== 'lossless').length / ((b - a) / 1000);
    for (const v of [fa, fb]) {
      const r1 = rate(v.seen, tA, tB), r2 = rate(v.seen, tC, tD);
      const o1 = offered(tA, tB), o2 = offered(tC, tD);
      assert.ok(o1 >= FPS * 0.5, `the presenter sent only ${o1} fps: the machine is too busy for this test`);
      assert.ok(r1 >= o1 * 0.8, `fast viewer ${r1} of ${o1} fps`);
      // The share of the frames it gets does not change when the slow one joins.
      assert.ok(Math.abs(r2 / o2 - r1 / o1) <= 0.15, `fast viewer ${r1} of ${o1} fps -> ${r2} of ${o2} fps`);
      assert.deepEqual([...new Set(v.seen.filter((f) => f.at >= tA && f.at < tD).map((f) => f.tier))], ['high']);
    }
    const late = slow.filter((f) => f.at >= tC && f.at < tD);
    assert.ok(late.length > 0);
    assert.ok(late.every((f) => f.tier !== 'high'), `slow tiers ${[...new Set(late.map((f) => f.tier))]}`);
    // Delay beyond the frame's own time on the wire.
    const extra = late.map((f) => f.delay - (f.bytes * 8 * 1000) / RATE).sort((a, b) => a - b);
    const p95 = extra[Math.floor(extra.length * 0.95)];
    const slowFps = late.length / ((tD - tC) / 1000);
    t.diagnostic(JSON.stringify({ slowFps, tiers: [...new Set(late.map((f) => f.tier))], p50: extra[Math.floor(extra.length / 2)], p95,
      bytes: Math.round(late.reduce((s, f) => s + f.bytes, 0) / late.length), stats }));
    assert.ok(p95 < 400, `p95 extra delay ${p95} ms`);
    assert.ok(slowFps >= 3, `slow viewer ${slowFps} fps`);
  });
});
