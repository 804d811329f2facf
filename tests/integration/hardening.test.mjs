// Hardening against one attacker on loopback: login throttling that can be
// neither bypassed nor turned against the owner, revocation of client
// tokens. Requests come from chosen loopback source addresses (127.0.12.x)
// so that "another source" is real.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { startServer } from './harness.mjs';

/** One request from a chosen local address; {status, headers, json, text}. */
function from(srv, localAddress, method, path, { body, token, headers = {}, timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const h = { ...headers, connection: 'close' };
    if (payload !== undefined) h['content-type'] = 'application/json';
    if (token) h.authorization = `Bearer ${token}`;
    const req = http.request({ host: '127.0.0.1', port: srv.port, method, path, localAddress, headers: h },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { text += d; });
        res.on('end', () => {
          let json;
          try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
          resolve({ status: res.statusCode, headers: res.headers, json, text });
        });
      });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

const ADMIN = '/api/v1/session';
const CLIENT = '/client/v1/login';
const UM = '/umsettings/api/login';

let srv;
let admin;

before(async () => {
  srv = await startServer();
  admin = await srv.login();
  for (const name of ['alice', 'bob', 'carol', 'dave']) {
    const r = await srv.api('POST', '/api/v1/users', { token: admin, body: { name, password: `${name}-secret-1` } });
    assert.equal(r.status, 201, r.text);
  }
});

after(async () => { await srv?.stop(); });

describe('login throttling', () => {
  test('guesses from 127.0.12.2 never keep the admin out at 127.0.0.1', async () => {
    const statuses = [];
    for (let i = 0; i < 7; i++) {
      const r = await from(srv, '127.0.12.2', 'POST', ADMIN, { body: { user: 'admin', password: `wrong-${i}-guess` } });
      statuses.push(r.status);
    }
    assert.deepEqual(statuses.slice(0, 5), [401, 401, 401, 401, 401]);
    assert.equal(statuses[5], 429);
    // The guessing source is refused even with the right password...
    let r = await from(srv, '127.0.12.2', 'POST', ADMIN, { body: { user: 'admin', password: srv.adminPassword } });
    assert.equal(r.status, 429);
    assert.ok(Number(r.headers['retry-after']) >= 1);
    // ...the owner from another source is not.
    r = await from(srv, '127.0.0.1', 'POST', ADMIN, { body: { user: 'admin', password: srv.adminPassword } });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.json.token);
  });

  test('many sources failing for one account slow it, never lock it', async () => {
    for (let i = 10; i < 22; i++) {
      const r = await from(srv, `127.0.12.${i}`, 'POST', CLIENT, { body: { login: 'bob', password: 'not-his-password' } });
      assert.equal(r.status, 401, r.text);
    }
    // A source that failed for bob waits now...
    let r = await from(srv, '127.0.12.21', 'POST', CLIENT, { body: { login: 'bob', password: 'bob-secret-1' } });
    assert.equal(r.status, 429, r.text);
    assert.equal(r.json.type, 'https://atrium.invalid/problems/too-many-attempts');
    // ...bob from a clean source logs in, on both login pages.
    r = await from(srv, '127.0.12.30', 'POST', CLIENT, { body: { login: 'bob', password: 'bob-secret-1' } });
    assert.equal(r.status, 200, r.text);
    r = await from(srv, '127.0.12.31', 'POST', UM, { body: { login: 'BOB', password: 'bob-secret-1' } });
    assert.equal(r.status, 200, r.text);
  });

  test('client and UM logins share the source penalty; the owner elsewhere logs in', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await from(srv, '127.0.12.3', 'POST', CLIENT, { body: { login: 'alice', password: `guess-${i}-x` } });
      assert.equal(r.status, 401);
    }
    for (let i = 0; i < 2; i++) {
      const r = await from(srv, '127.0.12.3', 'POST', UM, { body: { login: 'alice', password: `guess-um-${i}` } });
      assert.equal(r.status, 401);
    }
    let r = await from(srv, '127.0.12.3', 'POST', UM, { body: { login: 'alice', password: 'alice-secret-1' } });
    assert.equal(r.status, 429);
    r = await from(srv, '127.0.12.3', 'POST', ADMIN, { body: { user: 'admin', password: srv.adminPassword } });
    assert.equal(r.status, 429, 'the source is penalised for every login');
    r = await from(srv, '127.0.12.4', 'POST', CLIENT, { body: { login: 'alice', password: 'alice-secret-1' } });
    assert.equal(r.status, 200, r.text);
  });

  test('failures under many other names cannot reset the count (the old collision bypass)', async () => {
    // The old table kept one counter per fnv1a % 1024 slot, so a failure
    // under a colliding name reset alice's count. Whatever names are mixed
    // in, at most five guesses pass before the source is refused.
    let passed = 0;
    let refused = 0;
    for (let i = 0; i < 40; i++) {
      const body = i % 2 === 0
        ? { login: 'alice@example.local', password: `guess-${i}-aaaa` }
        : { login: `collider-${i}-${Math.random().toString(36).slice(2)}`, password: 'whatever1' };
      const r = await from(srv, '127.0.12.5', 'POST', CLIENT, { body });
      if (r.status === 401) passed++;
      else if (r.status === 429) refused++;
      else assert.fail(`unexpected ${r.status} ${r.text}`);
    }
    assert.equal(passed, 5);
    assert.equal(refused, 35);
  });

  test('successful logins are rate limited per account', async () => {
    const statuses = [];
    for (let i = 0; i < 12; i++) {
      const r = await from(srv, `127.0.12.${40 + i}`, 'POST', CLIENT, { body: { login: 'carol', password: 'carol-secret-1' } });
      statuses.push(r.status);
    }
    assert.deepEqual(statuses.slice(0, 10), Array(10).fill(200));
    assert.deepEqual(statuses.slice(10), [429, 429]);
  });

  test('/metrics counts the refusals', async () => {
    const r = await srv.api('GET', '/metrics', { token: admin });
    assert.equal(r.status, 200);
    const m = /atrium_login_throttled_total\{reason="source"\} (\d+)/.exec(r.text);
    assert.ok(m && Number(m[1]) >= 3, r.text.slice(0, 2000));
    assert.match(r.text, /atrium_login_throttled_total\{reason="account"\} [1-9]/);
    assert.match(r.text, /atrium_login_throttled_total\{reason="rate"\} [1-9]/);
  });
});
