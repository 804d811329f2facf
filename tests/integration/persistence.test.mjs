// Persistence: values survive a restart; environment overrides are not
// stored; kill -9 in the middle of a burst of writes leaves a consistent
// store that still starts.
import { test, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { TEST_STORE, startServer, sleep, auditValue } from './harness.mjs';

const dirs = [];
const servers = [];

async function dataDir() {
  const d = await fsp.mkdtemp(path.join(os.tmpdir(), 'atrium-persist-'));
  dirs.push(d);
  return d;
}
async function start(opts) {
  const s = await startServer(opts);
  servers.push(s);
  return s;
}

after(async () => {
  for (const s of servers) await s.stop().catch(() => {});
  for (const d of dirs) await fsp.rm(d, { recursive: true, force: true }).catch(() => {});
});

async function get(s, token) {
  const r = await s.api('GET', '/api/v1/settings', { token });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

/** sqlite3 CLI, bounded. */
function sqlite(db, sql) {
  return new Promise((resolve, reject) => {
    const p = spawn('sqlite3', [db, sql], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    const t = setTimeout(() => p.kill('SIGKILL'), 20000);
    p.on('error', (e) => { clearTimeout(t); reject(e); });
    p.on('close', (code) => { clearTimeout(t); resolve({ code, out: out.trim(), err: err.trim() }); });
  });
}

describe('restart', () => {
  test('values, version and sessions survive SIGTERM and restart', async () => {
    const dd = await dataDir();
    const s1 = await start({ dataDir: dd });
    const token = await s1.login();
    const body = {
      'login.publish_address': true,
      'login.discovery_port': 5099,
      'proxy.host': 'proxy.example.com',
      'proxy.bypass': ['*.example.com', '192.168.0.0/16'],
      'mobile.app_url': 'https://m.example.com:7443/app',
      'proxy.password': 'Persisted-S3cret-991',
    };
    const r = await s1.api('PATCH', '/api/v1/settings', { token, body });
    assert.equal(r.status, 200, r.text);
    const d1 = await get(s1, token);
    const a1 = await s1.api('GET', '/api/v1/audit?offset=0&limit=100', { token });
    assert.equal(await s1.stop(), 0, `exit code after SIGTERM\n${s1.output()}`);

    // The same port: a restart elsewhere would rightly warn that the install
    // default of server.public_url no longer matches.
    const s2 = await start({ dataDir: dd, port: s1.port });
    const d2 = await get(s2, token); // the session survived the restart
    assert.equal(d2.version, d1.version);
    assert.deepEqual(d2.settings, d1.settings);
    assert.deepEqual(d2.settings['proxy.password'].value, { set: true });
    const a2 = await s2.api('GET', '/api/v1/audit?offset=0&limit=100', { token });
    assert.deepEqual(a2.json, a1.json);
    assert.ok(!s1.output().includes('Persisted-S3cret-991') && !s2.output().includes('Persisted-S3cret-991'));
    // The secret is encrypted at rest.
    const raw = await fsp.readFile(path.join(dd, 'atrium.db')).catch(() => Buffer.alloc(0));
    const wal = await fsp.readFile(path.join(dd, 'atrium.db-wal')).catch(() => Buffer.alloc(0));
    assert.ok(!raw.includes('Persisted-S3cret-991') && !wal.includes('Persisted-S3cret-991'), 'secret stored in clear');
    assert.equal(await s2.stop(), 0);
  });

  test('the admin password is set at first start only', async () => {
    const dd = await dataDir();
    const s1 = await start({ dataDir: dd, adminPassword: 'first-admin-pass-1' });
    await s1.login();
    assert.equal(await s1.stop(), 0);
    const s2 = await start({ dataDir: dd, adminPassword: 'second-admin-pass-2' });
    await s2.login('admin', 'first-admin-pass-1');
    const bad = await s2.api('POST', '/api/v1/session', { body: { user: 'admin', password: 'second-admin-pass-2' } });
    assert.equal(bad.status, 401, bad.text);
    assert.equal(await s2.stop(), 0);
  });

  test('an environment override is reported as env and is not stored', async () => {
    const dd = await dataDir();
    const s1 = await start({ dataDir: dd });
    let token = await s1.login();
    let r = await s1.api('PATCH', '/api/v1/settings', { token, body: { 'login.discovery_port': 6001, 'proxy.auth_method': 'digest' } });
    assert.equal(r.status, 200, r.text);
    const v1 = r.json.version;
    assert.equal(await s1.stop(), 0);

    const s2 = await start({ dataDir: dd, env: { ATRIUM_LOGIN_DISCOVERY_PORT: '7002', ATRIUM_PROXY_HOST: 'Env-Proxy.Example.com', ATRIUM_LOGIN_PUBLISH_ADDRESS: 'yes' } });
    token = await s2.login();
    let d = await get(s2, token);
    assert.deepEqual([d.settings['login.discovery_port'].value, d.settings['login.discovery_port'].source], [7002, 'env']);
    assert.deepEqual([d.settings['proxy.host'].value, d.settings['proxy.host'].source], ['env-proxy.example.com', 'env']);
    assert.deepEqual([d.settings['login.publish_address'].value, d.settings['login.publish_address'].source], [true, 'env']);
    assert.deepEqual([d.settings['proxy.auth_method'].value, d.settings['proxy.auth_method'].source], ['digest', 'store']);
    assert.equal(d.version, v1, 'starting with overrides is not a change');
    r = await s2.api('PATCH', '/api/v1/settings', { token, body: { 'login.discovery_port': 6003 } });
    assert.equal(r.status, 409, r.text);
    r = await s2.api('PATCH', '/api/v1/settings', { token, body: { 'proxy.auth_method': 'ntlm' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(await s2.stop(), 0);

    const s3 = await start({ dataDir: dd });
    token = await s3.login();
    d = await get(s3, token);
    assert.deepEqual([d.settings['login.discovery_port'].value, d.settings['login.discovery_port'].source], [6001, 'store']);
    assert.equal(d.settings['proxy.host'].source, 'default');
    assert.equal(d.settings['proxy.host'].value, '');
    assert.equal(d.settings['login.publish_address'].source, 'default');
    assert.deepEqual([d.settings['proxy.auth_method'].value, d.settings['proxy.auth_method'].source], ['ntlm', 'store']);
    assert.equal(await s3.stop(), 0);
  });

  test('an invalid environment value stops the start with a sentence naming the variable', async () => {
    const dd = await dataDir();
    await assert.rejects(
      start({ dataDir: dd, env: { ATRIUM_PROXY_PORT: '70000' } }),
      (e) => /ATRIUM_PROXY_PORT/.test(e.message),
    );
  });
});

describe('kill -9 during a burst of writes', () => {
  const ROUNDS = 3;
  const BURST = 200;

  for (let round = 1; round <= ROUNDS; round++) {
    test(`round ${round}: the store stays consistent and the server starts`, async (t) => {
      const dd = await dataDir();
      const s1 = await start({ dataDir: dd });
      const token = await s1.login();
      const d0 = await get(s1, token);
      // Settings changes only: the logins are in the audit log too.
      const audit0 = (await s1.api('GET', '/api/v1/audit?offset=0&limit=1&action=setting', { token })).json.total;
      const v0 = d0.version;

      let acked = 0;
      let lastAcked = d0.settings['login.discovery_port'].value;
      let inflight = null;
      const delay = 20 + Math.floor(Math.random() * 300);
      const killer = sleep(delay).then(() => s1.kill());
      const deadline = Date.now() + 30000;
      for (let i = 1; i <= BURST && Date.now() < deadline; i++) {
        const port = 20000 + round * 1000 + i;
        inflight = port;
        let r;
        try {
          r = await s1.api('PATCH', '/api/v1/settings', { token, body: { 'login.discovery_port': port }, timeoutMs: 5000 });
        } catch {
          break; // the connection died with the process
        }
        if (r.status !== 200) {
          // A reply other than 200 while dying is acceptable only as a refused
          // write; it must not be counted as acknowledged.
          break;
        }
        assert.equal(r.json.settings['login.discovery_port'].value, port);
        acked++;
        lastAcked = port;
        inflight = null;
      }
      await killer;
      assert.notEqual(s1.proc.signalCode, null, 'the server was killed');

      // The daemon recovers its own store (WAL replay) at the next start.
      const s2 = await start({ dataDir: dd });
      const db = path.join(dd, 'atrium.db');
      // The file checks are SQLite's; on PostgreSQL (ATRIUM_TEST_STORE) the
      // server checks its own pages, the values and counts below still hold.
      const onFile = TEST_STORE === 'sqlite';
      if (onFile) {
        const ic0 = await sqlite(db, 'PRAGMA integrity_check');
        assert.equal(ic0.out, 'ok', `integrity_check after kill -9 and restart: ${ic0.out} ${ic0.err}`);
      }
      const t2 = await s2.login();
      const d = await get(s2, t2);
      const value = d.settings['login.discovery_port'].value;
      const allowed = inflight === null ? [lastAcked] : [lastAcked, inflight];
      assert.ok(allowed.includes(value), `value ${value}, last acknowledged ${lastAcked}, in flight ${inflight} (acked ${acked})`);
      const applied = value === lastAcked ? acked : acked + 1;
      t.diagnostic(`killed after ${delay} ms: ${acked} acknowledged, in flight ${inflight}, value ${value}, version ${v0} -> ${d.version}`);
      assert.ok(d.version >= v0 + acked, `version ${d.version} < ${v0} + ${acked} acknowledged`);
      assert.equal(d.version, v0 + applied, `version ${d.version} with ${applied} changes applied`);
      const a = await s2.api('GET', '/api/v1/audit?offset=0&limit=1&action=setting', { token: t2 });
      assert.equal(a.status, 200, a.text);
      assert.equal(a.json.total - audit0, applied, 'one audit entry per applied change');
      if (applied > 0) {
        assert.equal(a.json.entries[0].key, 'login.discovery_port');
        assert.equal(auditValue(a.json.entries[0].new), value);
      }
      // The server is usable: one more write and a read back.
      const w = await s2.api('PATCH', '/api/v1/settings', { token: t2, body: { 'login.discovery_port': 4999 } });
      assert.equal(w.status, 200, w.text);
      assert.equal(w.json.version, d.version + 1);

      if (onFile) {
        const ic1 = await sqlite(db, 'PRAGMA integrity_check');
        assert.equal(ic1.out, 'ok', `integrity_check after a further write: ${ic1.out} ${ic1.err}`);
        const jm = await sqlite(db, 'PRAGMA journal_mode');
        assert.equal(jm.out, 'wal');
      }
      assert.equal(await s2.stop(), 0);
      if (onFile) {
        const ic2 = await sqlite(db, 'PRAGMA integrity_check');
        assert.equal(ic2.out, 'ok');
      }
    });
  }
});
