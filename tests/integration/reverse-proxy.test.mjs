// Issue 6: a real nginx (Debian's /usr/sbin/nginx) started with the
// configuration atriumd generates, in front of atriumd: every listed URL is
// reachable through it, X-Forwarded-* arrive and are believed, and the web
// meeting's WebSocket upgrade completes through the proxy.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startServer, freePort, sleep, nginxMainConf } from './harness.mjs';

const NGINX = process.env.NGINX || '/usr/sbin/nginx';
const haveNginx = fs.existsSync(NGINX);

let srv, token, nginx, nport, dir, list;

const nginxMain = (d, include) => nginxMainConf(d, include);

function request(opts, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: nport, timeout: 5000, ...opts }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

before(async () => {
  if (!haveNginx) return;
  srv = await startServer({ atlas: '<TrustedProxies>127.0.0.1 ::1</TrustedProxies>' });
  token = await srv.login();
  const r = await srv.api('PATCH', '/api/v1/settings', {
    token,
    body: {
      'server.public_url': 'https://atrium.example.com',
      'mobile.app_url': 'https://m.example.com:7443/mobile/',
      'mobile.webapi_url': 'https://m.example.com/telephony/',
      'meeting.enabled': true,
    },
  });
  assert.equal(r.status, 200, r.text);
  list = (await srv.api('GET', '/api/v1/reverse-proxy', { token })).json;

  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'atrium-nginx-'));
  nport = await freePort();
  const conf = await srv.api('GET',
    `/api/v1/reverse-proxy/nginx?listen=127.0.0.1:${nport}&tls=off`, { token });
  assert.equal(conf.status, 200, conf.text);
  await fsp.writeFile(path.join(dir, 'atrium.conf'), conf.text);
  await fsp.writeFile(path.join(dir, 'nginx.conf'), nginxMain(dir, path.join(dir, 'atrium.conf')));
  const check = spawnSync(NGINX, ['-t', '-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e',
    path.join(dir, 'error.log')], { encoding: 'utf8', timeout: 10000 });
  assert.equal(check.status, 0, `nginx -t: ${check.stderr}\n${conf.text}`);
  nginx = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e',
    path.join(dir, 'error.log')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  nginx.stderr.on('data', (d) => { out += d; });
  const deadline = Date.now() + 10000;
  for (;;) {
    try {
      const h = await request({ path: '/', headers: { host: 'nowhere.invalid' } });
      if (h.status) break;
    } catch { /* not yet */ }
    if (nginx.exitCode !== null) throw new Error(`nginx exited: ${out}`);
    if (Date.now() > deadline) throw new Error(`nginx did not start: ${out}`);
    await sleep(50);
  }
});

