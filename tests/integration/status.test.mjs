// What runs and what fails, against a real atriumd: GET /api/v1/status and
// atriumctl status (exit 7 while a module is failing), with AD publishing
// pointed at a dead LDAP server, and the configuration warnings that are
// saved beside their field and listed on the status (keytab missing, empty
// or not a keytab; automatic login without a keytab; AD publishing without a
// bind password; the meeting with the unedited privacy template).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ctl, freePort, freeUdpPort, show, sleep, startServer } from './harness.mjs';
import { clientLogin, rtConnect } from './rt-client.mjs';

let srv;
let token;
let tmp;
const api = (method, p, body) => srv.api(method, p, { token, body });
const patch = (body) => api('PATCH', '/api/v1/settings', body);

before(async () => {
  srv = await startServer();
  token = await srv.login();
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'atrium-status-'));
});
after(async () => {
  if (srv) await srv.stop();
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

async function status() {
  const r = await api('GET', '/api/v1/status');
  assert.equal(r.status, 200, r.text);
  return r.json;
}
const mod = (doc, name) => doc.modules.find((m) => m.name === name);
const warningsOf = (r, key) => r.json?.settings?.[key]?.warnings ?? [];

/** Waits (bounded) until pred(status) holds; the last status otherwise. */
async function statusUntil(pred, ms = 15000) {
  const until = Date.now() + ms;
  let doc;
  while (Date.now() < until) {
    doc = await status();
    if (pred(doc)) return doc;
    await sleep(100);
  }
  return doc;
}

/** A keytab file (MIT format 0x0502) with one entry for principal@realm. */
function keytab(principal, realm) {
  const parts = principal.split('/');
  const counted = (s) => { const b = Buffer.from(s); const l = Buffer.alloc(2); l.writeUInt16BE(b.length); return Buffer.concat([l, b]); };
  const n = Buffer.alloc(2); n.writeUInt16BE(parts.length);
  const key = Buffer.alloc(16, 7);
  const tail = Buffer.alloc(4 + 4 + 1); tail.writeUInt32BE(1, 0); tail.writeUInt32BE(1700000000, 4); tail.writeUInt8(1, 8);
  const ktype = Buffer.alloc(2); ktype.writeUInt16BE(17);
  const klen = Buffer.alloc(2); klen.writeUInt16BE(key.length);
  const entry = Buffer.concat([n, counted(realm), ...parts.map(counted), tail, ktype, klen, key]);
  const size = Buffer.alloc(4); size.writeInt32BE(entry.length);
  return Buffer.concat([Buffer.from([5, 2]), size, entry]);
}

describe('GET /api/v1/status', () => {
  test('every module with its state and sentence; the connected clients', async () => {
    const doc = await status();
    assert.match(doc.version, /^\d+\.\d+/);
    assert.match(doc.checked_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$/);
    for (const name of ['runtime', 'outbound', 'directory', 'admin', 'published', 'meeting', 'publishing', 'qos', 'real-time']) {
      const m = mod(doc, name);
      assert.ok(m, `no module ${name}: ${JSON.stringify(doc.modules.map((x) => x.name))}`);
      assert.ok(['ok', 'warning', 'failing', 'off'].includes(m.state), JSON.stringify(m));
      assert.ok(m.sentence.length > 10, JSON.stringify(m));
    }
    assert.equal(mod(doc, 'meeting').state, 'off');
    // Automatic login is allowed by default but nobody set up a keytab:
    // a warning, not a failure.
    assert.equal(mod(doc, 'publishing').state, 'warning');
    assert.match(mod(doc, 'publishing').sentence, /not set up/);
    assert.equal(doc.state, 'warning');
    assert.ok(doc.warnings.some((w) => w.key === 'login.allow_automatic' && w.code === 'no-keytab'), JSON.stringify(doc.warnings));
    assert.deepEqual(doc.clients, { users: 0, connections: 0 });

    // Two connections of one user.
    const domain = (await api('GET', '/api/v1/settings')).json.settings['domain.name'].value;
    assert.equal((await api('POST', '/api/v1/users', { name: 'sam', password: 'sam-password-1' })).status, 201);
    const a = await rtConnect(srv, await clientLogin(srv, `sam@${domain}`, 'sam-password-1'));
    const b = await rtConnect(srv, await clientLogin(srv, `sam@${domain}`, 'sam-password-1'));
    const with2 = await statusUntil((d) => d.clients.connections === 2);
    assert.deepEqual(with2.clients, { users: 1, connections: 2 });
    assert.match(mod(with2, 'real-time').sentence, /2 client connections of 1 user/);
    a.close();
    b.close();
    await statusUntil((d) => d.clients.connections === 0);
  });

  test('needs an admin session', async () => {
    const r = await srv.api('GET', '/api/v1/status');
    assert.equal(r.status, 401);
  });
});

describe('configuration warnings: saved, shown beside the field and on the status', () => {
  test('a keytab that is missing, not a keytab, empty; then a good one', async () => {
    const missing = path.join(tmp, 'nope.keytab');
    let r = await patch({ 'login.kerberos_keytab': missing });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.settings['login.kerberos_keytab'].value, missing, 'a warning blocked the save');
    let w = warningsOf(r, 'login.kerberos_keytab');
    assert.equal(w[0]?.code, 'keytab-unreadable', r.text);
    assert.match(w[0].message, /cannot be read/);
    // Beside the field: GET /api/v1/settings carries it on the key.
    const s = await api('GET', '/api/v1/settings');
    assert.equal(s.json.settings['login.kerberos_keytab'].warnings[0].code, 'keytab-unreadable');
    let doc = await status();
    assert.equal(mod(doc, 'publishing').state, 'failing');
    assert.equal(doc.state, 'failing');
    assert.ok(doc.warnings.some((x) => x.key === 'login.kerberos_keytab'));

    const garbage = path.join(tmp, 'garbage.keytab');
    await fsp.writeFile(garbage, 'this is no keytab\n');
    r = await patch({ 'login.kerberos_keytab': garbage });
    assert.equal(warningsOf(r, 'login.kerberos_keytab')[0]?.code, 'keytab-invalid', r.text);

    const empty = path.join(tmp, 'empty.keytab');
    await fsp.writeFile(empty, Buffer.from([5, 2]));
    r = await patch({ 'login.kerberos_keytab': empty });
    assert.equal(warningsOf(r, 'login.kerberos_keytab')[0]?.code, 'keytab-empty', r.text);

    const good = path.join(tmp, 'http.keytab');
    await fsp.writeFile(good, keytab('HTTP/atrium.example.com', 'EXAMPLE.COM'), { mode: 0o600 });
    r = await patch({ 'login.kerberos_keytab': good });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(warningsOf(r, 'login.kerberos_keytab'), [], r.text);
    assert.deepEqual(warningsOf(r, 'login.allow_automatic'), []);
    doc = await status();
    assert.equal(mod(doc, 'publishing').state, 'ok', JSON.stringify(mod(doc, 'publishing')));
    assert.match(mod(doc, 'publishing').sentence, /HTTP\/atrium\.example\.com@EXAMPLE\.COM/);

    // Blank keytab with automatic login on: the warning is on the switch.
    r = await patch({ 'login.kerberos_keytab': '' });
    assert.equal(warningsOf(r, 'login.allow_automatic')[0]?.code, 'no-keytab');
    r = await patch({ 'login.allow_automatic': false });
    assert.deepEqual(warningsOf(r, 'login.allow_automatic'), []);
    assert.equal(mod(await status(), 'publishing').state, 'off');
    await patch({ 'login.allow_automatic': true });
  });

  test('AD publishing at a dead LDAP server without a bind password: failing, with the last error and when', async () => {
    const port = await freePort();
    const udp = await freeUdpPort();
    const r = await patch({
      'login.publish_address': true, 'login.discovery_port': udp,
      'ad.uri': `ldap://127.0.0.1:${port}`, 'ad.bind_dn': 'CN=atrium,CN=Users,DC=example,DC=com',
      'ad.container_dn': 'CN=Services,DC=example,DC=com',
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(warningsOf(r, 'ad.bind_password')[0]?.code, 'no-bind-password', r.text);
    assert.match(warningsOf(r, 'ad.bind_password')[0].message, /without a password/);

    const doc = await statusUntil((d) => mod(d, 'publishing').state === 'failing' && mod(d, 'publishing').last_error);
    const p = mod(doc, 'publishing');
    assert.equal(p.state, 'failing', JSON.stringify(p));
    assert.match(p.sentence, /Active Directory service connection point is not published/);
    assert.match(p.sentence, /UDP discovery answers on port \d+/);
    assert.ok(p.last_error.length > 0);
    assert.match(p.last_error_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$/);
    assert.ok(Math.abs(Date.parse(p.last_error_at) - Date.now()) < 60000);

    const cfg = await fsp.mkdtemp(path.join(tmp, 'cfg-'));
    const c = await ctl(srv, ['status'], { token, env: { XDG_CONFIG_HOME: cfg } });
    assert.equal(c.code, 7, show(c));
    assert.match(c.stdout, /^Atrium \S+: failing/m);
    assert.match(c.stdout, /^publishing +failing +.*not published/m);
    assert.match(c.stdout, /last error at \d{4}-/);
    assert.match(c.stdout, /ad\.bind_password: Active Directory publishing is on/);
    assert.match(c.stdout, /Connected: \d+ users?, \d+ client connections?/);
    const j = await ctl(srv, ['--json', 'status'], { token, env: { XDG_CONFIG_HOME: cfg } });
    assert.equal(j.code, 7);
    assert.equal(JSON.parse(j.stdout).state, 'failing');

    // Publishing off again: nothing fails; status exits 0.
    assert.equal((await patch({ 'login.publish_address': false })).status, 200);
    await statusUntil((d) => mod(d, 'publishing').state !== 'failing');
    const ok = await ctl(srv, ['status'], { token, env: { XDG_CONFIG_HOME: cfg } });
    assert.equal(ok.code, 0, show(ok));
  });

  test('the meeting with the unedited privacy template; fixed by editing the copy', async () => {
    let r = await patch({ 'meeting.enabled': true });
    assert.equal(r.status, 200, r.text);
    const w = warningsOf(r, 'meeting.enabled');
    assert.equal(w[0]?.code, 'privacy-template-unedited', r.text);
    assert.match(w[0].message, /atriumctl privacy customize/);
    let doc = await status();
    assert.equal(mod(doc, 'meeting').state, 'warning');
    const info = await api('GET', '/api/v1/privacy');
    assert.ok(info.json.templates.every((t) => t.unedited === true), info.text);

    // The operator's copies, edited: the page says so at once.
    const cfg = await fsp.mkdtemp(path.join(tmp, 'cfg-'));
    const c = await ctl(srv, ['privacy', 'customize'], { token, env: { XDG_CONFIG_HOME: cfg } });
    assert.equal(c.code, 0, show(c));
    const custom = info.json.custom_directory;
    for (const f of ['DataPrivacyStatement_EN.html', 'DataPrivacyStatement_DE.html']) {
      const p = path.join(custom, f);
      const text = await fsp.readFile(p, 'utf8');
      await fsp.writeFile(p, text.replace(/\[(Operator|Betreiber):[^\]]*\]/g, 'Example Ltd, 1 Main St'));
    }
    doc = await status();
    assert.equal(mod(doc, 'meeting').state, 'ok', JSON.stringify(mod(doc, 'meeting')));
    r = await patch({ 'meeting.enabled': true, 'meeting.url': '' });
    assert.deepEqual(warningsOf(r, 'meeting.enabled'), [], r.text);
    await fsp.rm(custom, { recursive: true, force: true });
    await patch({ 'meeting.enabled': false });
  });
});
