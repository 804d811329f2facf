// Integration-test harness: starts a real atriumd on a free loopback port with
// a temporary data directory, and offers small helpers for the REST API and
// for atriumctl. Every wait is bounded.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sharedPostgres } from './postgres.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..');
export const ATRIUMD = process.env.ATRIUMD || path.join(REPO, 'build', 'atriumd');
/** tests/tools/store-tool of the same build: rows of a chosen age. */
export const STORE_TOOL = process.env.ATRIUM_STORE_TOOL || path.join(path.dirname(ATRIUMD), 'tests', 'tools', 'store-tool');
export const ATRIUMCTL = process.env.ATRIUMCTL || path.join(REPO, 'build', 'atriumctl');
export const DEFAULT_ADMIN_PASSWORD = 'admin-test-pass-1';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** opts.atlas with login limits a test suite does not run out of: the many
 * logins of a suite, right and deliberately wrong, come from one address and
 * a few accounts. Tests of the login throttle itself ask for the shipped
 * limits with productionLogins. */
function testLimits(opts) {
  const atlas = opts.atlas ?? '';
  if (opts.productionLogins || /login(s|Failures)Per/.test(atlas)) return atlas;
  const logins = 'loginsPerSource="100000" loginsPerAccount="100000" loginFailuresPerSource="100000"';
  if (/<Limits\b/.test(atlas)) return atlas.replace(/<Limits\b/, `<Limits ${logins}`);
  return `${atlas}<Limits ${logins}/>`;
}

/** A free TCP port on 127.0.0.1 (bind to 0, read, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A UDP port free on both 0.0.0.0 and :: right now. */
export async function freeUdpPort() {
  for (let i = 0; i < 20; i++) {
    const s = dgram.createSocket('udp4');
    await new Promise((res, rej) => { s.once('error', rej); s.bind(0, '0.0.0.0', res); });
    const p = s.address().port;
    s.close();
    const s6 = dgram.createSocket({ type: 'udp6', ipv6Only: true });
    const ok = await new Promise((res) => {
      s6.once('error', () => res(false));
      s6.bind(p, '::', () => res(true));
    });
    try { s6.close(); } catch { /* not bound */ }
    if (ok) return p;
  }
  throw new Error('no free UDP port');
}

function xmlEscape(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

/** fetch with a time limit. */
async function fetchT(url, init = {}, ms = 10000) {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), ms);
  try {
    return await fetch(url, { ...init, signal: ac.signal, redirect: 'manual' });
  } finally {
    clearTimeout(t);
  }
}

/** Waits for a child process to exit, at most ms; resolves the exit code
 * (or the signal name) or null on timeout. */
export function waitExit(proc, ms) {
  if (proc.exitCode !== null || proc.signalCode !== null) {
    return Promise.resolve(proc.exitCode ?? proc.signalCode);
  }
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(null), ms);
    proc.once('exit', (code, sig) => { clearTimeout(t); resolve(code ?? sig); });
  });
}

/** Low-level HTTP call used by server.api(). */
export async function apiCall(baseUrl, method, p, { body, token, headers = {}, raw, timeoutMs = 10000 } = {}) {
  const h = { ...headers };
  let payload;
  if (raw !== undefined) {
    payload = raw;
  } else if (body !== undefined) {
    payload = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
  }
  if (token) h.authorization = `Bearer ${token}`;
  const res = await fetchT(baseUrl + p, { method, headers: h, body: payload }, timeoutMs);
  const text = await res.text();
  let json;
  try { json = text.length ? JSON.parse(text) : undefined; } catch { json = undefined; }
  return { status: res.status, headers: res.headers, json, text };
}

/**
 * Starts atriumd. opts: {env, atlas (extra XML inside <Atlas>), dataDir,
 * adminPassword, keep, startTimeoutMs, imDays, journalDays (the retention
 * days, 90 and 365 unless given; null leaves the element out), address
 * (to listen on, default 127.0.0.1), port (default a free one)}.
 *
 * ATRIUM_TEST_STORE=postgresql runs every server that has no <Store> of its
 * own on PostgreSQL: one throwaway server per test process
 * (tests/integration/postgres.mjs), a new database per atriumd.
 */
export const TEST_STORE = process.env.ATRIUM_TEST_STORE || 'sqlite';
const pgDatabases = new Map(); /* data directory -> database */

