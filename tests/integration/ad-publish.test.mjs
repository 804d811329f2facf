// Active Directory publishing against a real slapd on loopback
// (docs/operations/active-directory.md): the serviceConnectionPoint appears,
// follows the URL and the domain, disappears when publishing is off, and a
// directory that is down at first is caught up with by the retry loop.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, sleep, freePort } from './harness.mjs';
import { startSlapd, slapdAvailable, ROOT_DN, ROOT_PW, SUFFIX } from './peers/slapd.mjs';

const GUID = '6f1c2b7e-3d4a-4e59-9a8b-2c7d5e0f4a13';
const CONTAINER = `ou=Atrium,${SUFFIX}`;
const SCP_DN = `cn=Atrium Server,${CONTAINER}`;
const skip = slapdAvailable() ? false : 'slapd or ldap-utils not installed (scripts/deps.sh test)';

let srv;
let token;
let slapd;

async function patch(body) {
  return srv.api('PATCH', '/api/v1/settings', { body, token });
}
async function status() {
  const r = await srv.api('GET', '/api/v1/publishing/status', { token });
  assert.equal(r.status, 200, r.text);
  return r.json.active_directory;
}
async function scp() {
  const found = await slapd.search(CONTAINER, '(objectClass=serviceConnectionPoint)');
  return found[0] ?? null;
}
/** Polls until pred(entry, status) holds; at most ms. */
async function waitFor(pred, ms = 8000, what = 'condition') {
  const deadline = Date.now() + ms;
  let e, st;
  for (;;) {
    e = await scp();
    st = await status();
    if (pred(e, st)) return { e, st };
    if (Date.now() > deadline) assert.fail(`${what} not reached in ${ms} ms: ${JSON.stringify({ e, st })}`);
    await sleep(100);
  }
}

before(async () => {
  if (skip) return;
  slapd = await startSlapd();
  srv = await startServer();
  token = await srv.login();
});
after(async () => {
  if (srv) await srv.stop();
  if (slapd) await slapd.cleanup();
});

describe('serviceConnectionPoint on a real slapd', { skip }, () => {
  test('AD configured, publishing off: nothing is written; status "off"', async () => {
    const t0 = Date.now();
    const r = await patch({
      'ad.uri': slapd.uri, 'ad.bind_dn': ROOT_DN, 'ad.bind_password': ROOT_PW, 'ad.container_dn': CONTAINER,
      'server.public_url': 'https://connect.example.com',
    });
    assert.equal(r.status, 200, r.text);
    assert.ok(Date.now() - t0 < 3000);
    await sleep(300);
    assert.equal(await scp(), null);
    assert.equal((await status()).state, 'off');
  });

  test('publishing on: the object appears with GUID, domain, URL and DNS name', async () => {
    const r = await patch({ 'login.publish_address': true });
    assert.equal(r.status, 200, r.text);
    const { e, st } = await waitFor((x, s) => x && s.state === 'published', 8000, 'published');
    assert.equal(e.dn.toLowerCase(), SCP_DN.toLowerCase());
    const domain = (await srv.api('GET', '/api/v1/settings', { token })).json.settings['domain.name'].value;
    assert.ok(e.keywords.includes(GUID), JSON.stringify(e));
    assert.ok(e.keywords.includes(`Domain=${domain}`), JSON.stringify(e));
    assert.deepEqual(e.serviceBindingInformation, ['https://connect.example.com']);
    assert.deepEqual(e.serviceDNSName, ['connect.example.com']);
    assert.deepEqual(e.serviceClassName, ['Atrium']);
    assert.equal(st.dn.toLowerCase(), SCP_DN.toLowerCase());
    assert.equal(st.message ?? null, null);
    assert.ok(st.last_success);
  });

  test('server.public_url changes: the object follows', async () => {
    const r = await patch({ 'server.public_url': 'https://chat.example.com:8443' });
    assert.equal(r.status, 200, r.text);
    const { e } = await waitFor((x) => x?.serviceBindingInformation?.[0] === 'https://chat.example.com:8443',
      8000, 'new URL');
    assert.deepEqual(e.serviceDNSName, ['chat.example.com']);
  });

  test('the domain change operation: the Domain= keyword follows', async () => {
    const r = await srv.api('POST', '/api/v1/domain/change', { body: { domain: 'newcorp.example', dry_run: false }, token });
    if (r.status === 404) {
      assert.fail('POST /api/v1/domain/change is not there (issue 3)');
    }
    assert.equal(r.status, 200, r.text);
    const { e } = await waitFor((x) => x?.keywords?.includes('Domain=newcorp.example'), 8000, 'new domain');
    assert.ok(e.keywords.includes(GUID));
    assert.equal(e.keywords.filter((k) => k.startsWith('Domain=')).length, 1);
  });

  test('a wrong bind password: status "error" with the server\'s reason, never the password; fixed: published', async () => {
    const bad = 'Wr0ng-Bind-Pw-5521';
    let r = await patch({ 'ad.bind_password': bad, 'server.public_url': 'https://wrong.example.com' });
    assert.equal(r.status, 200, r.text);
    const { st } = await waitFor((x, s) => s.state === 'error', 8000, 'error state');
    assert.match(st.message, /Invalid credentials/);
    assert.ok(!st.message.includes(bad));
    assert.ok(st.failures >= 1);
    assert.equal(typeof st.next_retry_seconds, 'number');
    const logged = await srv.waitOutput(/AD publishing: .*Invalid credentials/);
    assert.ok(!logged.includes(bad), 'the password reached the log');
    assert.match(logged, /AD publishing: .*Invalid credentials/);
    r = await patch({ 'ad.bind_password': ROOT_PW });
    assert.equal(r.status, 200, r.text);
    await waitFor((x, s) => s.state === 'published' && x?.serviceBindingInformation?.[0] === 'https://wrong.example.com',
      8000, 'published again');
    assert.ok(!srv.output().includes(ROOT_PW), 'the password reached the log');
  });

  test('publishing off: the object disappears; status "off"', async () => {
    const r = await patch({ 'login.publish_address': false });
    assert.equal(r.status, 200, r.text);
    await waitFor((x, s) => x === null && s.state === 'off', 8000, 'removed');
  });
});

