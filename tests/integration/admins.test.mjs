// Several admin accounts against a real atriumd: the API (/api/v1/admins,
// /api/v1/session/password), atriumctl admin, and the host's recovery
// (atriumd --reset-admin-password), with what each writes to the audit log.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { ATRIUMD, ctl, show, startServer, waitExit } from './harness.mjs';

let srv;
let tmp;

before(async () => {
  srv = await startServer();
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'atrium-admins-'));
});
after(async () => {
  if (srv) await srv.stop();
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

const login = (user, password) => srv.api('POST', '/api/v1/session', { body: { user, password } });
const as = (token) => ({
  get: (p) => srv.api('GET', p, { token }),
  post: (p, body) => srv.api('POST', p, { token, body }),
  patch: (p, body) => srv.api('PATCH', p, { token, body }),
  del: (p) => srv.api('DELETE', p, { token }),
});
async function pwFile(name, text) {
  const p = path.join(tmp, name);
  await fsp.writeFile(p, `${text}\n`, { mode: 0o600 });
  return p;
}
async function run(args, opts = {}) {
  const cfg = await fsp.mkdtemp(path.join(tmp, 'cfg-'));
  return ctl(srv, args, { ...opts, env: { XDG_CONFIG_HOME: cfg, ...(opts.env ?? {}) } });
}
/** A session of whichever of admin and frank can log in. */
async function anyLogin() {
  for (const [u, p] of [['admin', srv.adminPassword], ['frank', 'frank-password-1']]) {
    const r = await login(u, p);
    if (r.status === 200) return r.json.token;
  }
  throw new Error('neither admin nor frank can log in');
}
async function auditOf(token, query) {
  const r = await as(token).get(`/api/v1/audit?${query}`);
  assert.equal(r.status, 200, r.text);
  return r.json.entries;
}

/** atriumd --reset-admin-password NAME -c atlas.xml; resolves {code, out}. */
function reset(name, env = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(ATRIUMD, ['--reset-admin-password', name, '-c', srv.atlasPath], {
      env: { ...process.env, ATRIUM_ADMIN_PASSWORD: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('error', reject);
    waitExit(p, 30000).then((code) => resolve({ code, out }));
  });
}

describe('admin accounts through the API', () => {
  test('add, list, log in as the new admin; bad input names the field and changes nothing', async () => {
    const root = as(await srv.login());
    let r = await root.post('/api/v1/admins', { name: 'bob', password: 'bob-password-1' });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.name, 'bob');
    assert.equal(r.json.enabled, true);
    assert.equal(r.headers.get('location'), '/api/v1/admins/bob');

    r = await root.post('/api/v1/admins', { name: 'bob', password: 'another-pass' });
    assert.equal(r.status, 409, r.text);
    for (const [body, key] of [
      [{ name: 'x y', password: 'long-enough' }, 'name'],
      [{ name: '', password: 'long-enough' }, 'name'],
      [{ name: 'carol', password: 'short' }, 'password'],
      [{ name: 'carol' }, 'password'],
      [{ name: 'carol', password: 'long-enough', enabled: 'yes' }, 'enabled'],
      [{ name: 'carol', password: 'long-enough', role: 'root' }, 'role'],
    ]) {
      r = await root.post('/api/v1/admins', body);
      assert.equal(r.status, 422, `${JSON.stringify(body)}: ${r.text}`);
      assert.ok(r.json.errors.some((e) => e.key === key), `${key} not named: ${r.text}`);
    }
    r = await root.get('/api/v1/admins');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.admins.map((a) => a.name), ['admin', 'bob']);

    r = await login('bob', 'bob-password-1');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.user, 'bob');
    const entries = await auditOf(r.json.token, 'key=bob');
    assert.ok(entries.some((e) => e.action === 'admin.add' && e.actor === 'admin'), JSON.stringify(entries));
    assert.ok(entries.some((e) => e.action === 'admin.login' && e.actor === 'bob' && e.address === '127.0.0.1'));
  });

  test('disable ends the sessions at once and refuses logins; enable lets them in again', async () => {
    const root = as(await srv.login());
    await root.post('/api/v1/admins', { name: 'dave', password: 'dave-password-1' });
    const daveToken = (await login('dave', 'dave-password-1')).json.token;
    assert.equal((await as(daveToken).get('/api/v1/session')).status, 200);

    let r = await root.patch('/api/v1/admins/dave', { enabled: false });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.enabled, false);
    assert.equal(r.json.ended_sessions, 1);
    assert.equal((await as(daveToken).get('/api/v1/session')).status, 401);
    r = await login('dave', 'dave-password-1');
    assert.equal(r.status, 401, 'a disabled admin logged in');

    r = await root.patch('/api/v1/admins/dave', { enabled: true });
    assert.equal(r.status, 200, r.text);
    assert.equal((await login('dave', 'dave-password-1')).status, 200);
  });

  test('nobody disables or removes their own account; removal ends the sessions', async () => {
    const root = as(await srv.login());
    let r = await root.patch('/api/v1/admins/admin', { enabled: false });
    assert.equal(r.status, 409, r.text);
    assert.match(r.json.detail, /log in as another admin/);
    r = await root.del('/api/v1/admins/admin');
    assert.equal(r.status, 409, r.text);

    await root.post('/api/v1/admins', { name: 'erin', password: 'erin-password-1' });
    const erin = as((await login('erin', 'erin-password-1')).json.token);
    r = await root.del('/api/v1/admins/erin');
    assert.equal(r.status, 204, r.text);
    assert.equal((await erin.get('/api/v1/session')).status, 401, 'a removed admin kept the session');
    r = await root.del('/api/v1/admins/erin');
    assert.equal(r.status, 404);
    assert.match(r.json.detail, /atriumctl admin list/);
  });

  test('two admins disabling each other at once: one enabled account always remains', async () => {
    const root = as(await srv.login());
    // Only admin and frank enabled, so the two requests race for the last one.
    await root.post('/api/v1/admins', { name: 'frank', password: 'frank-password-1' });
    for (const a of (await root.get('/api/v1/admins')).json.admins) {
      if (a.name !== 'admin' && a.name !== 'frank' && a.enabled) {
        assert.equal((await root.patch(`/api/v1/admins/${a.name}`, { enabled: false })).status, 200);
      }
    }
    for (let round = 0; round < 5; round++) {
      const frank = as((await login('frank', 'frank-password-1')).json.token);
      const admin = as(await srv.login());
      const [a, b] = await Promise.all([
        admin.patch('/api/v1/admins/frank', { enabled: false }),
        frank.patch('/api/v1/admins/admin', { enabled: false }),
      ]);
      const codes = [a.status, b.status].sort();
      // One wins; the other is refused as the last account (409) or finds
      // its own session already ended (401).
      assert.ok(codes[0] === 200 && (codes[1] === 409 || codes[1] === 401), `${a.text} / ${b.text}`);
      const enabled = (await as(await anyLogin()).get('/api/v1/admins')).json.admins.filter((x) => x.enabled);
      assert.equal(enabled.length, 1, JSON.stringify(enabled));
      // Put both back for the next round.
      const survivor = enabled[0].name;
      const t = as(await anyLogin());
      assert.equal((await t.patch(`/api/v1/admins/${survivor === 'admin' ? 'frank' : 'admin'}`, { enabled: true })).status, 200);
    }
  });

  test('own password: current one required, other sessions end, this one stays', async () => {
    const root = as(await srv.login());
    await root.post('/api/v1/admins', { name: 'gina', password: 'gina-password-1' });
    const a = (await login('gina', 'gina-password-1')).json.token;
    const b = (await login('gina', 'gina-password-1')).json.token;
    const c = (await login('gina', 'gina-password-1')).json.token;

    let r = await as(a).post('/api/v1/session/password', { current_password: 'wrong-one-1', new_password: 'gina-password-2' });
    assert.equal(r.status, 422, r.text);
    assert.equal(r.json.errors[0].key, 'current_password');
    assert.equal((await as(b).get('/api/v1/session')).status, 200, 'a refused change ended a session');
    r = await as(a).post('/api/v1/session/password', { current_password: 'gina-password-1', new_password: 'short' });
    assert.equal(r.status, 422);
    assert.equal(r.json.errors[0].key, 'new_password');
    r = await as(a).post('/api/v1/session/password', { current_password: 'gina-password-1' });
    assert.equal(r.status, 422);

    r = await as(a).post('/api/v1/session/password', { current_password: 'gina-password-1', new_password: 'gina-password-2' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.ended_sessions, 2);
    assert.equal((await as(a).get('/api/v1/session')).status, 200);
    assert.equal((await as(b).get('/api/v1/session')).status, 401);
    assert.equal((await as(c).get('/api/v1/session')).status, 401);
    assert.equal((await login('gina', 'gina-password-1')).status, 401);
    assert.equal((await login('gina', 'gina-password-2')).status, 200);

    const list = (await root.get('/api/v1/admins')).json.admins;
    assert.match(list.find((x) => x.name === 'gina').password_changed_at, /^\d{4}-\d\d-\d\dT/);
    const entries = await auditOf(a, 'key=gina&action=admin.password');
    assert.equal(entries.length, 1);
    assert.ok(!JSON.stringify(entries).includes('gina-password'), 'a password reached the audit log');
    assert.equal((await auditOf(a, 'key=gina&action=admin.password_failed')).length, 1);
  });

  test('another admin\'s password: their sessions end; one\'s own goes through session/password', async () => {
    const root = as(await srv.login());
    await root.post('/api/v1/admins', { name: 'hank', password: 'hank-password-1' });
    const h = (await login('hank', 'hank-password-1')).json.token;
    let r = await root.patch('/api/v1/admins/hank', { password: 'hank-password-2' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.ended_sessions, 1);
    assert.equal((await as(h).get('/api/v1/session')).status, 401);
    assert.equal((await login('hank', 'hank-password-2')).status, 200);
    r = await root.patch('/api/v1/admins/admin', { password: 'admin-new-pass' });
    assert.equal(r.status, 409);
    assert.match(r.json.detail, /session\/password/);
    r = await root.patch('/api/v1/admins/hank', {});
    assert.equal(r.status, 422);
    r = await root.patch('/api/v1/admins/nosuch', { enabled: true });
    assert.equal(r.status, 404);
  });

  test('failed logins are in the audit log with the address, never the password', async () => {
    const r = await login('admin', 'Not-The-Password-77');
    assert.equal(r.status, 401);
    const root = await srv.login();
    const entries = await auditOf(root, 'action=admin.login_failed&actor=admin');
    assert.ok(entries.length >= 1);
    assert.equal(entries[0].address, '127.0.0.1');
    assert.ok(!JSON.stringify(entries).includes('Not-The-Password-77'));
  });
});

describe('atriumctl admin', () => {
  test('add, list, disable, enable, set-password, remove; exit codes', async () => {
    const token = await srv.login();
    const pw = await pwFile('ivy.txt', 'ivy-password-1');
    let r = await run(['admin', 'add', 'ivy', '--password-file', pw], { token });
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /added the admin account ivy \(enabled\)/);
    r = await run(['admin', 'list'], { token });
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^NAME +ENABLED +SESSIONS/m);
    assert.match(r.stdout, /^ivy +yes +0 /m);
    r = await run(['--json', 'admin', 'list'], { token });
    assert.ok(JSON.parse(r.stdout).admins.some((a) => a.name === 'ivy'));

    r = await run(['admin', 'disable', 'ivy'], { token });
    assert.equal(r.code, 0, show(r));
    assert.equal((await login('ivy', 'ivy-password-1')).status, 401);
    r = await run(['admin', 'enable', 'ivy'], { token });
    assert.equal(r.code, 0, show(r));
    const pw2 = await pwFile('ivy2.txt', 'ivy-password-2');
    r = await run(['admin', 'set-password', 'ivy', '--password-file', pw2], { token });
    assert.equal(r.code, 0, show(r));
    assert.equal((await login('ivy', 'ivy-password-2')).status, 200);

    r = await run(['admin', 'disable', 'admin'], { token });
    assert.equal(r.code, 5, show(r));
    assert.match(r.stderr, /logged in with/);
    r = await run(['admin', 'remove', 'nosuch'], { token });
    assert.equal(r.code, 1, show(r));
    r = await run(['admin', 'add', 'jo', '--password-file', await pwFile('short.txt', 'short')], { token });
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /password/);
    r = await run(['admin', 'frobnicate'], { token });
    assert.equal(r.code, 2, show(r));
    r = await run(['admin', 'remove'], { token });
    assert.equal(r.code, 2, show(r));
    r = await run(['admin', 'remove', 'ivy'], { token });
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /removed the admin account ivy/);
  });

  test('admin password: from files, without a terminal; wrong current one refused', async () => {
    const root = as(await srv.login());
    await root.post('/api/v1/admins', { name: 'kim', password: 'kim-password-1' });
    const token = (await login('kim', 'kim-password-1')).json.token;
    const other = (await login('kim', 'kim-password-1')).json.token;
    const cur = await pwFile('kim-cur.txt', 'kim-password-1');
    const bad = await pwFile('kim-bad.txt', 'kim-password-9');
    const next = await pwFile('kim-new.txt', 'kim-password-2');
    let r = await run(['admin', 'password', '--current-password-file', bad, '--password-file', next], { token });
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /current password/);
    r = await run(['admin', 'password', '--current-password-file', cur, '--password-file', next], { token });
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /1 other session\(s\) of yours ended/);
    assert.equal((await as(other).get('/api/v1/session')).status, 401);
    assert.equal((await as(token).get('/api/v1/session')).status, 200);
    // No file and no terminal: a usage error, nothing sent.
    r = await run(['admin', 'password', '--current-password-file', next], { token });
    assert.equal(r.code, 2, show(r));
    assert.match(r.stderr, /no terminal/);
  });
});

