// The audit log of every admin action against a real atriumd: settings,
// users (add, update, rename, delete, import, sign-out), the domain change,
// admin accounts, logins; its filters (actor, key, action, time range) on the
// API and in atriumctl; times in the server's zone with their offset.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ctl, show, startServer } from './harness.mjs';

let srv;
let token;
let tmp;
const api = (method, p, body) => srv.api(method, p, { token, body });

before(async () => {
  // A zone with an offset in December, so that "the time with its zone" is
  // visible: +01:00.
  srv = await startServer({ env: { TZ: 'Europe/Berlin' } });
  token = await srv.login();
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'atrium-audit-'));
});
after(async () => {
  if (srv) await srv.stop();
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

async function audit(query = '') {
  const r = await api('GET', `/api/v1/audit${query ? `?${query}` : ''}`);
  assert.equal(r.status, 200, r.text);
  return r.json;
}

describe('what the audit log holds', () => {
  test('a settings change: its time in the server\'s zone with the offset', async () => {
    const r = await api('PATCH', '/api/v1/settings', { 'proxy.host': 'proxy.example.com' });
    assert.equal(r.status, 200, r.text);
    const e = (await audit('key=proxy.host')).entries[0];
    assert.equal(e.action, 'setting');
    assert.equal(e.actor, 'admin');
    assert.match(e.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+01:00$/);
    // The same instant as now, give or take the test's own time.
    assert.ok(Math.abs(Date.parse(e.time) - Date.now()) < 60000, e.time);
  });

  test('users: add, update, rename, delete, import, sign-out; never a password', async () => {
    let r = await api('POST', '/api/v1/users', { name: 'alice', display_name: 'Alice', password: 'Alice-Secret-99' });
    assert.equal(r.status, 201, r.text);
    r = await api('PATCH', '/api/v1/users/alice', { display_name: 'Alice L.', password: 'Alice-Secret-98' });
    assert.equal(r.status, 200, r.text);
    r = await api('PATCH', '/api/v1/users/alice', { name: 'alicia' });
    assert.equal(r.status, 200, r.text);
    r = await api('POST', '/api/v1/users/alicia/sign-out');
    assert.equal(r.status, 200, r.text);
    r = await api('DELETE', '/api/v1/users/alicia');
    assert.equal(r.status, 204, r.text);
    r = await srv.api('POST', '/api/v1/users/import', {
      token, headers: { 'content-type': 'text/csv' }, raw: 'name,display_name\nbob,Bob\ncarol,Carol\n',
    });
    assert.equal(r.status, 200, r.text);
    // A refused import writes nothing.
    r = await srv.api('POST', '/api/v1/users/import', {
      token, headers: { 'content-type': 'text/csv' }, raw: 'name\nbob\n',
    });
    assert.equal(r.status, 422, r.text);

    const all = (await audit('action=user.add')).entries;
    assert.equal(all.length, 1);
    assert.equal(all[0].key, 'alice');
    assert.equal(all[0].address, '127.0.0.1');
    assert.match(all[0].new, /"display_name":"Alice"/);
    assert.match(all[0].new, /"password":"\(set\)"/);

    const update = (await audit('action=user.update&key=alice')).entries[0];
    assert.match(update.new, /"display_name":"Alice L\."/);
    const rename = (await audit('action=user.rename')).entries[0];
    assert.deepEqual([rename.key, rename.old, rename.new], ['alice', 'alice', 'alicia']);
    const signOut = (await audit('action=user.sign_out')).entries[0];
    assert.equal(signOut.key, 'alicia');
    assert.match(signOut.new, /login\(s\) revoked/);
    const del = (await audit('action=user.delete')).entries[0];
    assert.equal(del.key, 'alicia');
    const imp = await audit('action=user.import');
    assert.equal(imp.total, 1);
    assert.match(imp.entries[0].new, /^2 user\(s\): bob, carol$/);

    const text = JSON.stringify(await audit('limit=500'));
    assert.ok(!text.includes('Alice-Secret'), 'a password reached the audit log');
  });

  test('the domain change is one entry of its own', async () => {
    let r = await api('PATCH', '/api/v1/settings', { 'federation.enabled': false });
    assert.equal(r.status, 200, r.text);
    r = await api('POST', '/api/v1/domain/change', { domain: 'new.example.com', dry_run: false });
    assert.equal(r.status, 200, r.text);
    const e = (await audit('action=domain.change')).entries[0];
    assert.equal(e.actor, 'admin');
    assert.match(e.new, /^new\.example\.com \(\d+ users renamed/);
  });

  test('admin logins and failed logins, with the address', async () => {
    const bad = await srv.api('POST', '/api/v1/session', { body: { user: 'mallory', password: 'guess-1234' } });
    assert.equal(bad.status, 401);
    await srv.login();
    const failed = (await audit('action=admin.login_failed')).entries;
    assert.equal(failed[0].actor, 'mallory');
    assert.equal(failed[0].address, '127.0.0.1');
    assert.ok((await audit('action=admin.login&actor=admin')).total >= 2);
  });
});

describe('filters', () => {
  test('actor, key, key prefix, action combine; the total counts the matches', async () => {
    await api('PATCH', '/api/v1/settings', { 'proxy.port': 3128 });
    const prefix = await audit('key=proxy.*');
    assert.ok(prefix.total >= 2);
    assert.ok(prefix.entries.every((e) => e.key.startsWith('proxy.')));
    const exact = await audit('key=proxy.port');
    assert.ok(exact.entries.every((e) => e.key === 'proxy.port'));
    assert.equal((await audit('actor=nobody')).total, 0);
    const combined = await audit('actor=admin&action=setting&key=proxy.port');
    assert.equal(combined.total, 1);
    const page = await audit('key=proxy.*&limit=1');
    assert.equal(page.entries.length, 1);
    assert.equal(page.total, prefix.total);
  });

  test('time range: since inclusive, until exclusive, any offset', async () => {
    const all = await audit('limit=500');
    const oldest = all.entries[all.entries.length - 1];
    const newest = all.entries[0];
    // The same instant written in UTC and in +05:30 selects the same entries.
    const t = new Date(Date.parse(oldest.time));
    const utc = t.toISOString();
    const plus = new Date(t.getTime() + 5.5 * 3600e3).toISOString().replace('Z', '+05:30');
    assert.equal((await audit(`since=${encodeURIComponent(utc)}`)).total, all.total);
    assert.equal((await audit(`since=${encodeURIComponent(plus)}`)).total, all.total);
    assert.equal((await audit(`until=${encodeURIComponent(utc)}`)).total, 0);
    const later = new Date(Date.parse(newest.time) + 1).toISOString();
    assert.equal((await audit(`since=${encodeURIComponent(later)}`)).total, 0);
    assert.equal((await audit(`until=${encodeURIComponent(later)}`)).total, all.total);
  });

  test('bad filters: 400 naming the parameter, with the rule', async () => {
    for (const [q, name] of [
      ['since=yesterday', 'since'], ['until=2026-13-01T00:00:00Z', 'until'],
      ['since=2026-12-01T10:00:00', 'since'], [`actor=${'x'.repeat(300)}`, 'actor'],
      ['since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z', 'until'],
    ]) {
      const r = await api('GET', `/api/v1/audit?${q}`);
      assert.equal(r.status, 400, `${q}: ${r.text}`);
      assert.equal(r.json.errors[0].key, name, r.text);
    }
    const r = await api('GET', '/api/v1/audit?since=nope');
    assert.match(r.json.errors[0].message, /RFC 3339/);
  });
});

describe('atriumctl audit', () => {
  test('the filters as options; the action and address columns', async () => {
    const cfg = await fsp.mkdtemp(path.join(tmp, 'cfg-'));
    const env = { XDG_CONFIG_HOME: cfg };
    let r = await ctl(srv, ['audit', '--action', 'user.import'], { token, env });
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^TIME +ACTOR +ACTION +KEY +CHANGE$/m);
    assert.match(r.stdout, /\+01:00 +admin +user\.import +users +2 user\(s\): bob, carol {2}\(from 127\.0\.0\.1\)$/m);
    r = await ctl(srv, ['audit', '--key', 'proxy.*', '--limit', '1'], { token, env });
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /setting +proxy\.\S+ +.+ → /);
    r = await ctl(srv, ['--json', 'audit', '--actor', 'mallory'], { token, env });
    assert.equal(r.code, 0, show(r));
    assert.equal(JSON.parse(r.stdout).entries[0].action, 'admin.login_failed');
    r = await ctl(srv, ['audit', '--since', 'yesterday'], { token, env });
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /since/);
  });
});