export async function startServer(opts = {}) {
  const adminPassword = opts.adminPassword ?? DEFAULT_ADMIN_PASSWORD;
  const address = opts.address ?? '127.0.0.1';
  const port = opts.port ?? await freePort();
  let store = '', storeOfDir = null, pgConninfo = null;
  if (TEST_STORE === 'postgresql' && !/<Store\b/.test(opts.atlas ?? '')) {
    // A restart on the same data directory finds the same database.
    const pg = await sharedPostgres();
    let db = opts.dataDir && pgDatabases.get(opts.dataDir);
    if (!db) db = pg.createDb();
    pgConninfo = pg.conninfo(db);
    store = `<Store backend="postgresql" conninfo="${xmlEscape(pgConninfo)}"/>`;
    storeOfDir = db;
  }
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'atrium-it-'));
  const dataDir = opts.dataDir ?? path.join(dir, 'data');
  if (storeOfDir) pgDatabases.set(dataDir, storeOfDir);
  await fsp.mkdir(dataDir, { recursive: true, mode: 0o700 });
  const atlasPath = path.join(dir, 'atlas.xml');
  const xml = '<?xml version="1.0"?><Atlas>'
    + `<Listen address="${address}" port="${port}"/>`
    + `<DataDirectory>${xmlEscape(dataDir)}</DataDirectory>`
    + (opts.imDays === null ? '' : `<IMDeleteAfterDays>${opts.imDays ?? 90}</IMDeleteAfterDays>`)
    + (opts.journalDays === null ? '' : `<JournalDeleteAfterDays>${opts.journalDays ?? 365}</JournalDeleteAfterDays>`)
    + testLimits(opts)
    + store
    + '</Atlas>\n';
  await fsp.writeFile(atlasPath, xml);

  let out = '';
  const proc = spawn(ATRIUMD, ['-c', atlasPath], {
    env: { ...process.env, ATRIUM_ADMIN_PASSWORD: adminPassword, ...(opts.env ?? {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  let spawnError = null;
  proc.on('error', (e) => { spawnError = e; });

  const url = `http://${address}:${port}`;
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned || opts.keep) return;
    cleaned = true;
    await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
  };

  const server = {
    url, port, dir, dataDir, atlasPath, adminPassword, proc,
    /** Where tests/tools/store-tool finds this server's store. */
    storeTarget: pgConninfo ? `postgresql:${pgConninfo}` : dataDir,
    output: () => out,
    /** atriumd's stdout and stderr arrive through pipes, possibly after the
     * HTTP answer that followed the log line: wait (bounded) for a match. */
    async waitOutput(re, ms = 5000) {
      const until = Date.now() + ms;
      while (!re.test(out) && Date.now() < until) await sleep(25);
      return out;
    },
    /** Waits until the output has not grown for quietMs (at most ms). */
    async settleOutput(quietMs = 300, ms = 5000) {
      const until = Date.now() + ms;
      let last = out.length, since = Date.now();
      while (Date.now() < until && Date.now() - since < quietMs) {
        await sleep(25);
        if (out.length !== last) { last = out.length; since = Date.now(); }
      }
      return out;
    },
    async login(user = 'admin', password = adminPassword) {
      const r = await apiCall(url, 'POST', '/api/v1/session', { body: { user, password } });
      if (r.status !== 200 || !r.json?.token) {
        throw new Error(`login failed: ${r.status} ${r.text}`);
      }
      return r.json.token;
    },
    api(method, p, o = {}) { return apiCall(url, method, p, o); },
    async stop() {
      let code = await waitExit(proc, 0);
      if (code === null) {
        proc.kill('SIGTERM');
        code = await waitExit(proc, 10000);
        if (code === null) { proc.kill('SIGKILL'); await waitExit(proc, 5000); }
      }
      await cleanup();
      return code;
    },
    async kill() {
      let code = await waitExit(proc, 0);
      if (code === null) { proc.kill('SIGKILL'); code = await waitExit(proc, 10000); }
      return code;
    },
  };

  const deadline = Date.now() + (opts.startTimeoutMs ?? 10000);
  for (;;) {
    if (spawnError) { await cleanup(); throw new Error(`cannot start ${ATRIUMD}: ${spawnError.message}`); }
    if (proc.exitCode !== null || proc.signalCode !== null) {
      await cleanup();
      throw new Error(`atriumd exited (${proc.exitCode ?? proc.signalCode}) before /healthz answered:\n${out}`);
    }
    try {
      const r = await fetchT(url + '/healthz', {}, 1000);
      await r.arrayBuffer();
      if (r.status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      await waitExit(proc, 5000);
      await cleanup();
      throw new Error(`atriumd did not answer /healthz within the limit:\n${out}`);
    }
    await sleep(50);
  }
  return server;
}

/** An atriumctl result as an assertion message. */
export function show(r) {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

/** Runs atriumctl against a server. Resolves {code, stdout, stderr}. */
export function ctl(server, args, { token, input, env, timeoutMs = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    const e = { ...process.env, ATRIUM_URL: server.url, ...(env ?? {}) };
    if (token !== undefined) e.ATRIUM_TOKEN = token;
    const p = spawn(ATRIUMCTL, args, { env: e, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '', stderr = '', timedOut = false;
    p.stdout.setEncoding('utf8'); p.stderr.setEncoding('utf8');
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const t = setTimeout(() => { timedOut = true; p.kill('SIGKILL'); }, timeoutMs);
    p.on('error', (err) => { clearTimeout(t); reject(err); });
    p.on('close', (code, sig) => {
      clearTimeout(t);
      if (timedOut) reject(new Error(`atriumctl ${args.join(' ')} timed out\n${stdout}\n${stderr}`));
      else resolve({ code: code ?? (sig ? 128 : -1), stdout, stderr });
    });
    p.stdin.on('error', () => {});
    if (input !== undefined) p.stdin.end(input); else p.stdin.end();
  });
}

// ---- contract helpers shared by the suites ---------------------------------

/** Every key of the settings contract (shared/spec/settings.md) and its type. */
export const CONTRACT_KEYS = {
  'server.public_url': 'url',
  'domain.name': 'host',
  'federation.enabled': 'bool',
  'federation.fqdn': 'host',
  'login.allow_automatic': 'bool',
  'login.publish_address': 'bool',
  'login.discovery_port': 'port',
  'login.kerberos_keytab': 'string',
  'ad.uri': 'url',
  'ad.bind_dn': 'string',
  'ad.bind_password': 'secret',
  'ad.container_dn': 'string',
  'mobile.app_url': 'url',
  'mobile.webapi_url': 'url',
  'mobile.push_enabled': 'bool',
  'mobile.push_use_proxy': 'bool',
  'um.url': 'url',
  'meeting.enabled': 'bool',
  'meeting.url': 'url',
  'qos.policies': 'list',
  'docs.url': 'url',
  'proxy.enabled': 'bool',
  'proxy.host': 'host_or_ip',
  'proxy.port': 'port',
  'proxy.auth_required': 'bool',
  'proxy.auth_method': 'enum',
  'proxy.username': 'string',
  'proxy.password': 'secret',
  'proxy.bypass': 'list',
  'license.server_url': 'url',
};
export const SECRET_KEYS = ['ad.bind_password', 'proxy.password'];

/** Asserts an RFC 9457 problem document with the given status; returns the
 * list of keys named in "errors". */
export function problemKeys(r, status, assert) {
  const ctx = `HTTP ${r.status} ${r.text}`;
  assert.equal(r.status, status, ctx);
  assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/, ctx);
  assert.ok(r.json && typeof r.json === 'object', ctx);
  assert.equal(r.json.status, status, ctx);
  assert.equal(typeof r.json.title, 'string', ctx);
  assert.ok(Array.isArray(r.json.errors), `"errors" must always be present: ${ctx}`);
  for (const e of r.json.errors) {
    assert.equal(typeof e.key, 'string', ctx);
    assert.equal(typeof e.message, 'string', ctx);
    assert.ok(e.message.length > 0, ctx);
  }
  return r.json.errors.map((e) => e.key);
}

/** An audit "old"/"new" field may carry the value itself or its JSON text. */
export function auditValue(x) {
  if (typeof x !== 'string') return x;
  try { return JSON.parse(x); } catch { return x; }
}

/** A minimal RFC 6455 client (Node 20 has none): connects to path on port,
 * resolves {sock, send(text), next(ms) -> the next text message, close()}.
 * Frames from the server are unmasked; ours are masked, as the RFC asks. */
export function wsOpen(port, path, { headers = {}, timeoutMs = 10000, host = '127.0.0.1', ca } = {}) {
  return new Promise((resolve, reject) => {
    const key = crypto.randomBytes(16).toString('base64');
    // With ca: wss, the server's certificate checked against it.
    const req = (ca ? https : http).request({ host, port, path, timeout: timeoutMs, ...(ca ? { ca } : {}),
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': key, ...headers } });
    req.on('timeout', () => req.destroy(new Error('WebSocket handshake timed out')));
    req.on('error', reject);
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => reject(Object.assign(new Error(`no upgrade: HTTP ${res.statusCode}`),
        { status: res.statusCode, body })));
    });
    req.on('upgrade', (res, sock, head) => {
      let buf = head?.length ? Buffer.from(head) : Buffer.alloc(0);
      const messages = [];
      const waiters = [];
      let closed = false, sentClose = false;
      const deliver = () => {
        while (messages.length && waiters.length) waiters.shift().resolve(messages.shift());
      };
      sock.on('error', () => {});
      sock.on('close', () => {
        closed = true;
        for (const w of waiters.splice(0)) w.reject(new Error('WebSocket closed'));
      });
      const parse = () => {
        for (;;) {
          if (buf.length < 2) break;
          let len = buf[1] & 0x7f, off = 2;
          if (len === 126) { if (buf.length < 4) break; len = buf.readUInt16BE(2); off = 4; }
          else if (len === 127) { if (buf.length < 10) break; len = Number(buf.readBigUInt64BE(2)); off = 10; }
          if (buf.length < off + len) break;
          const opcode = buf[0] & 0x0f;
          const payload = buf.subarray(off, off + len);
          buf = buf.subarray(off + len);
          if (opcode === 1 || opcode === 2) messages.push(opcode === 1 ? payload.toString() : payload);
          else if (opcode === 8) {
            messages.push({ close: payload.length >= 2 ? payload.readUInt16BE(0) : 1005,
              reason: payload.subarray(2).toString() });
            // The closing handshake: the same code back, then the end.
            if (!sentClose) { sentClose = true; sock.end(frame(8, payload.subarray(0, 2))); }
          }
          else if (opcode === 9 && !closed) sock.write(frame(10, Buffer.from(payload))); // a pong, as RFC 6455 asks
        }
        deliver();
      };
      sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        parse();
      });
      const frame = (opcode, payload) => {
        const mask = crypto.randomBytes(4);
        const len = payload.length;
        const head2 = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len])
          : len < 65536 ? Buffer.from([0x80 | opcode, 0xfe, len >> 8, len & 0xff])
            : Buffer.concat([Buffer.from([0x80 | opcode, 0xff]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(len)); return b; })()]);
        return Buffer.concat([head2, mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]))]);
      };
      // Frames the server sent right after its 101 arrive with the head.
      if (buf.length) parse();
      resolve({
        sock,
        send: (text) => sock.write(frame(1, Buffer.from(text))),
        sendBinary: (bytes) => sock.write(frame(2, Buffer.from(bytes))),
        next: (ms = 10000) => new Promise((res2, rej2) => {
          if (messages.length) { res2(messages.shift()); return; }
          if (closed) { rej2(new Error('WebSocket closed')); return; }
          const t = setTimeout(() => {
            const i = waiters.findIndex((w) => w.resolve === done);
            if (i >= 0) waiters.splice(i, 1);
            rej2(new Error(`no WebSocket message within ${ms} ms`));
          }, ms);
          const done = (m) => { clearTimeout(t); res2(m); };
          waiters.push({ resolve: done, reject: (e) => { clearTimeout(t); rej2(e); } });
        }),
        close: () => { if (!closed && !sentClose) { sentClose = true; sock.end(frame(8, Buffer.from([0x03, 0xe8]))); } },
        closed: () => closed,
      });
    });
    req.end();
  });
}

/** Threads of a process, from /proc. */
export function threadCount(pid) {
  const m = /^Threads:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : -1;
}

/** A main nginx.conf for a test: everything under directory d, in the
 * foreground, one process, including `include`; `extra` goes inside http { }. */
export function nginxMainConf(d, include, extra = '', workerConnections = 64) {
  return `daemon off;
master_process off;
worker_processes 1;
pid ${d}/nginx.pid;
error_log ${d}/error.log info;
events { worker_connections ${workerConnections}; }
http {
  access_log ${d}/access.log;
  client_body_temp_path ${d}/tmp-body;
  proxy_temp_path ${d}/tmp-proxy;
  fastcgi_temp_path ${d}/tmp-fastcgi;
  uwsgi_temp_path ${d}/tmp-uwsgi;
  scgi_temp_path ${d}/tmp-scgi;
  include ${include};
${extra}}
`;
}
