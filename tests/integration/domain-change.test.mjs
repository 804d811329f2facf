// The domain change through a real atriumd, by API and by atriumctl: refused
// while federation is on, the dry run, the change itself, and what it means
// afterwards for logins, mobile tokens, Windows accounts, subscriptions, the
// federation FQDN and the audit log. Also that it survives a restart.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startServer, ctl, show, problemKeys } from './harness.mjs';

let srv;
let token;
let tmp;
const PW = 'wonderland-1';
let mobileToken;
let desktopToken;
const dirs = [];

const api = (method, p, o = {}) => srv.api(method, p, { token, ...o });
const run = (args, opts = {}) => ctl(srv, args, { token, env: { XDG_CONFIG_HOME: tmp }, ...opts });
async function setting(key) {
  const r = await api('GET', '/api/v1/settings');
  assert.equal(r.status, 200, r.text);
  return r.json.settings[key];
}
async function login(name, device) {
  return srv.api('POST', '/client/v1/login', { body: { login: name, password: PW, ...(device ? { device } : {}) } });
}

before(async () => {
  srv = await startServer({ atlas: '<Domain>old.example</Domain>', keep: true });
  dirs.push(srv.dir);
  token = await srv.login();
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'atrium-dc-'));
  let r = await api('POST', '/api/v1/users', { body: { name: 'alice', password: PW, windows_account: 'CORP\\alice' } });
  assert.equal(r.status, 201, r.text);
  r = await api('POST', '/api/v1/users', { body: { name: 'bob', password: PW } });
  assert.equal(r.status, 201, r.text);
  r = await api('POST', '/api/v1/users/import', { body: Array.from({ length: 20 }, (_, i) => ({ name: `u${String(i).padStart(2, '0')}` })) });
  assert.equal(r.status, 200, r.text);
  r = await api('POST', '/api/v1/federation/subscriptions/import', {
    body: [
      { user: 'alice', remote: 'carol@partner.example', state: 'active' },
      { user: 'bob', remote: 'dan@partner.example', state: 'pending' },
      { user: 'u01', remote: 'erin@teams.example' },
    ],
  });
  assert.equal(r.status, 200, r.text);
  r = await api('PATCH', '/api/v1/settings', { body: { 'federation.fqdn': 'sip.old.example', 'federation.enabled': true } });
  assert.equal(r.status, 200, r.text);
  r = await login('alice@old.example', { id: 'phone-a', platform: 'android', push_token: 'fcm-1' });
  assert.equal(r.status, 200, r.text);
  mobileToken = r.json.token;
  r = await login('bob@old.example', { id: 'phone-b', platform: 'ios' });
  assert.equal(r.status, 200, r.text);
  r = await login('alice@old.example');
  assert.equal(r.status, 200, r.text);
  desktopToken = r.json.token;
});
after(async () => {
  if (srv) await srv.stop();
  for (const d of dirs) await fsp.rm(d, { recursive: true, force: true });
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

describe('domain change', () => {
  test('refused with 409 while federation is enabled, by API and CLI', async () => {
    let r = await api('POST', '/api/v1/domain/change', { body: { domain: 'new.example', dry_run: false } });
    problemKeys(r, 409, assert);
    assert.match(r.json.detail, /[Dd]eactivate federation globally first/);
    r = await api('POST', '/api/v1/domain/change', { body: { domain: 'new.example', dry_run: true } });
    assert.equal(r.status, 409);
    const c = await run(['domain', 'change', 'new.example', '--yes']);
    assert.equal(c.code, 5, show(c));
    assert.match(c.stderr, /federation/i);
    assert.equal((await setting('domain.name')).value, 'old.example');
  });

  test('domain.name cannot be PATCHed: 409 pointing to the operation', async () => {
    const r = await api('PATCH', '/api/v1/settings', { body: { 'domain.name': 'x.example' } });
    problemKeys(r, 409, assert);
    assert.match(r.text, /domain\/change|domain change/);
  });

  test('invalid and same domain: 422 naming "domain"', async () => {
    let r = await api('PATCH', '/api/v1/settings', { body: { 'federation.enabled': false } });
    assert.equal(r.status, 200, r.text);
    for (const bad of ['intranet', 'bad domain.example', '-x.example', '', 'a..example']) {
      r = await api('POST', '/api/v1/domain/change', { body: { domain: bad, dry_run: true } });
      assert.deepEqual(problemKeys(r, 422, assert), ['domain'], `${bad}: ${r.text}`);
      // The rule is said once: beside the field, not again in the sentence.
      assert.ok(!r.json.detail.includes(r.json.errors[0].message), r.text);
    }
    r = await api('POST', '/api/v1/domain/change', { body: { domain: 'OLD.Example', dry_run: true } });
    assert.deepEqual(problemKeys(r, 422, assert), ['domain']);
    assert.match(r.json.detail, /already/);
    r = await api('POST', '/api/v1/domain/change', { body: { domain: 'new.example', dry_run: 'yes' } });
    assert.deepEqual(problemKeys(r, 422, assert), ['dry_run']);
    r = await api('POST', '/api/v1/domain/change', { body: { domain: 'new.example', extra: 1 } });
    assert.deepEqual(problemKeys(r, 422, assert), ['extra']);
  });

  let preview;
  test('dry run: the preview, exactly in the contract shape, changes nothing', async () => {
    const r = await api('POST', '/api/v1/domain/change', { body: { domain: 'new.example', dry_run: true } });
    assert.equal(r.status, 200, r.text);
    preview = r.json;
    assert.deepEqual(Object.keys(preview).sort(), ['dry_run', 'federation_fqdn', 'mobile_devices',
      'new_domain', 'old_domain', 'samples', 'subscriptions', 'users']);
    assert.equal(preview.dry_run, true);
    assert.equal(preview.old_domain, 'old.example');
    assert.equal(preview.new_domain, 'new.example');
    assert.equal(preview.users, 22);
    assert.equal(preview.mobile_devices, 2);
    assert.equal(preview.subscriptions, 3);
    assert.deepEqual(preview.samples[0], { old: 'alice@old.example', new: 'alice@new.example' });
    assert.ok(preview.samples.length >= 1 && preview.samples.length <= 10);
    assert.deepEqual(preview.federation_fqdn, { old: 'sip.old.example', new: 'sip.new.example' });
    assert.equal((await setting('domain.name')).value, 'old.example');
    const c = await run(['domain', 'change', 'new.example', '--dry-run']);
    assert.equal(c.code, 0, show(c));
    assert.match(c.stdout, /alice@old\.example -> alice@new\.example/);
    assert.match(c.stdout, /mobile devices to set up again: +2/);
    assert.match(c.stdout, /sip\.old\.example -> sip\.new\.example/);
    const noTty = await run(['domain', 'change', 'new.example']);
    assert.equal(noTty.code, 2, show(noTty));
    assert.match(noTty.stderr, /--yes/);
  });

  test('apply through the CLI: one step, the numbers of the preview', async () => {
    const c = await run(['--json', 'domain', 'change', 'new.example', '--yes']);
    assert.equal(c.code, 0, show(c));
    const done = JSON.parse(c.stdout);
    assert.deepEqual(done, { ...preview, dry_run: false });
    assert.equal((await setting('domain.name')).value, 'new.example');
    assert.equal((await setting('federation.fqdn')).value, 'sip.new.example');
  });

  test('old login name: 401 naming the new login name', async () => {
    const r = await login('alice@old.example');
    problemKeys(r, 401, assert);
    assert.match(r.json.detail, /alice@new\.example/);
    assert.equal(r.json.login, 'alice@new.example');
    const ok = await login('alice@new.example');
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.login, 'alice@new.example');
  });

  test('mobile tokens from before: 401 "set up the login again"; desktop and Windows keep working', async () => {
    let r = await srv.api('GET', '/client/v1/me', { token: mobileToken });
    problemKeys(r, 401, assert);
    assert.match(r.json.detail, /set up the login again/);
    assert.match(r.json.detail, /alice@new\.example/);
    r = await srv.api('GET', '/client/v1/me', { token: desktopToken });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.login, 'alice@new.example');
    r = await api('GET', '/api/v1/users?q=CORP%5Calice');
    assert.equal(r.json.total, 1);
    assert.equal(r.json.users[0].windows_account, 'CORP\\alice');
    // set up again: a new mobile login works
    r = await login('alice@new.example', { id: 'phone-a', platform: 'android' });
    assert.equal(r.status, 200, r.text);
    r = await srv.api('GET', '/client/v1/me', { token: r.json.token });
    assert.equal(r.status, 200, r.text);
  });

  test('every subscription is to be created again, for the new IM address', async () => {
    const r = await api('GET', '/api/v1/federation/subscriptions');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.total, 3);
    for (const s of r.json.subscriptions) {
      assert.equal(s.state, 'to-be-recreated');
      assert.match(s.im_address, /@new\.example$/);
    }
    const c = await run(['federation', 'subscriptions', '--state', 'to-be-recreated']);
    assert.equal(c.code, 0, show(c));
    assert.match(c.stdout, /alice@new\.example +carol@partner\.example +to-be-recreated/);
  });

  test('the audit log has the domain change', async () => {
    const r = await api('GET', '/api/v1/audit?limit=20');
    assert.equal(r.status, 200, r.text);
    const e = r.json.entries.find((x) => x.key === 'domain.change');
    assert.ok(e, r.text);
    assert.equal(e.actor, 'admin');
    assert.equal(e.old, 'old.example');
    assert.match(e.new, /^new\.example \(22 users/);
    assert.ok(r.json.entries.some((x) => x.key === 'domain.name'));
  });

  test('IDN domain: stored as A-labels; a blank FQDN follows the domain', async () => {
    let r = await api('PATCH', '/api/v1/settings', { body: { 'federation.fqdn': '' } });
    assert.equal(r.status, 200, r.text);
    r = await api('POST', '/api/v1/domain/change', { body: { domain: 'Bücher.Example' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.new_domain, 'xn--bcher-kva.example');
    assert.deepEqual(r.json.federation_fqdn, { old: 'new.example', new: 'xn--bcher-kva.example' });
    assert.equal(r.json.mobile_devices, 1); // phone-a was set up again under new.example
    const fq = await setting('federation.fqdn');
    assert.equal(fq.value, '');
    assert.equal(fq.effective, 'xn--bcher-kva.example');
    r = await login('alice@bücher.example');
    assert.equal(r.status, 200, r.text);
    r = await login('alice@old.example');
    assert.equal(r.status, 401);
    assert.equal(r.json.login, 'alice@xn--bcher-kva.example');
  });

  test('survives a restart', async () => {
    const dataDir = srv.dataDir;
    await srv.stop();
    srv = await startServer({ dataDir, keep: true });
    dirs.push(srv.dir);
    token = await srv.login();
    assert.equal((await setting('domain.name')).value, 'xn--bcher-kva.example');
    let r = await login('alice@new.example');
    assert.equal(r.status, 401);
    assert.equal(r.json.login, 'alice@xn--bcher-kva.example');
    r = await srv.api('GET', '/client/v1/me', { token: mobileToken });
    assert.equal(r.status, 401);
  });
});