after(async () => {
  if (nginx && nginx.exitCode === null) {
    nginx.kill('SIGTERM');
    const t = Date.now() + 5000;
    while (nginx.exitCode === null && nginx.signalCode === null && Date.now() < t) await sleep(50);
    if (nginx.exitCode === null && nginx.signalCode === null) nginx.kill('SIGKILL');
  }
  await srv?.stop();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

test('every listed URL is reachable through nginx', { skip: !haveNginx && 'no nginx' }, async () => {
  const names = list.entries.map((e) => e.feature);
  assert.deepEqual(names, ['mobile.app', 'mobile.webapi', 'um', 'meeting', 'docs']);
  // What each feature answers at (or just below) its published path.
  const probe = {
    'mobile.app': ['v1/config', /"urls"/],
    'mobile.webapi': ['', /"telephony-webapi"/],
    um: ['', /UM settings/],
    meeting: ['', /privacy/],
    docs: ['', /Atrium documentation/],
  };
  for (const e of list.entries) {
    const [suffix, want] = probe[e.feature];
    const r = await request({ path: e.path + suffix, headers: { host: e.host } });
    assert.equal(r.status, 200, `${e.url}${suffix}: ${r.status} ${r.text.slice(0, 200)}`);
    assert.match(r.text, want, e.feature);
    assert.match(r.headers.server ?? '', /nginx/, 'answered through nginx');
  }
  // A path the proxy does not forward never reaches atriumd's admin API.
  const admin = await request({ path: '/api/v1/settings', headers: { host: 'atrium.example.com' } });
  assert.equal(admin.status, 404);
  assert.doesNotMatch(admin.text, /atrium\.invalid/);
});

test('X-Forwarded-* set by nginx is believed from the trusted proxy', { skip: !haveNginx && 'no nginx' }, async () => {
  const r = await request({ path: '/telephony/', headers: { host: 'm.example.com' } });
  const doc = JSON.parse(r.text);
  assert.equal(doc.request.via_trusted_proxy, true);
  assert.equal(doc.request.client, '127.0.0.1');
  assert.equal(doc.request.scheme, 'http', 'nginx listens on plain http in this test');
  assert.equal(doc.request.host, 'm.example.com');
  // nginx appends the address it saw to the client's own X-Forwarded-For;
  // atriumd takes the right-most address that is not a trusted proxy. Here the
  // test client itself sits on nginx's trusted loopback address, so the claim
  // to its left is the client; a claim left of an untrusted hop never is.
  const r2 = await request({ path: '/telephony/', headers: { host: 'm.example.com', 'x-forwarded-for': '198.51.100.1' } });
  assert.equal(JSON.parse(r2.text).request.client, '198.51.100.1');
  const r3 = await request({ path: '/telephony/',
    headers: { host: 'm.example.com', 'x-forwarded-for': '198.51.100.1, 203.0.113.5, 127.0.0.1' } });
  assert.equal(JSON.parse(r3.text).request.client, '203.0.113.5');
});

function wsKey() { return crypto.randomBytes(16).toString('base64'); }

function upgrade(pathname, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: nport, path: pathname, timeout: 5000,
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', ...headers } });
    req.on('upgrade', (res, socket, head) => resolve({ status: res.statusCode, headers: res.headers, socket, head }));
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** A masked client frame (RFC 6455 5.2), payload < 126 bytes. */
function frame(opcode, payload) {
  const mask = crypto.randomBytes(4);
  const data = Buffer.from(payload);
  const out = Buffer.alloc(6 + data.length);
  out[0] = 0x80 | opcode;
  out[1] = 0x80 | data.length;
  mask.copy(out, 2);
  for (let i = 0; i < data.length; i++) out[6 + i] = data[i] ^ mask[i % 4];
  return out;
}

/** Reads one unmasked server frame (payload < 126 bytes), bounded in time. */
/** The next server frame (unmasked; 7- or 16-bit lengths). Bytes after it
 * stay on the socket for the next call. */
function readFrame(socket, initial) {
  return new Promise((resolve, reject) => {
    let buf = Buffer.concat([socket.leftover ?? Buffer.alloc(0), initial ?? Buffer.alloc(0)]);
    socket.leftover = null;
    const t = setTimeout(() => { cleanup(); reject(new Error('no frame within 5 s')); }, 5000);
    const tryParse = () => {
      if (buf.length < 2) return false;
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return false;
        len = buf.readUInt16BE(2);
        off = 4;
      }
      if (buf.length < off + len) return false;
      cleanup();
      socket.leftover = buf.subarray(off + len);
      resolve({ fin: !!(buf[0] & 0x80), opcode: buf[0] & 0x0f, payload: buf.subarray(off, off + len) });
      return true;
    };
    const onData = (d) => { buf = Buffer.concat([buf, d]); tryParse(); };
    const cleanup = () => { clearTimeout(t); socket.off('data', onData); };
    if (!tryParse()) socket.on('data', onData);
  });
}

test('the web meeting WebSocket upgrade completes through nginx', { skip: !haveNginx && 'no nginx' }, async () => {
  const meeting = list.entries.find((e) => e.feature === 'meeting');
  assert.equal(meeting.websocket_path, '/webmeeting/ws');
  // A meeting of a user, joined as a guest through nginx.
  assert.equal((await srv.api('POST', '/api/v1/users', { token, body: { name: 'hostess', password: 'hostess-pass-1' } })).status, 201);
  const login = await srv.api('POST', '/client/v1/login', { body: { login: 'hostess', password: 'hostess-pass-1' } });
  assert.equal(login.status, 200, login.text);
  const created = await srv.api('POST', '/client/v1/meetings', { token: login.json.token, body: { title: 'Through the proxy' } });
  assert.equal(created.status, 201, created.text);
  const wsPath = `${meeting.websocket_path}?meeting=${encodeURIComponent(created.json.id)}`;
  const key = wsKey();
  const r = await upgrade(wsPath, {
    host: meeting.host, 'sec-websocket-key': key, origin: 'https://atrium.example.com',
  });
  assert.equal(r.status, 101, r.text);
  const expect = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  assert.equal(r.headers['sec-websocket-accept'], expect);
  assert.equal(r.headers.upgrade.toLowerCase(), 'websocket');
  const { socket } = r;
  try {
    const welcome = await readFrame(socket, r.head);
    assert.equal(welcome.opcode, 0x1);
    const w = JSON.parse(welcome.payload.toString());
    assert.equal(w.type, 'welcome');
    assert.equal(w.role, 'guest');
    // A round trip through the proxy: ping is answered with its data.
    socket.write(frame(0x1, JSON.stringify({ type: 'ping', data: 'through nginx' })));
    const pong = await readFrame(socket);
    assert.equal(pong.opcode, 0x1);
    assert.deepEqual(JSON.parse(pong.payload.toString()), { type: 'pong', data: 'through nginx' });
    socket.write(frame(0x8, Buffer.from([0x03, 0xe8]))); // close 1000
    const close = await readFrame(socket);
    assert.equal(close.opcode, 0x8);
    assert.equal(close.payload.readUInt16BE(0), 1000);
  } finally {
    socket.destroy();
  }

  // A page of another site may not open a guest's socket.
  const foreign = await upgrade(wsPath, {
    host: meeting.host, 'sec-websocket-key': wsKey(), origin: 'https://evil.example',
  });
  assert.equal(foreign.status, 403);
  // Without the upgrade headers: 426, pointing at the proxy configuration.
  const plain = await request({ path: wsPath, headers: { host: meeting.host } });
  assert.equal(plain.status, 426);
});

test('the production configuration (TLS, ports from the URLs) passes nginx -t', { skip: !haveNginx && 'no nginx' }, async () => {
  const conf = await srv.api('GET', '/api/v1/reverse-proxy/nginx', { token });
  assert.equal(conf.status, 200);
  assert.match(conf.text, /listen 7443 ssl;/);
  assert.match(conf.text, /listen 443 ssl;/);
  // The admin fills in the certificate paths; here a throw-away self-signed pair.
  const crt = path.join(dir, 'test.crt'), keyf = path.join(dir, 'test.key');
  const o = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
    '-subj', '/CN=atrium.example.com', '-keyout', keyf, '-out', crt], { encoding: 'utf8', timeout: 30000 });
  if (o.status !== 0) return; // openssl missing: the plain-http run above still covers the blocks
  const filled = conf.text.replace(/\/etc\/nginx\/atrium\/[^;]+\.crt/g, crt)
    .replace(/\/etc\/nginx\/atrium\/[^;]+\.key/g, keyf);
  const d2 = path.join(dir, 'prod');
  await fsp.mkdir(d2);
  await fsp.writeFile(path.join(d2, 'atrium.conf'), filled);
  await fsp.writeFile(path.join(d2, 'nginx.conf'), nginxMain(d2, path.join(d2, 'atrium.conf')));
  const check = spawnSync(NGINX, ['-t', '-p', d2, '-c', path.join(d2, 'nginx.conf'), '-e',
    path.join(d2, 'error.log')], { encoding: 'utf8', timeout: 10000 });
  assert.equal(check.status, 0, `nginx -t: ${check.stderr}\n${filled}`);
});