describe('atriumd --reset-admin-password', () => {
  test('a lost password is reset on the host; the account is enabled again and its sessions end', async () => {
    const root = as(await srv.login());
    await root.post('/api/v1/admins', { name: 'lou', password: 'lou-password-1' });
    await root.patch('/api/v1/admins/lou', { enabled: false });

    let r = await reset('lou');
    assert.equal(r.code, 0, r.out);
    const m = r.out.match(/New password: (\S+)/);
    assert.ok(m, r.out);
    assert.match(r.out, /Reset the admin account "lou"/);
    assert.equal((await login('lou', 'lou-password-1')).status, 401);
    const lr = await login('lou', m[1]);
    assert.equal(lr.status, 200, lr.text);

    r = await reset('admin', { ATRIUM_ADMIN_PASSWORD: 'recovered-pass-1' });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /ATRIUM_ADMIN_PASSWORD/);
    assert.ok(!r.out.includes('recovered-pass-1'));
    assert.equal((await login('admin', 'recovered-pass-1')).status, 200);
    assert.equal((await login('admin', srv.adminPassword)).status, 401);

    r = await reset('newroot', { ATRIUM_ADMIN_PASSWORD: 'newroot-pass-1' });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /Created the admin account "newroot"/);
    assert.equal((await login('newroot', 'newroot-pass-1')).status, 200);

    r = await reset('bad name');
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /not valid/);
    r = await reset('admin', { ATRIUM_ADMIN_PASSWORD: 'short' });
    assert.equal(r.code, 1, r.out);

    const token = (await login('newroot', 'newroot-pass-1')).json.token;
    const entries = await auditOf(token, 'action=admin.reset_password');
    assert.deepEqual(entries.map((e) => e.key).sort(), ['admin', 'lou', 'newroot']);
    assert.equal(entries[0].actor, 'atriumd --reset-admin-password');
    assert.equal(entries[0].address, null);
  });
});
