// The daemon as an operator runs it: `atriumd -n` checks a file, HTTPS with a
// configured certificate, readiness through sd_notify, journald priority
// prefixes, and a clean stop on SIGTERM. Real processes on loopback; every
// wait bounded.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { ATRIUMD, DEFAULT_ADMIN_PASSWORD, freePort, sleep, waitExit, wsOpen } from './harness.mjs';
import { wsPing } from './meeting-client.mjs';

const dirs = [];
const procs = [];
after(() => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function tempDir() {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'atrium-daemon-'));
  dirs.push(d);
  return d;
}

function atlasXml(port, dataDir, extra = '') {
  return `<?xml version="1.0"?>\n<Atlas>\n  <Listen address="127.0.0.1" port="${port}"/>\n` +
    `  <DataDirectory>${dataDir}</DataDirectory>\n${extra}</Atlas>\n`;
}

/** Starts atriumd and resolves once `ready(outputSoFar)` is true (≤ 10 s). */
function startDaemon(args, env, ready) {
  const proc = spawn(ATRIUMD, args, {
    env: { ...process.env, ATRIUM_ADMIN_PASSWORD: DEFAULT_ADMIN_PASSWORD, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  procs.push(proc);
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`atriumd not ready in 10 s:\n${out}`)), 10000);
    const poll = setInterval(() => {
      if (ready(out)) { clearInterval(poll); clearTimeout(t); resolve({ proc, output: () => out }); }
      if (proc.exitCode !== null) {
        clearInterval(poll); clearTimeout(t);
        reject(new Error(`atriumd exited ${proc.exitCode}:\n${out}`));
      }
    }, 50);
  });
}