test('published paths are refused unless safe in an nginx location', async () => {
  const s = await startServer();
  try {
    const t = await s.login();
    const r = await s.api('PATCH', '/api/v1/settings', { token: t, body: { 'um.url': 'http://um.example.com/a;deny;/' } });
    assert.equal(r.status, 422, r.text);
    const e = r.json.errors.find((x) => x.key === 'um.url');
    assert.ok(e, r.text);
    assert.match(e.message, /^The path of um\.url holds ";" at position 3; .*nginx.*location.*letters/);
    for (const [key, url] of [['meeting.url', 'https://meet.example.com/a/../b/'],
      ['mobile.app_url', 'https://m.example.com/a%20b/'], ['server.public_url', 'https://atrium.example.com/x$y']]) {
      const q = await s.api('PATCH', '/api/v1/settings', { token: t, body: { [key]: url } });
      assert.equal(q.status, 422, `${key} ${url}: ${q.text}`);
      assert.ok(q.json.errors.some((x) => x.key === key && x.message.includes(key)), q.text);
    }
  } finally { await s.stop(); }
});

// Odd but accepted paths: every one must still give a configuration nginx takes.
const NASTY = [
  ['https://atrium.example.com/~base.d-ir_', 'http://um.example.com/~user/a..b/', 'https://meet.example.com/.hidden/-/_/',
    'https://m.example.com/A-Z_a-z.0-9~/', 'https://m.example.com/x/y/z/w/v'],
  ['https://atrium.example.com', 'http://um.example.com/', 'https://meet.example.com/...x/', 'https://m.example.com:7443/', 'https://m.example.com:7443/~'],
];
test('nginx -t accepts the generated block for odd accepted paths', { skip: !haveNginx && 'no nginx' }, async () => {
  const s = await startServer();
  try {
    const t = await s.login();
    for (const [i, [base, um, meeting, app, webapi]] of NASTY.entries()) {
      const r = await s.api('PATCH', '/api/v1/settings', {
        token: t,
        body: { 'server.public_url': base, 'um.url': um, 'meeting.enabled': true, 'meeting.url': meeting, 'mobile.app_url': app, 'mobile.webapi_url': webapi },
      });
      assert.equal(r.status, 200, r.text);
      const conf = await s.api('GET', '/api/v1/reverse-proxy/nginx?listen=127.0.0.1:1&tls=off', { token: t });
      assert.equal(conf.status, 200, conf.text);
      assert.doesNotMatch(conf.text, /left out/);
      const d = await fsp.mkdtemp(path.join(os.tmpdir(), `atrium-nginx-odd${i}-`));
      try {
        await fsp.writeFile(path.join(d, 'atrium.conf'), conf.text);
        await fsp.writeFile(path.join(d, 'nginx.conf'), nginxMain(d, path.join(d, 'atrium.conf')));
        const check = spawnSync(NGINX, ['-t', '-p', d, '-c', path.join(d, 'nginx.conf'), '-e', path.join(d, 'error.log')],
          { encoding: 'utf8', timeout: 10000 });
        assert.equal(check.status, 0, `nginx -t: ${check.stderr}\n${conf.text}`);
        for (const p of [new URL(um).pathname, new URL(meeting).pathname]) assert.ok(conf.text.includes(`location ${p.endsWith('/') ? p : p + '/'} {`), `${p}\n${conf.text}`);
      } finally { await fsp.rm(d, { recursive: true, force: true }); }
    }
  } finally { await s.stop(); }
});
