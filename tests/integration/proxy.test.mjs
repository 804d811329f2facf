// Issue 5: the outbound proxy and "Test connection" (POST /api/v1/proxy/test,
// atriumctl proxy test) against real peers on loopback: squid with no
// authentication, with Basic and with Digest; an HTTPS license server whose
// certificate comes from a test CA that atlas.xml's <CABundle> trusts; one
// with a self-signed certificate; one answering 503; a port that accepts and
// never answers; a closed port; names under .invalid.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { ctl, problemKeys, startServer } from './harness.mjs';
import { squidAvailable, startSquid } from './peers/squid.mjs';
import { startNxdomainServer } from './peers/dns.mjs';
import { closedPort, startLicenseServer, startSilentServer } from './peers/servers.mjs';
import { makeTlsFiles } from './peers/tls-files.mjs';

// The test's budget in atriumd (ATRIUM_PROXY_TEST_TIMEOUT_MS): short, so that
// the silent peer costs seconds; every assertion on time allows for it.
const BUDGET_MS = 3000;
const SLACK_MS = 2500;

const BASIC_USER = 'alice';
const BASIC_PW = 'Basic-Secret-7f3a9c';
const DIGEST_USER = 'bob';
const DIGEST_PW = 'Digest-Secret-2b8e41';
const WRONG_PW = 'Wrong-Secret-d00d11';
const ALL_PASSWORDS = [BASIC_PW, DIGEST_PW, WRONG_PW];

const skip = squidAvailable() ? false : 'squid is not installed (scripts/deps.sh test)';