test('atriumd -n accepts a good file and names the line of a bad one', () => {
  const dir = tempDir();
  const good = path.join(dir, 'good.xml');
  fs.writeFileSync(good, atlasXml(8080, path.join(dir, 'data')));
  let r = spawnSync(ATRIUMD, ['-n', '-c', good], { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.match(r.stdout + r.stderr, /OK/);
  assert.ok(!fs.existsSync(path.join(dir, 'data')), '-n must not create the data directory');

  const bad = path.join(dir, 'bad.xml');
  fs.writeFileSync(bad, '<?xml version="1.0"?>\n<Atlas>\n  <Listen address="127.0.0.1" port="80x"/>\n</Atlas>\n');
  r = spawnSync(ATRIUMD, ['-n', '-c', bad], { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 1);
  assert.match(r.stdout + r.stderr, /line 3/);
  assert.match(r.stdout + r.stderr, /port/i);

  r = spawnSync(ATRIUMD, ['-n', '-c', path.join(dir, 'missing.xml')], { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 1);
  assert.match(r.stdout + r.stderr, /missing\.xml/);
});

test('HTTPS with a configured certificate; the session cookie is Secure', async () => {
  const dir = tempDir();
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', key, '-out', cert], { encoding: 'utf8', timeout: 30000 });
  assert.equal(gen.status, 0, gen.stderr);
  const port = await freePort();
  const atlas = path.join(dir, 'atlas.xml');
  fs.writeFileSync(atlas, atlasXml(port, path.join(dir, 'data'),
    `  <Tls certificate="${cert}" key="${key}"/>\n`));
  const d = await startDaemon(['-c', atlas], { ATRIUM_MEETING_ENABLED: 'true' },
    (out) => /listening on https:/.test(out));
  assert.match(d.output(), new RegExp(`https://127\\.0\\.0\\.1:${port}`));

  const ca = fs.readFileSync(cert);
  const res = await new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port, path: '/api/v1/session', method: 'POST', ca, timeout: 10000,
      headers: { 'content-type': 'application/json' },
    }, (r) => {
      let body = '';
      r.on('data', (c) => { body += c; });
      r.on('end', () => resolve({ status: r.statusCode, headers: r.headers, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(JSON.stringify({ user: 'admin', password: DEFAULT_ADMIN_PASSWORD }));
  });
  assert.equal(res.status, 200, res.body);
  const cookie = [].concat(res.headers['set-cookie'] || []).join('\n');
  assert.match(cookie, /atrium_session=/);
  assert.match(cookie, /;\s*Secure/i);
  assert.match(cookie, /HttpOnly/i);

  // A WebSocket over TLS: libmicrohttpd keeps the TLS session and relays
  // the plain bytes; messages of every size class come back whole (a
  // meeting's socket answers a ping with its data).
  const call = (method, p, body, token) => new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: p, method, ca, timeout: 10000,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } },
    (r) => {
      let b = '';
      r.on('data', (c) => { b += c; });
      r.on('end', () => resolve({ status: r.statusCode, json: b ? JSON.parse(b) : undefined }));
    });
    req.on('error', reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
  const admin = JSON.parse(res.body).token;
  assert.equal((await call('POST', '/api/v1/users', { name: 'tlshost', password: 'tls-host-pass' }, admin)).status, 201);
  const user = (await call('POST', '/client/v1/login', { login: 'tlshost', password: 'tls-host-pass' })).json.token;
  const meeting = await call('POST', '/client/v1/meetings', { title: 'Over TLS' }, user);
  assert.equal(meeting.status, 201);
  const ws = await wsOpen(port, `/webmeeting/ws?meeting=${meeting.json.id}`, { ca });
  for (const size of [4, 200, 60000]) {
    const text = 'é'.repeat(size / 2);
    assert.equal(await wsPing(ws, text), text);
  }
  ws.close();

  // Plain HTTP on the TLS port gets no HTTP answer.
  let plainOk = false;
  try {
    const r = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(3000) });
    plainOk = r.ok;
  } catch { /* expected: the TLS listener does not speak plain HTTP */ }
  assert.equal(plainOk, false);

  d.proc.kill('SIGTERM');
  assert.equal(await waitExit(d.proc, 10000), 0);
});

test('readiness through sd_notify, journald prefixes, clean SIGTERM', async () => {
  // python3 comes with meson (scripts/deps.sh build), so it is always here.
  const py = spawnSync('python3', ['-c', 'import socket'], { encoding: 'utf8', timeout: 10000 });
  assert.equal(py.status, 0, `python3 is needed to receive sd_notify datagrams: ${py.stderr ?? py.error}`);
  const dir = tempDir();
  const sock = path.join(dir, 'notify.sock');
  // A unix datagram socket like systemd's: print every message, stop after STOPPING=1 or 15 s.
  const listener = spawn('python3', ['-c', `
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); s.settimeout(0.5)
print("bound", flush=True)
end = time.time() + 15
while time.time() < end:
    try: m = s.recv(4096).decode()
    except socket.timeout: continue
    print(m.replace("\\n", "|"), flush=True)
    if "STOPPING=1" in m: break
`, sock], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(listener);
  let notes = '';
  listener.stdout.on('data', (d) => { notes += d; });
  for (let i = 0; i < 100 && !notes.includes('bound'); i++) await sleep(50);
  assert.ok(notes.includes('bound'), 'notify listener did not start');

  const port = await freePort();
  const atlas = path.join(dir, 'atlas.xml');
  fs.writeFileSync(atlas, atlasXml(port, path.join(dir, 'data')));
  const d = await startDaemon(['-c', atlas], { NOTIFY_SOCKET: sock, JOURNAL_STREAM: '8:12345' },
    (out) => /listening on http:/.test(out));
  for (let i = 0; i < 100 && !notes.includes('READY=1'); i++) await sleep(50);
  assert.match(notes, /READY=1/);

  // Under journald every log line carries a priority prefix, not a timestamp.
  const logLines = d.output().split('\n').filter((l) => l.startsWith('<'));
  assert.ok(logLines.length >= 1, d.output());
  for (const l of logLines) assert.match(l, /^<[3-7]>/);
  assert.ok(!/admin-test-pass/.test(d.output()), 'the admin password must not be logged');

  d.proc.kill('SIGTERM');
  assert.equal(await waitExit(d.proc, 10000), 0, d.output());
  for (let i = 0; i < 100 && !notes.includes('STOPPING=1'); i++) await sleep(50);
  assert.match(notes, /STOPPING=1/);
  listener.kill();
});