describe('a directory that is down at first', { skip }, () => {
  let srv2;
  let late;
  after(async () => {
    if (srv2) await srv2.stop();
    if (late) await late.cleanup();
  });

  test('is published to by the retry loop once it is up; the settings change never waits', async () => {
    const port = await freePort();
    late = await startSlapd({ port, start: false });
    srv2 = await startServer();
    const tok = await srv2.login();
    const t0 = Date.now();
    let r = await srv2.api('PATCH', '/api/v1/settings', {
      token: tok,
      body: {
        'ad.uri': late.uri, 'ad.bind_dn': ROOT_DN, 'ad.bind_password': ROOT_PW, 'ad.container_dn': CONTAINER,
        'login.publish_address': true, 'server.public_url': 'https://late.example.com',
      },
    });
    assert.equal(r.status, 200, r.text);
    assert.ok(Date.now() - t0 < 5000, 'the PATCH waited for the directory');
    // Down: error with a reason, retries scheduled.
    let st;
    for (let i = 0; i < 80; i++) {
      st = (await srv2.api('GET', '/api/v1/publishing/status', { token: tok })).json.active_directory;
      if (st.state === 'error' && st.failures >= 2) break;
      await sleep(100);
    }
    assert.equal(st.state, 'error', JSON.stringify(st));
    assert.ok(st.failures >= 2, `no retry while the directory was down: ${JSON.stringify(st)}`);
    assert.match(st.message, /Cannot reach ldap:\/\/127\.0\.0\.1/);
    // The daemon keeps serving meanwhile.
    assert.equal((await srv2.api('GET', '/healthz')).status, 200);
    // Up: the next retry (backoff ≤ a few seconds here) publishes.
    await late.start();
    const deadline = Date.now() + 30000;
    let e = null;
    while (!e && Date.now() < deadline) {
      e = (await late.search(CONTAINER, '(objectClass=serviceConnectionPoint)'))[0] ?? null;
      if (!e) await sleep(200);
    }
    assert.ok(e, 'the retry loop did not publish after the directory came up');
    assert.deepEqual(e.serviceBindingInformation, ['https://late.example.com']);
    st = (await srv2.api('GET', '/api/v1/publishing/status', { token: tok })).json.active_directory;
    assert.equal(st.state, 'published');
    assert.equal(st.failures, 0);
  });
});