describe('proxy test', { skip, timeout: 180000 }, () => {
  let tls, server, token;
  let license, license503, untrusted, silent;
  let squidOpen, squidBasic, squidDigest, dns;
  let deniedPort, deadPort;
  const responses = []; // every response text, searched for passwords at the end

  async function api(method, p, body) {
    const r = await server.api(method, p, { token, body, timeoutMs: BUDGET_MS + 10000 });
    responses.push(r.text);
    return r;
  }

  async function setSaved(values) {
    const r = await api('PATCH', '/api/v1/settings', values);
    assert.equal(r.status, 200, r.text);
  }

  async function proxyTest(body = {}) {
    const t0 = Date.now();
    const r = await api('POST', '/api/v1/proxy/test', body);
    const wall = Date.now() - t0;
    assert.equal(r.status, 200, r.text);
    const j = r.json;
    assert.equal(typeof j.ok, 'boolean', r.text);
    assert.equal(typeof j.message, 'string', r.text);
    assert.equal(typeof j.stage, 'string', r.text);
    assert.equal(typeof j.elapsed_ms, 'number', r.text);
    assert.ok(j.elapsed_ms >= 0 && j.elapsed_ms <= BUDGET_MS + SLACK_MS, r.text);
    assert.ok(wall <= BUDGET_MS + SLACK_MS + 1000, `took ${wall} ms: ${r.text}`);
    if (j.ok) assert.equal(j.stage, 'ok');
    else assert.notEqual(j.stage, 'ok');
    return j;
  }

  const viaProxy = (squid, extra = {}) => ({
    'proxy.enabled': true,
    'proxy.host': '127.0.0.1',
    'proxy.port': squid.port,
    'proxy.auth_required': false,
    ...extra,
  });

  before(async () => {
    tls = await makeTlsFiles();
    [license, license503, untrusted, silent, deniedPort, deadPort] = await Promise.all([
      startLicenseServer({ cert: tls.cert, key: tls.key }),
      startLicenseServer({ cert: tls.cert, key: tls.key, status: 503 }),
      startLicenseServer({ cert: tls.selfSignedCert, key: tls.selfSignedKey }),
      startSilentServer(),
      closedPort(),
      closedPort(),
    ]);
    dns = await startNxdomainServer();
    // allSettled: when one squid fails to start, after() still stops the others.
    const started = await Promise.allSettled([
      startSquid({ denyConnectPorts: [deniedPort], dnsServer: dns?.address }),
      startSquid({ auth: 'basic', users: { [BASIC_USER]: BASIC_PW } }),
      startSquid({ auth: 'digest', users: { [DIGEST_USER]: DIGEST_PW } }),
    ]);
    [squidOpen, squidBasic, squidDigest] = started.map((r) => r.value);
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    server = await startServer({
      atlas: `<CABundle>${tls.caFile}</CABundle>`,
      env: {
        ATRIUM_PROXY_TEST_TIMEOUT_MS: String(BUDGET_MS),
        ATRIUM_LOG_LEVEL: 'debug',
        // The environment must not route anything: the settings alone do.
        https_proxy: `http://127.0.0.1:${deadPort}`,
        HTTPS_PROXY: `http://127.0.0.1:${deadPort}`,
        no_proxy: '',
      },
    });
    token = await server.login();
    await setSaved({ 'license.server_url': license.url() });
  });

  after(async () => {
    await server?.stop();
    await Promise.all([squidOpen?.stop(), squidBasic?.stop(), squidDigest?.stop()]);
    await Promise.all([license?.close(), license503?.close(), untrusted?.close(), silent?.close(),
      dns?.close()]);
    await tls?.remove();
  });

  test('direct, without a proxy: the license server is contacted', async () => {
    const before = license.requests.length;
    const j = await proxyTest({ 'proxy.enabled': false });
    assert.equal(j.ok, true, j.message);
    assert.equal(j.stage, 'ok');
    assert.equal(j.message, 'The license server could be contacted successfully.');
    assert.equal(j.http_status, 200);
    assert.equal(license.requests.length, before + 1);
    assert.equal(license.requests.at(-1).url, '/v1/status');
    assert.match(license.requests.at(-1).headers['user-agent'], /^Atrium\//);
  });

  test('via squid without authentication', async () => {
    const before = license.requests.length;
    const j = await proxyTest(viaProxy(squidOpen));
    assert.equal(j.ok, true, j.message);
    assert.equal(license.requests.length, before + 1);
    const re = new RegExp(`CONNECT localhost:${license.port}`);
    assert.match(await squidOpen.waitAccessLog(re), re);
  });

  test('Basic: right password passes, wrong or missing is a 407 with its own sentence', async () => {
    const basic = (pw) => viaProxy(squidBasic, {
      'proxy.auth_required': true, 'proxy.auth_method': 'basic',
      'proxy.username': BASIC_USER, 'proxy.password': pw,
    });
    let j = await proxyTest(basic(BASIC_PW));
    assert.equal(j.ok, true, j.message);
    assert.match(await squidBasic.waitAccessLog(new RegExp(BASIC_USER)), new RegExp(BASIC_USER));

    j = await proxyTest(basic(WRONG_PW));
    assert.equal(j.ok, false);
    assert.equal(j.stage, 'proxy_auth', j.message);
    assert.equal(j.http_status, 407);
    assert.match(j.message, /rejects the credentials/);

    j = await proxyTest(viaProxy(squidBasic));
    assert.equal(j.stage, 'proxy_auth', j.message);
    assert.equal(j.http_status, 407);
    assert.match(j.message, /demands authentication/);
    assert.match(j.message, /offers Basic/);
  });

  test('Digest: right password passes, wrong is a 407', async () => {
    const digest = (pw, method = 'digest') => viaProxy(squidDigest, {
      'proxy.auth_required': true, 'proxy.auth_method': method,
      'proxy.username': DIGEST_USER, 'proxy.password': pw,
    });
    let j = await proxyTest(digest(DIGEST_PW));
    assert.equal(j.ok, true, j.message);

    j = await proxyTest(digest(WRONG_PW));
    assert.equal(j.stage, 'proxy_auth', j.message);
    assert.equal(j.http_status, 407);
    assert.match(j.message, /rejects the credentials/);

    // The right password with the wrong method: the sentence names the one offered.
    j = await proxyTest(digest(DIGEST_PW, 'basic'));
    assert.equal(j.stage, 'proxy_auth', j.message);
    assert.match(j.message, /does not accept Basic authentication/);
    assert.match(j.message, /offers Digest/);
  });

  test('the proxy host name does not resolve', async () => {
    const j = await proxyTest({ 'proxy.enabled': true, 'proxy.host': 'squid.atrium-test.invalid',
      'proxy.port': 3128 });
    assert.equal(j.stage, 'proxy_resolve', j.message);
    assert.match(j.message, /The proxy host name squid\.atrium-test\.invalid does not resolve/);
    assert.match(j.message, /working DNS server/);
    assert.equal(j.http_status, undefined);
  });

  test('the proxy refuses the connection (closed port)', async () => {
    const j = await proxyTest({ 'proxy.enabled': true, 'proxy.host': '127.0.0.1',
      'proxy.port': deadPort });
    assert.equal(j.stage, 'proxy_connect', j.message);
    assert.match(j.message, new RegExp(`127\\.0\\.0\\.1:${deadPort} refuses the connection`));
  });

  test('the proxy accepts and never answers: a timeout within the budget', async () => {
    const j = await proxyTest({ 'proxy.enabled': true, 'proxy.host': '127.0.0.1',
      'proxy.port': silent.port });
    assert.equal(j.stage, 'proxy_timeout', j.message);
    assert.match(j.message, /does not answer within 3 seconds/);
    assert.ok(j.elapsed_ms >= BUDGET_MS - 200, `gave up after ${j.elapsed_ms} ms`);
  });

  test('squid refuses CONNECT to the port (ACL)', async () => {
    await setSaved({ 'license.server_url': `https://localhost:${deniedPort}/v1/status` });
    try {
      const j = await proxyTest(viaProxy(squidOpen));
      assert.equal(j.stage, 'proxy_tunnel', j.message);
      assert.equal(j.http_status, 403);
      assert.match(j.message, /refuses to open a connection/);
    } finally {
      await setSaved({ 'license.server_url': license.url() });
    }
  });

  test('the license server certificate is not trusted', async () => {
    await setSaved({ 'license.server_url': untrusted.url() });
    try {
      let j = await proxyTest({ 'proxy.enabled': false });
      assert.equal(j.stage, 'tls', j.message);
      assert.match(j.message, /certificate .* is not trusted/);
      assert.match(j.message, /<CABundle>/);
      // Through the proxy as well: the tunnel is ours, the check is too.
      j = await proxyTest(viaProxy(squidOpen));
      assert.equal(j.stage, 'tls', j.message);
      assert.equal(untrusted.requests.length, 0);
    } finally {
      await setSaved({ 'license.server_url': license.url() });
    }
  });

  test('the license server answers 503', async () => {
    await setSaved({ 'license.server_url': license503.url() });
    try {
      for (const body of [{ 'proxy.enabled': false }, viaProxy(squidOpen)]) {
        const j = await proxyTest(body);
        assert.equal(j.ok, false);
        assert.equal(j.stage, 'server_http', j.message);
        assert.equal(j.http_status, 503);
        assert.match(j.message, /HTTP 503/);
      }
    } finally {
      await setSaved({ 'license.server_url': license.url() });
    }
  });

  test("the license server's name does not resolve (here, and at the proxy)", async () => {
    await setSaved({ 'license.server_url': 'https://license.atrium-test.invalid/v1/status' });
    try {
      let j = await proxyTest({ 'proxy.enabled': false });
      assert.equal(j.stage, 'server_resolve', j.message);
      assert.match(j.message, /license\.atrium-test\.invalid\) does not resolve/);
      assert.match(j.message, /working DNS server/);
      // squid asks its DNS server (one that knows no names; binding it needs
      // root). squid 5 answers such a CONNECT with 500 ERR_CANNOT_FORWARD, not
      // ERR_DNS_FAIL, so the proxy's side of it reads "cannot reach".
      if (dns) {
        const queries = dns.queries();
        j = await proxyTest(viaProxy(squidOpen));
        assert.ok(['server_resolve', 'server_connect'].includes(j.stage), j.message);
        assert.match(j.message, /cannot (resolve|reach) the license server/);
        assert.ok(dns.queries() > queries, 'squid asked its DNS server');
      }
    } finally {
      await setSaved({ 'license.server_url': license.url() });
    }
  });

  test('bypass: the license host listed goes direct, even with a dead proxy', async () => {
    const dead = { 'proxy.enabled': true, 'proxy.host': '127.0.0.1', 'proxy.port': deadPort };
    let j = await proxyTest({ ...dead, 'proxy.bypass': ['localhost'] });
    assert.equal(j.ok, true, j.message);
    j = await proxyTest({ ...dead, 'proxy.bypass': ['*.example.com', '.localhost'] });
    assert.equal(j.stage, 'proxy_connect', j.message); // ".localhost" is below, not localhost
    // Ranges match addresses, and the URL names a host: not resolved to match.
    j = await proxyTest({ ...dead, 'proxy.bypass': ['127.0.0.0/8'] });
    assert.equal(j.stage, 'proxy_connect', j.message);
  });

  test('unsaved values are used and nothing is saved or audited', async () => {
    await setSaved({ 'proxy.enabled': false, 'proxy.host': '', 'proxy.port': 8080 });
    const settingsBefore = await api('GET', '/api/v1/settings');
    const auditBefore = await api('GET', '/api/v1/audit');
    const j = await proxyTest(viaProxy(squidBasic, {
      'proxy.auth_required': true, 'proxy.username': BASIC_USER, 'proxy.password': BASIC_PW,
    }));
    assert.equal(j.ok, true, j.message);
    const settingsAfter = await api('GET', '/api/v1/settings');
    const auditAfter = await api('GET', '/api/v1/audit');
    assert.deepEqual(settingsAfter.json, settingsBefore.json);
    assert.deepEqual(auditAfter.json, auditBefore.json);
    assert.equal(settingsAfter.json.settings['proxy.enabled'].value, false);
    assert.deepEqual(settingsAfter.json.settings['proxy.password'].value, { set: false });
  });

  test('the saved password is used when the form leaves it out or sends {"set": true}', async () => {
    await setSaved({
      'proxy.enabled': true, 'proxy.host': '127.0.0.1', 'proxy.port': squidBasic.port,
      'proxy.auth_required': true, 'proxy.auth_method': 'basic',
      'proxy.username': BASIC_USER, 'proxy.password': BASIC_PW,
    });
    try {
      let j = await proxyTest({});
      assert.equal(j.ok, true, j.message);
      j = await proxyTest({ 'proxy.password': { set: true } });
      assert.equal(j.ok, true, j.message);
      j = await proxyTest({ 'proxy.password': WRONG_PW });
      assert.equal(j.stage, 'proxy_auth', j.message);
      j = await proxyTest({ 'proxy.password': null });
      assert.equal(j.stage, 'proxy_auth', j.message);
      // Changes on the next request, no restart: the saved proxy is used as saved.
      await setSaved({ 'proxy.port': squidDigest.port, 'proxy.auth_method': 'digest',
        'proxy.username': DIGEST_USER, 'proxy.password': DIGEST_PW });
      j = await proxyTest({});
      assert.equal(j.ok, true, j.message);
    } finally {
      await setSaved({ 'proxy.enabled': false, 'proxy.auth_required': false,
        'proxy.auth_method': 'basic', 'proxy.username': '', 'proxy.password': null,
        'proxy.host': '' });
    }
  });

  test('invalid values: 422 naming each key, and no traffic at all', async () => {
    const licenseBefore = license.requests.length;
    const logs = [await squidOpen.settleAccessLog(), await squidBasic.settleAccessLog(),
      await squidDigest.settleAccessLog()];
    const cases = [
      [{ 'proxy.port': 0 }, ['proxy.port']],
      [{ 'proxy.port': '3128' }, ['proxy.port']],
      [{ 'proxy.host': 'not a host' }, ['proxy.host']],
      [{ 'proxy.auth_method': 'kerberos' }, ['proxy.auth_method']],
      [{ 'proxy.bypass': ['*'] }, ['proxy.bypass']],
      [{ 'proxy.enabled': true, 'proxy.host': '' }, ['proxy.host']],
      [{ 'proxy.auth_required': true, 'proxy.username': '' }, ['proxy.username']],
      // The test cannot be pointed anywhere else.
      [{ 'license.server_url': `https://localhost:${untrusted.port}/` }, ['license.server_url']],
      [{ url: 'https://example.com/' }, ['url']],
      [{ 'proxy.url': 'http://x/' }, ['proxy.url']],
      [{ 'proxy.password': { value: 'x' } }, ['proxy.password']],
    ];
    for (const [body, keys] of cases) {
      const r = await api('POST', '/api/v1/proxy/test', body);
      assert.deepEqual(problemKeys(r, 422, assert), keys, JSON.stringify(body));
    }
    const r = await api('POST', '/api/v1/proxy/test', [1, 2]);
    assert.equal(r.status, 400, r.text);
    assert.equal(license.requests.length, licenseBefore);
    assert.deepEqual([await squidOpen.settleAccessLog(), await squidBasic.settleAccessLog(),
      await squidDigest.settleAccessLog()], logs);
    assert.equal(untrusted.requests.length, 0);
  });

  test('one test at a time: a second one while the first runs gets 409', async () => {
    const slow = api('POST', '/api/v1/proxy/test', { 'proxy.enabled': true,
      'proxy.host': '127.0.0.1', 'proxy.port': silent.port });
    // Give the first request time to start before the second arrives. The
    // second comes from atriumctl, on a connection of its own: a keep-alive
    // connection of this process may be served by the thread the first test
    // holds, and would simply wait for it.
    await new Promise((r) => setTimeout(r, 500));
    const second = await ctl(server, ['proxy', 'test', 'proxy.enabled=false'], { token });
    assert.equal(second.code, 5, second.stdout + second.stderr);
    assert.match(second.stderr, /Another connection test is running/);
    const first = await slow;
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.stage, 'proxy_timeout');
  });

  test('a slow test holds none of the server threads: other requests answer at once', async () => {
    const slow = api('POST', '/api/v1/proxy/test', { 'proxy.enabled': true,
      'proxy.host': '127.0.0.1', 'proxy.port': silent.port });
    await new Promise((r) => setTimeout(r, 300));
    // More requests at once than the server has threads, on this process's
    // keep-alive connections: none may wait for the silent proxy.
    const t0 = Date.now();
    const rs = await Promise.all(Array.from({ length: 8 }, () =>
      server.api('GET', '/api/v1/settings', { token, timeoutMs: 10000 })));
    const wall = Date.now() - t0;
    for (const r of rs) assert.equal(r.status, 200, r.text);
    assert.ok(wall < BUDGET_MS / 2, `8 GETs took ${wall} ms while a test was running`);
    const first = await slow;
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.stage, 'proxy_timeout');
  });

  test('no body at all tests the saved values', async () => {
    await setSaved({ 'proxy.enabled': false });
    const r = await server.api('POST', '/api/v1/proxy/test', { token, raw: '',
      timeoutMs: BUDGET_MS + 10000 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.ok, true, r.text);
    assert.equal(r.json.stage, 'ok');
  });

  test('admins only', async () => {
    const r = await server.api('POST', '/api/v1/proxy/test', { body: {} });
    assert.equal(r.status, 401, r.text);
  });

  test('atriumctl proxy test: message, stage, exit 0 / 1', async () => {
    let r = await ctl(server, ['proxy', 'test', 'proxy.enabled=false'], { token });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^The license server could be contacted successfully\.\n/);
    assert.match(r.stdout, /stage: ok, HTTP 200, \d+ ms/);

    r = await ctl(server, ['proxy', 'test', 'proxy.enabled=true', 'proxy.host=127.0.0.1',
      `proxy.port=${deadPort}`], { token });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /refuses the connection/);
    assert.match(r.stdout, /stage: proxy_connect/);

    // The password from stdin, never on the command line.
    r = await ctl(server, ['proxy', 'test', 'proxy.enabled=true', 'proxy.host=127.0.0.1',
      `proxy.port=${squidBasic.port}`, 'proxy.auth_required=true', `proxy.username=${BASIC_USER}`,
      'proxy.password=-'], { token, input: BASIC_PW });
    assert.equal(r.code, 0, r.stdout + r.stderr);

    r = await ctl(server, ['--json', 'proxy', 'test', 'proxy.enabled=false'], { token });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).stage, 'ok');

    r = await ctl(server, ['proxy', 'test', 'license.server_url=https://example.com/'], { token });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /license\.server_url/);

    r = await ctl(server, ['proxy', 'check'], { token });
    assert.equal(r.code, 2);
    r = await ctl(server, ['proxy', 'test', 'proxy.port'], { token });
    assert.equal(r.code, 2);
    for (const out of [r.stdout, r.stderr]) responses.push(out);
  });

  test('no password ever appears in responses or in the server output', async () => {
    // One more round with every password, at the most verbose log level.
    await proxyTest(viaProxy(squidBasic, { 'proxy.auth_required': true,
      'proxy.username': BASIC_USER, 'proxy.password': WRONG_PW }));
    const out = await server.waitOutput(/proxy test: stage=proxy_auth, elapsed=\d+ ms/);
    assert.match(out, /proxy test: stage=proxy_auth, elapsed=\d+ ms/);
    for (const pw of ALL_PASSWORDS) {
      assert.ok(!out.includes(pw), `the server output holds ${pw}`);
      for (const text of responses) assert.ok(!text.includes(pw), `a response holds ${pw}`);
    }
  });
});
