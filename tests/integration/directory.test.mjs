// The directory through a real atriumd: users (create, list, show, update,
// delete, import as JSON and CSV), client logins for desktop and mobile, and
// the federation data, through the REST API and through atriumctl.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startServer, ctl, show, problemKeys } from './harness.mjs';

let srv;
let token;
let tmp;

before(async () => {
  srv = await startServer({ atlas: '<Domain>corp.example</Domain>', productionLogins: true });
  token = await srv.login();
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'atrium-dir-'));
});
after(async () => {
  if (srv) await srv.stop();
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

const api = (method, p, o = {}) => srv.api(method, p, { token, ...o });
async function run(args, opts = {}) {
  const env = { XDG_CONFIG_HOME: tmp, ...(opts.env ?? {}) };
  return ctl(srv, args, { token, ...opts, env });
}

describe('users API', () => {
  test('create answers 201 with the derived login name and IM address', async () => {
    const r = await api('POST', '/api/v1/users', {
      body: { name: 'alice', display_name: 'Alice Liddell', windows_account: 'CORP\\alice',
        password: 'wonderland-1' },
    });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.login, 'alice@corp.example');
    assert.equal(r.json.im_address, 'alice@corp.example');
    assert.equal(r.json.enabled, true);
    assert.equal(r.json.has_password, true);
    assert.equal(r.json.password, undefined);
    assert.equal(r.headers.get('location'), '/api/v1/users/alice');
  });

  test('invalid fields are each named; a taken name or Windows account is 409', async () => {
    let r = await api('POST', '/api/v1/users', {
      body: { name: 'Bad Name', windows_account: 'nobackslash', password: 'short' },
    });
    const keys = problemKeys(r, 422, assert);
    assert.deepEqual(keys.sort(), ['name', 'password', 'windows_account']);
    r = await api('POST', '/api/v1/users', { body: { name: 'alice' } });
    problemKeys(r, 409, assert);
    r = await api('POST', '/api/v1/users', { body: { name: 'alice2', windows_account: 'corp\\ALICE' } });
    assert.deepEqual(problemKeys(r, 409, assert), ['windows_account']);
    r = await api('POST', '/api/v1/users', { body: { display_name: 'no name' } });
    assert.deepEqual(problemKeys(r, 422, assert), ['name']);
  });

  test('show, update, delete; the login name works as a reference', async () => {
    let r = await api('GET', '/api/v1/users/alice@corp.example');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.display_name, 'Alice Liddell');
    r = await api('POST', '/api/v1/users', { body: { name: 'tmp.user' } });
    assert.equal(r.status, 201, r.text);
    r = await api('PATCH', '/api/v1/users/tmp.user', { body: { display_name: 'Temp', enabled: false } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.display_name, 'Temp');
    assert.equal(r.json.enabled, false);
    r = await api('PATCH', '/api/v1/users/tmp.user', { body: { enabled: 'yes' } });
    assert.deepEqual(problemKeys(r, 422, assert), ['enabled']);
    r = await api('DELETE', '/api/v1/users/tmp.user');
    assert.equal(r.status, 204, r.text);
    r = await api('GET', '/api/v1/users/tmp.user');
    problemKeys(r, 404, assert);
    r = await api('DELETE', '/api/v1/users/tmp.user');
    problemKeys(r, 404, assert);
  });

  test('needs an admin', async () => {
    const r = await srv.api('GET', '/api/v1/users');
    assert.equal(r.status, 401);
  });
});

describe('import', () => {
  test('a JSON array, all or nothing, the bad row named', async () => {
    const rows = Array.from({ length: 50 }, (_, i) => ({ name: `j${i}`, display_name: `J ${i}` }));
    let r = await api('POST', '/api/v1/users/import', { body: rows });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.imported, 50);
    const bad = [{ name: 'ok1' }, { name: 'ok2' }, { name: 'NOPE' }];
    r = await api('POST', '/api/v1/users/import', { body: bad });
    problemKeys(r, 422, assert);
    assert.equal(r.json.errors[0].row, 3);
    assert.match(r.json.errors[0].message, /Row 3/);
    r = await api('GET', '/api/v1/users/ok1');
    assert.equal(r.status, 404, 'nothing of a refused import is written');
    r = await api('POST', '/api/v1/users/import', { body: [{ name: 'new1' }, { name: 'j7' }] });
    problemKeys(r, 422, assert);
    assert.equal(r.json.errors[0].row, 2);
    assert.equal((await api('GET', '/api/v1/users/new1')).status, 404);
  });

  test('CSV with a header row; the error names the line', async () => {
    const csv = 'name,display_name,windows_account,enabled\r\n'
      + 'carol,"Carol, C.",CORP\\carol,true\r\n'
      + 'dave,Dave,,false\r\n';
    let r = await api('POST', '/api/v1/users/import', { body: csv, headers: { 'content-type': 'text/csv' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.imported, 2);
    r = await api('GET', '/api/v1/users/carol');
    assert.equal(r.json.display_name, 'Carol, C.');
    assert.equal(r.json.windows_account, 'CORP\\carol');
    r = await api('GET', '/api/v1/users/dave');
    assert.equal(r.json.enabled, false);

    const bad = 'name,display_name\nerin,Erin\n"fr\nank",Frank\n';
    r = await api('POST', '/api/v1/users/import', { body: bad, headers: { 'content-type': 'text/csv; charset=utf-8' } });
    problemKeys(r, 422, assert);
    assert.equal(r.json.errors[0].key, 'name');
    assert.equal(r.json.errors[0].row, 2);
    assert.equal(r.json.errors[0].line, 3);
    assert.equal((await api('GET', '/api/v1/users/erin')).status, 404);

    r = await api('POST', '/api/v1/users/import', { body: 'name,colour\nx,red\n', headers: { 'content-type': 'text/csv' } });
    assert.deepEqual(problemKeys(r, 422, assert), ['colour']);
    r = await api('POST', '/api/v1/users/import', { body: 'name\n', headers: { 'content-type': 'text/plain' } });
    assert.equal(r.status, 415);
  });

  test('list: paged, filtered, ordered by name', async () => {
    let r = await api('GET', '/api/v1/users?q=j1&limit=5');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.total, 11); // j1, j10..j19
    assert.equal(r.json.users.length, 5);
    assert.deepEqual(r.json.users.map((u) => u.name), ['j1', 'j10', 'j11', 'j12', 'j13']);
    r = await api('GET', '/api/v1/users?q=j1&limit=5&offset=10');
    assert.deepEqual(r.json.users.map((u) => u.name), ['j19']);
    r = await api('GET', '/api/v1/users?q=alice@corp.example');
    assert.equal(r.json.total, 1);
    r = await api('GET', '/api/v1/users?limit=0');
    problemKeys(r, 400, assert);
    r = await api('GET', '/api/v1/users?limit=1001');
    problemKeys(r, 400, assert);
  });
});

describe('client login', () => {
  let desktop;
  test('desktop login gives a token; /me gives the user', async () => {
    let r = await srv.api('POST', '/client/v1/login', { body: { login: 'alice@corp.example', password: 'wonderland-1' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.login, 'alice@corp.example');
    assert.equal(typeof r.json.token, 'string');
    desktop = r.json.token;
    r = await srv.api('GET', '/client/v1/me', { token: desktop });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.name, 'alice');
    assert.equal(r.json.device, null);
  });

  test('mobile login registers the device', async () => {
    const r = await srv.api('POST', '/client/v1/login', {
      body: { login: 'alice@corp.example', password: 'wonderland-1', device: { id: 'iphone-7', platform: 'ios', push_token: 'apns-1' } },
    });
    assert.equal(r.status, 200, r.text);
    const me = await srv.api('GET', '/client/v1/me', { token: r.json.token });
    assert.equal(me.status, 200, me.text);
    assert.deepEqual(me.json.device, { id: 'iphone-7', platform: 'ios', login: 'alice@corp.example' });
    const bad = await srv.api('POST', '/client/v1/login', {
      body: { login: 'alice@corp.example', password: 'wonderland-1', device: { id: 'x', platform: 'palm' } },
    });
    assert.deepEqual(problemKeys(bad, 422, assert), ['device']);
  });

  test('wrong password, unknown user, bad tokens: 401 with a sentence', async () => {
    let r = await srv.api('POST', '/client/v1/login', { body: { login: 'alice@corp.example', password: 'nope-nope' } });
    problemKeys(r, 401, assert);
    r = await srv.api('POST', '/client/v1/login', { body: { login: 'ghost@corp.example', password: 'nope-nope' } });
    problemKeys(r, 401, assert);
    r = await srv.api('GET', '/client/v1/me', { token: 'not-a-token' });
    problemKeys(r, 401, assert);
    r = await srv.api('GET', '/client/v1/me');
    problemKeys(r, 401, assert);
    r = await srv.api('POST', '/client/v1/login', { body: { login: 'alice@corp.example' } });
    assert.deepEqual(problemKeys(r, 422, assert), ['password']);
  });

  test('a disabled user cannot log in and its tokens stop working', async () => {
    let r = await api('PATCH', '/api/v1/users/alice', { body: { enabled: false } });
    assert.equal(r.status, 200, r.text);
    // Disabling revoked the token (its row is gone, so the sentence is the
    // general one); a login is refused with the reason.
    r = await srv.api('GET', '/client/v1/me', { token: desktop });
    problemKeys(r, 401, assert);
    assert.match(r.json.detail, /log in again/);
    // Enabling the user again does not bring the revoked token back.
    r = await api('PATCH', '/api/v1/users/alice', { body: { enabled: true } });
    r = await srv.api('GET', '/client/v1/me', { token: desktop });
    problemKeys(r, 401, assert);
  });

  test('repeated failures are slowed down (429 with Retry-After)', async () => {
    let saw429 = null;
    for (let i = 0; i < 12 && !saw429; i++) {
      const r = await srv.api('POST', '/client/v1/login', { body: { login: 'j1@corp.example', password: 'wrong-wrong' } });
      if (r.status === 429) saw429 = r;
      else assert.equal(r.status, 401, r.text);
    }
    assert.ok(saw429, 'no 429 after 12 failures');
    assert.ok(Number(saw429.headers.get('retry-after')) >= 1);
  });
});

describe('federation data', () => {
  test('subscriptions and contacts import and list', async () => {
    let r = await api('POST', '/api/v1/federation/subscriptions/import', {
      body: 'user,remote,state\ncarol,bob@partner.example,active\ncarol@corp.example,Eve@Partner.Example,pending\n',
      headers: { 'content-type': 'text/csv' },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.imported, 2);
    r = await api('GET', '/api/v1/federation/subscriptions?user=carol');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.total, 2);
    assert.deepEqual(r.json.subscriptions.map((s) => [s.user, s.im_address, s.remote, s.state]), [
      ['carol', 'carol@corp.example', 'bob@partner.example', 'active'],
      ['carol', 'carol@corp.example', 'eve@partner.example', 'pending'],
    ]);
    r = await api('GET', '/api/v1/federation/subscriptions?state=pending');
    assert.equal(r.json.total, 1);
    r = await api('POST', '/api/v1/federation/subscriptions/import', { body: [{ user: 'nobody', remote: 'a@b.example' }] });
    assert.deepEqual(problemKeys(r, 422, assert), ['user']);
    r = await api('POST', '/api/v1/federation/subscriptions/import', { body: [{ user: 'carol', remote: 'not an address' }] });
    assert.deepEqual(problemKeys(r, 422, assert), ['remote']);
    r = await api('POST', '/api/v1/federation/contacts/import', { body: [{ user: 'carol', remote: 'bob@partner.example', display_name: 'Bob' }] });
    assert.equal(r.status, 200, r.text);
    r = await api('GET', '/api/v1/federation/contacts');
    assert.equal(r.json.total, 1);
    assert.equal(r.json.contacts[0].display_name, 'Bob');
  });
});

describe('atriumctl', () => {
  test('users add, show, list, update, delete', async () => {
    const pw = path.join(tmp, 'pw');
    await fsp.writeFile(pw, 'Cli-Passw0rd\n');
    let r = await run(['users', 'add', 'zoe', '--display-name', 'Zoe Z', '--windows-account', 'CORP\\zoe', '--password-file', pw]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /login: +zoe@corp\.example/);
    assert.doesNotMatch(r.stdout + r.stderr, /Cli-Passw0rd/);
    r = await run(['users', 'show', 'zoe']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /password: +set/);
    r = await run(['users', 'list', '--query', 'zoe']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /zoe@corp\.example/);
    r = await run(['--json', 'users', 'list', '--limit', '2']);
    assert.equal(r.code, 0, show(r));
    assert.equal(JSON.parse(r.stdout).users.length, 2);
    r = await run(['users', 'update', 'zoe', '--display-name', '', '--disabled']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /enabled: +no/);
    r = await run(['users', 'add', 'Zoe']);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /lower case/);
    r = await run(['users', 'delete', 'zoe']);
    assert.equal(r.code, 0, show(r));
    r = await run(['users', 'show', 'zoe']);
    assert.notEqual(r.code, 0, show(r));
  });

  test('users import FILE (CSV and JSON) and federation subscriptions', async () => {
    const csv = path.join(tmp, 'u.csv');
    await fsp.writeFile(csv, 'name,display_name\ncsv1,One\ncsv2,Two\n');
    let r = await run(['users', 'import', csv]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /imported 2/);
    await fsp.writeFile(csv, 'name,display_name\ncsv3,Three\nBAD,Bad\n');
    r = await run(['users', 'import', csv]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /line 3/);
    const json = path.join(tmp, 'u.json');
    await fsp.writeFile(json, JSON.stringify([{ name: 'json1' }]));
    r = await run(['users', 'import', json]);
    assert.equal(r.code, 0, show(r));
    const subs = path.join(tmp, 's.csv');
    await fsp.writeFile(subs, 'user,remote\ncsv1,x@partner.example\n');
    r = await run(['federation', 'subscriptions', 'import', subs]);
    assert.equal(r.code, 0, show(r));
    r = await run(['federation', 'subscriptions', '--user', 'csv1']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /csv1@corp\.example +x@partner\.example +active/);
  });

  test('an option the subcommand does not use is refused before any request', async () => {
    const before = (await api('GET', '/api/v1/users?limit=1000')).json.total;
    for (const [args, why] of [
      [['users', 'delete', 'csv1', '--display-name', 'X'], /--display-name does not apply to 'users delete'/],
      [['users', 'add', 'nobody', '--name', 'other'], /--name does not apply to 'users add'/],
      [['users', 'update', 'csv1', '--enabled', '--disabled'], /--enabled or --disabled, not both/],
      [['federation', 'contacts', 'list', '--state', 'active'], /--state does not apply/],
      [['domain', 'change', 'x.example', '--user', 'csv1', '--dry-run'], /--user does not apply to 'domain change'/],
    ]) {
      const r = await run(args);
      assert.equal(r.code, 2, show(r));
      assert.match(r.stderr, why, show(r));
    }
    assert.equal((await api('GET', '/api/v1/users?limit=1000')).json.total, before);
    assert.equal((await api('GET', '/api/v1/users/csv1')).status, 200);
  });
});
