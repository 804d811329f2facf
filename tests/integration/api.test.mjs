// REST API round trips against a real atriumd (shared/spec/settings.md).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, freeUdpPort, CONTRACT_KEYS, SECRET_KEYS, problemKeys, auditValue,
} from './harness.mjs';

const SECRET_TEXT = 'Pr0xy-S3cret-Zebra-7781';
const AD_SECRET_TEXT = 'Ad-B1nd-S3cret-Quokka-4410';

let srv;
let token;

before(async () => {
  srv = await startServer();
  token = await srv.login();
});
after(async () => {
  if (srv) await srv.stop();
});

async function getSettings(t = token) {
  const r = await srv.api('GET', '/api/v1/settings', { token: t });
  assert.equal(r.status, 200, r.text);
  return r;
}
async function patch(body, extra = {}) {
  return srv.api('PATCH', '/api/v1/settings', { body, token, ...extra });
}
function values(doc) {
  return Object.fromEntries(Object.entries(doc.settings).map(([k, v]) => [k, v.value]));
}

describe('unauthenticated', () => {
  test('GET /healthz answers 200 without a token', async () => {
    const r = await srv.api('GET', '/healthz');
    assert.equal(r.status, 200, r.text);
  });

  test('settings without a token is a 401 problem document', async () => {
    const r = await srv.api('GET', '/api/v1/settings');
    problemKeys(r, 401, assert);
    assert.ok(!r.text.includes('"settings"'));
  });

  test('a wrong bearer token is a 401', async () => {
    const r = await srv.api('GET', '/api/v1/settings', { token: 'not-a-token' });
    problemKeys(r, 401, assert);
  });

  test('PATCH without a token is a 401 and changes nothing', async () => {
    const before = (await getSettings()).text;
    const r = await srv.api('PATCH', '/api/v1/settings', { body: { 'login.publish_address': true } });
    problemKeys(r, 401, assert);
    assert.equal((await getSettings()).text, before);
  });
});

describe('login', () => {
  test('good credentials give token, csrf, expires and a session cookie', async () => {
    const r = await srv.api('POST', '/api/v1/session', { body: { user: 'admin', password: srv.adminPassword } });
    assert.equal(r.status, 200, r.text);
    assert.equal(typeof r.json.token, 'string');
    assert.ok(r.json.token.length >= 16, 'token too short');
    assert.equal(typeof r.json.csrf, 'string');
    assert.ok(r.json.csrf.length >= 16, 'csrf token too short');
    assert.ok(r.json.expires !== undefined && r.json.expires !== null, 'expires missing');
    const cookies = r.headers.getSetCookie();
    assert.ok(cookies.some((c) => c.startsWith('atrium_session=')), `cookies: ${cookies}`);
    const t = r.json.token;
    const g = await srv.api('GET', '/api/v1/settings', { token: t });
    assert.equal(g.status, 200);
  });

  test('the body takes login (user is its old name); expires_at is RFC 3339', async () => {
    const rfc3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
    let r = await srv.api('POST', '/api/v1/session', { body: { login: 'admin', password: srv.adminPassword } });
    assert.equal(r.status, 200, r.text);
    assert.match(r.json.expires_at, rfc3339);
    assert.ok(Date.parse(r.json.expires_at) > Date.now());
    assert.equal(r.json.login, 'admin');
    // The old names, for one release: the same values.
    assert.equal(r.json.expires, r.json.expires_at);
    assert.equal(r.json.user, 'admin');
    const g = await srv.api('GET', '/api/v1/session', { token: r.json.token });
    assert.equal(g.json.login, 'admin');
    assert.match(g.json.expires_at, rfc3339);
    r = await srv.api('POST', '/api/v1/session', { body: { user: 'admin', password: srv.adminPassword } });
    assert.equal(r.status, 200, 'user still works');
    r = await srv.api('POST', '/api/v1/session', { body: { login: 'admin', user: 'admin', password: srv.adminPassword } });
    assert.equal(r.status, 200, 'both, the same');
    r = await srv.api('POST', '/api/v1/session', { body: { login: 'admin', user: 'other', password: srv.adminPassword } });
    assert.equal(r.status, 422);
    assert.equal(r.json.errors[0].key, 'user');
    r = await srv.api('POST', '/api/v1/session', { body: { password: srv.adminPassword } });
    assert.equal(r.status, 422);
    assert.equal(r.json.errors[0].key, 'login');
    assert.match(r.json.detail, /"login" and "password"/);
  });

  test('the client login answers expires_at in RFC 3339 too', async () => {
    const name = `exp${Date.now() % 100000}`;
    const c = await srv.api('POST', '/api/v1/users', { token, body: { name, password: 'Client-Passw0rd-1' } });
    assert.equal(c.status, 201, c.text);
    const r = await srv.api('POST', '/client/v1/login', { body: { login: c.json.login, password: 'Client-Passw0rd-1' } });
    assert.equal(r.status, 200, r.text);
    assert.match(r.json.expires_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    // The old epoch seconds, for one release: the same moment.
    assert.equal(typeof r.json.expires, 'number');
    assert.equal(Date.parse(r.json.expires_at), r.json.expires * 1000);
    assert.ok(Date.parse(r.json.expires_at) > Date.now() + 29 * 86400e3, '30 days');
    await srv.api('DELETE', `/api/v1/users/${name}`, { token });
  });

  test('a wrong password is a 401 problem document', async () => {
    const r = await srv.api('POST', '/api/v1/session', { body: { user: 'admin', password: 'wrong-password-x' } });
    problemKeys(r, 401, assert);
    assert.equal(r.json.token, undefined);
    assert.equal(r.headers.getSetCookie().filter((c) => /atrium_session=[^;]+/.test(c) && !/atrium_session=;/.test(c)
      && !/Max-Age=0/i.test(c)).length, 0, 'no session cookie on failure');
  });

  test('an unknown user is a 401 problem document', async () => {
    const r = await srv.api('POST', '/api/v1/session', { body: { user: 'nobody', password: srv.adminPassword } });
    problemKeys(r, 401, assert);
  });

  test('after 5 failed logins the next is 429 with Retry-After (separate server)', async () => {
    const s2 = await startServer({ productionLogins: true });
    try {
      for (let i = 1; i <= 5; i++) {
        const r = await s2.api('POST', '/api/v1/session', { body: { user: 'admin', password: `bad-${i}-password` } });
        problemKeys(r, 401, assert);
      }
      const r = await s2.api('POST', '/api/v1/session', { body: { user: 'admin', password: 'bad-6-password' } });
      problemKeys(r, 429, assert);
      const ra = r.headers.get('retry-after');
      assert.ok(ra !== null, 'Retry-After header missing');
      assert.match(ra, /^\d+$/);
      assert.ok(Number(ra) >= 1, `Retry-After ${ra}`);
      // While slowed down even the right password is refused; otherwise the
      // delay would not slow a guesser down.
      const good = await s2.api('POST', '/api/v1/session', { body: { user: 'admin', password: s2.adminPassword } });
      problemKeys(good, 429, assert);
      assert.ok(!s2.output().includes('bad-6-password'), 'a tried password was logged');
    } finally {
      await s2.stop();
    }
  });
});

describe('GET settings and schema', () => {
  test('every contract key is present with value and source; secrets are {"set":false}', async () => {
    const r = await getSettings();
    assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
    const doc = r.json;
    assert.equal(typeof doc.version, 'number');
    assert.ok(Number.isInteger(doc.version) && doc.version >= 0);
    for (const key of Object.keys(CONTRACT_KEYS)) {
      const s = doc.settings[key];
      assert.ok(s, `key ${key} missing from GET /api/v1/settings`);
      assert.ok('value' in s, `${key}: no value`);
      assert.ok(['default', 'install', 'store', 'env'].includes(s.source), `${key}: source ${s.source}`);
    }
    for (const key of SECRET_KEYS) {
      assert.deepEqual(doc.settings[key].value, { set: false }, key);
    }
  });

  test('ETag is the quoted version', async () => {
    const r = await getSettings();
    assert.equal(r.headers.get('etag'), `"${r.json.version}"`);
  });

  test('defaults of a fresh server follow the contract', async () => {
    const s = (await getSettings()).json.settings;
    const fresh = Object.keys(CONTRACT_KEYS).filter((k) => !['server.public_url', 'domain.name'].includes(k));
    for (const k of fresh) assert.equal(s[k].source, 'default', `${k} source`);
    // Fixed at first start, not following: the source says so.
    assert.equal(s['server.public_url'].source, 'install');
    assert.equal(s['domain.name'].source, 'install');
    assert.equal(s['federation.enabled'].value, false);
    assert.equal(s['login.allow_automatic'].value, true);
    assert.equal(s['login.publish_address'].value, false);
    assert.equal(s['proxy.enabled'].value, false);
    assert.equal(s['proxy.port'].value, 8080);
    assert.equal(s['proxy.auth_required'].value, false);
    assert.equal(s['proxy.auth_method'].value, 'basic');
    assert.deepEqual(s['proxy.bypass'].value, []);
    assert.equal(s['mobile.push_enabled'].value, false);
    assert.equal(s['meeting.enabled'].value, false);
    const port = s['login.discovery_port'].value;
    assert.ok(Number.isInteger(port) && port >= 1 && port <= 65535);
    // domain: at least two labels
    assert.match(s['domain.name'].value, /^[a-z0-9-]+(\.[a-z0-9-]+)+$/);
    assert.match(s['server.public_url'].value, /^https?:\/\/[^/]+$/, 'public_url is a base URL without trailing /');
    assert.match(s['license.server_url'].value, /^https:\/\//);
    // QoS defaults: two web meeting policies, AF41, 50 Mbit/s
    const q = s['qos.policies'].value;
    assert.equal(q.length, 2);
    assert.deepEqual(q.map((p) => p.name).sort(), ['Web Meeting (HTTP)', 'Web Meeting (HTTPS)']);
    for (const p of q) {
      assert.equal(p.dscp, 34);
      assert.equal(p.max_rate_mbps, 50);
      assert.equal(p.include_subdirectories, true);
      assert.equal(p.any_destination, true);
    }
    assert.ok(q.find((p) => p.name === 'Web Meeting (HTTP)').url.startsWith('http://'));
    assert.ok(q.find((p) => p.name === 'Web Meeting (HTTPS)').url.startsWith('https://'));
  });

  test('blank-means-default keys report the computed effective value', async () => {
    const s = (await getSettings()).json.settings;
    const pub = s['server.public_url'].value;
    assert.equal(s['um.url'].value, '');
    assert.equal(s['um.url'].effective, `${pub}/umsettings/`);
    assert.equal(s['meeting.url'].value, '');
    assert.equal(s['meeting.url'].effective, `${pub}/webmeeting/`);
    assert.equal(s['federation.fqdn'].value, '');
    assert.equal(s['federation.fqdn'].effective, s['domain.name'].value);
    assert.equal(s['docs.url'].value, '');
    assert.match(s['docs.url'].effective, /^https?:\/\//);
  });

  test('schema lists every key with section, type, default and help', async () => {
    const r = await srv.api('GET', '/api/v1/settings/schema', { token });
    assert.equal(r.status, 200, r.text);
    assert.ok(Array.isArray(r.json.settings), 'schema.settings must be an array');
    assert.ok(Array.isArray(r.json.sections), 'schema.sections must be an array');
    const byKey = new Map(r.json.settings.map((e) => [e.key, e]));
    const sectionIds = new Set(r.json.sections.map((s) => s.id));
    for (const [key, type] of Object.entries(CONTRACT_KEYS)) {
      const e = byKey.get(key);
      assert.ok(e, `schema lacks ${key}`);
      assert.equal(e.section, key.split('.')[0], `${key} section`);
      assert.ok(sectionIds.has(e.section), `${key}: section ${e.section} not in sections`);
      assert.equal(e.type, type, `${key} type`);
      assert.equal(typeof e.help, 'string', `${key} help`);
      assert.ok(e.help.trim().length > 0, `${key}: empty help`);
      assert.ok('default' in e, `${key}: no default`);
    }
    const m = JSON.stringify(byKey.get('proxy.auth_method'));
    for (const c of ['basic', 'digest', 'ntlm', 'negotiate']) assert.ok(m.includes(`"${c}"`), `enum ${c} in ${m}`);
  });
});

describe('PATCH round trips', () => {
  test('bool, port, IDN host, URLs, lists: normalised and versioned', async () => {
    const g0 = await getSettings();
    const v0 = g0.json.version;
    const policies = [
      { name: 'Voice', dscp: 46, max_rate_mbps: 10, url: 'https://VOICE.example.com/*', include_subdirectories: false, any_destination: true },
      { name: 'Bulk', dscp: 8, max_rate_mbps: 100000, url: 'http://bulk.example.com/data', include_subdirectories: true, any_destination: false },
    ];
    const body = {
      'login.publish_address': true,
      'login.discovery_port': 5061,
      'proxy.port': 3129,
      'proxy.host': 'Bücher.Example',
      'mobile.app_url': 'https://m.example.com:443/app',
      'mobile.webapi_url': 'https://m.example.com:7443/webapi',
      'proxy.bypass': ['*.Example.COM', '10.0.0.0/8', 'fd00::/8', '.corp.example.net'],
      'qos.policies': policies,
      'ad.uri': 'ldaps://dc1.example.com:636',
      'ad.bind_dn': 'cn=atrium,ou=svc,dc=example,dc=com',
    };
    const r = await patch(body);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.version, v0 + 1, 'one change, one version');
    const g = await getSettings();
    assert.equal(g.json.version, v0 + 1);
    assert.equal(g.headers.get('etag'), `"${v0 + 1}"`);
    assert.deepEqual(r.json.settings, g.json.settings, 'PATCH answers with the new document');
    const v = values(g.json);
    assert.equal(v['login.publish_address'], true);
    assert.equal(v['login.discovery_port'], 5061);
    assert.equal(v['proxy.port'], 3129);
    assert.equal(v['proxy.host'], 'xn--bcher-kva.example');
    assert.equal(v['mobile.app_url'], 'https://m.example.com/app');
    assert.equal(v['mobile.webapi_url'], 'https://m.example.com:7443/webapi');
    assert.deepEqual(v['proxy.bypass'], ['*.example.com', '10.0.0.0/8', 'fd00::/8', '.corp.example.net']);
    assert.equal(v['qos.policies'].length, 2);
    assert.equal(v['qos.policies'][0].name, 'Voice');
    assert.equal(v['qos.policies'][0].dscp, 46);
    assert.equal(v['qos.policies'][0].url, 'https://voice.example.com/*');
    assert.deepEqual(v['qos.policies'][1], policies[1]);
    assert.match(v['ad.uri'], /^ldaps:\/\/dc1\.example\.com\/?$/, ':636 is the ldaps default port');
    assert.equal(v['ad.bind_dn'], 'cn=atrium,ou=svc,dc=example,dc=com');
    for (const k of Object.keys(body)) assert.equal(g.json.settings[k].source, 'store', `${k} source`);
  });

  test('IPv4 and IPv6 literals are accepted for proxy.host', async () => {
    let r = await patch({ 'proxy.host': '192.0.2.10' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.settings['proxy.host'].value, '192.0.2.10');
    r = await patch({ 'proxy.host': '[2001:DB8::1]' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.settings['proxy.host'].value, '2001:db8::1');
  });

  test('federation.fqdn equal to or one label below domain.name', async () => {
    const dom = (await getSettings()).json.settings['domain.name'].value;
    let r = await patch({ 'federation.fqdn': `SIP.${dom}` });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.settings['federation.fqdn'].value, `sip.${dom}`);
    assert.equal(r.json.settings['federation.fqdn'].effective ?? `sip.${dom}`, `sip.${dom}`);
    r = await patch({ 'federation.fqdn': dom });
    assert.equal(r.status, 200, r.text);
    r = await patch({ 'federation.fqdn': '' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.settings['federation.fqdn'].effective, dom);
  });

  test('a blank URL falls back to the computed default; :80 normalised away', async () => {
    let r = await patch({ 'um.url': 'http://um.example.com:80/umsettings/' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.settings['um.url'].value, 'http://um.example.com/umsettings/');
    r = await patch({ 'um.url': '' });
    assert.equal(r.status, 200, r.text);
    const pub = r.json.settings['server.public_url'].value;
    assert.equal(r.json.settings['um.url'].effective, `${pub}/umsettings/`);
  });

  test('a change of meeting.url adapts the default QoS policies', async () => {
    // Fresh server: the earlier test changed qos.policies on the shared one.
    const s2 = await startServer();
    try {
      const t2 = await s2.login();
      const r = await s2.api('PATCH', '/api/v1/settings', { token: t2, body: { 'meeting.url': 'https://meet.example.com/wm/' } });
      assert.equal(r.status, 200, r.text);
      const q = r.json.settings['qos.policies'].value;
      assert.equal(q.length, 2);
      for (const p of q) assert.ok(p.url.includes('meet.example.com'), `policy ${p.name} url ${p.url}`);
    } finally {
      await s2.stop();
    }
  });

  test('If-Match: current version applies, stale version is 412 and changes nothing', async () => {
    const g = await getSettings();
    const v = g.json.version;
    const ok = await patch({ 'mobile.push_enabled': true }, { headers: { 'if-match': `"${v}"` } });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.version, v + 1);
    const before = await getSettings();
    const stale = await patch({ 'mobile.push_enabled': false }, { headers: { 'if-match': `"${v}"` } });
    problemKeys(stale, 412, assert);
    const after = await getSettings();
    assert.equal(after.text, before.text, 'a stale PATCH changed the settings');
    assert.equal(after.json.settings['mobile.push_enabled'].value, true);
  });
});

describe('concurrent changes', () => {
  test('concurrent PATCHes with the same If-Match: exactly one wins', async () => {
    const v = (await getSettings()).json.version;
    const N = 10;
    const rs = await Promise.all(Array.from({ length: N }, (_, i) => patch({ 'login.discovery_port': 40000 + i },
      { headers: { 'if-match': `"${v}"` } })));
    const ok = rs.filter((r) => r.status === 200);
    const stale = rs.filter((r) => r.status === 412);
    assert.equal(ok.length, 1, rs.map((r) => r.status).join(','));
    assert.equal(stale.length, N - 1, rs.map((r) => r.status).join(','));
    const g = await getSettings();
    assert.equal(g.json.version, v + 1);
    assert.equal(g.json.settings['login.discovery_port'].value, ok[0].json.settings['login.discovery_port'].value);
  });

  test('concurrent PATCHes without If-Match are all applied, one version each', async () => {
    const v = (await getSettings()).json.version;
    const a0 = (await srv.api('GET', '/api/v1/audit?offset=0&limit=1', { token })).json.total;
    const N = 20;
    const rs = await Promise.all(Array.from({ length: N }, (_, i) => patch({ 'login.discovery_port': 41000 + i })));
    assert.deepEqual(rs.map((r) => r.status), Array(N).fill(200));
    const versions = rs.map((r) => r.json.version).sort((a, b) => a - b);
    assert.deepEqual(versions, Array.from({ length: N }, (_, i) => v + 1 + i), 'each change has its own version');
    const g = await getSettings();
    assert.equal(g.json.version, v + N);
    const last = rs.find((r) => r.json.version === v + N);
    assert.equal(g.json.settings['login.discovery_port'].value, last.json.settings['login.discovery_port'].value);
    const a = await srv.api('GET', '/api/v1/audit?offset=0&limit=1', { token });
    assert.equal(a.json.total, a0 + N);
  });
});

describe('validate', () => {
  test('a good body is valid, changes nothing', async () => {
    const before = await getSettings();
    const r = await srv.api('POST', '/api/v1/settings/validate', { token, body: { 'proxy.port': 8081 } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.valid, true);
    assert.ok(Array.isArray(r.json.warnings));
    assert.equal((await getSettings()).text, before.text);
  });

  test('meeting.url with http is valid with a warning', async () => {
    const r = await srv.api('POST', '/api/v1/settings/validate', { token, body: { 'meeting.url': 'http://meet.example.com/webmeeting/' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.valid, true);
    assert.ok(r.json.warnings.some((w) => w.key === 'meeting.url' && typeof w.message === 'string'), r.text);
  });

  test('push through a disabled proxy is valid with a warning', async () => {
    const s = (await getSettings()).json.settings;
    assert.equal(s['proxy.enabled'].value, false);
    const r = await srv.api('POST', '/api/v1/settings/validate', { token, body: { 'mobile.push_use_proxy': true } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.valid, true);
    assert.ok(r.json.warnings.some((w) => w.key === 'mobile.push_use_proxy'), r.text);
  });

  test('a bad body is a 422 naming the key, changes nothing', async () => {
    const before = await getSettings();
    const r = await srv.api('POST', '/api/v1/settings/validate', { token, body: { 'proxy.port': 0 } });
    assert.deepEqual(problemKeys(r, 422, assert), ['proxy.port']);
    assert.equal((await getSettings()).text, before.text);
  });

  test('text that is not a URL is called not a URL, not a space to encode', async () => {
    for (const key of ['um.url', 'server.public_url', 'ad.uri']) {
      const r = await srv.api('POST', '/api/v1/settings/validate', { token, body: { [key]: 'not a url' } });
      assert.deepEqual(problemKeys(r, 422, assert), [key]);
      const m = r.json.errors[0].message;
      assert.match(m, /^Is not an absolute URL; it must start with /, `${key}: ${m}`);
      assert.match(m, key === 'ad.uri' ? /such as ldaps:\/\/dc\.example\.com/ : /such as https:\/\/atrium\.example\.com\//);
      assert.doesNotMatch(m, /%20|space/);
    }
    // A URL with a space in its path is still told how to encode it.
    const r = await srv.api('POST', '/api/v1/settings/validate', { token, body: { 'um.url': 'https://a.example.com/a b' } });
    assert.match(r.json.errors[0].message, /Contains a space; encode it as %20/);
  });

  test('a PATCH that draws a warning is applied and the warning is reported', async () => {
    const r = await patch({ 'meeting.url': 'http://meet.example.com/webmeeting/' });
    assert.equal(r.status, 200, r.text);
    const s = r.json.settings['meeting.url'];
    assert.equal(s.value, 'http://meet.example.com/webmeeting/');
    assert.ok(Array.isArray(s.warnings) && s.warnings.length > 0, `warnings on meeting.url: ${JSON.stringify(s)}`);
  });
});

describe('export and import', () => {
  test('export of one server imported into a fresh one reproduces the values', async () => {
    const e = await srv.api('GET', '/api/v1/settings/export', { token });
    assert.equal(e.status, 200, e.text);
    assert.equal(e.json.format, 'atrium-settings');
    assert.equal(e.json.format_version, 1);
    assert.equal(typeof e.json.version, 'number');
    for (const k of SECRET_KEYS) assert.ok(!(k in e.json.settings), `export contains secret ${k}`);
    // Both servers run on this one machine and the first one publishes its
    // address: the second must answer discovery on another UDP port, or the
    // import is (rightly) refused because the port is taken.
    if (e.json.settings['login.publish_address']) {
      e.json.settings['login.discovery_port'] = await freeUdpPort();
    }
    const s2 = await startServer();
    try {
      const t2 = await s2.login();
      const before2 = (await s2.api('GET', '/api/v1/settings', { token: t2 })).json.version;
      const r = await s2.api('POST', '/api/v1/settings/import', { token: t2, body: e.json });
      assert.equal(r.status, 200, r.text);
      assert.equal(typeof r.json.imported, 'number');
      assert.ok(r.json.imported > 0);
      assert.ok(r.json.version > before2);
      assert.ok(Array.isArray(r.json.warnings));
      const e2 = await s2.api('GET', '/api/v1/settings/export', { token: t2 });
      assert.equal(e2.status, 200);
      assert.deepEqual(e2.json.settings, e.json.settings);
      const g2 = await s2.api('GET', '/api/v1/settings', { token: t2 });
      assert.equal(g2.json.version, r.json.version);
      const g1 = await getSettings();
      for (const k of Object.keys(e.json.settings)) {
        if (k === 'login.discovery_port') continue; // moved above, on purpose
        assert.deepEqual(g2.json.settings[k].value, g1.json.settings[k].value, k);
      }
    } finally {
      await s2.stop();
    }
  });

  test('import of something that is not an export document is refused', async () => {
    const before = await getSettings();
    const r = await srv.api('POST', '/api/v1/settings/import', { token, body: { 'proxy.port': 3000 } });
    assert.ok([400, 422].includes(r.status), r.text);
    problemKeys(r, r.status, assert);
    assert.equal((await getSettings()).text, before.text);
  });
});

describe('audit log', () => {
  test('changes are logged newest first with actor, key, old and new', async () => {
    const g = await getSettings();
    const old = g.json.settings['proxy.auth_method'].value;
    const r1 = await patch({ 'proxy.auth_method': 'digest' });
    assert.equal(r1.status, 200, r1.text);
    const r2 = await patch({ 'proxy.auth_method': 'ntlm' });
    assert.equal(r2.status, 200, r2.text);
    const a = await srv.api('GET', '/api/v1/audit?offset=0&limit=2', { token });
    assert.equal(a.status, 200, a.text);
    assert.equal(typeof a.json.total, 'number');
    assert.equal(a.json.offset, 0);
    assert.equal(a.json.limit, 2);
    assert.equal(a.json.entries.length, 2);
    const [e0, e1] = a.json.entries;
    for (const e of [e0, e1]) {
      assert.ok(e.id !== undefined);
      assert.ok(!Number.isNaN(Date.parse(e.time)), `time ${e.time}`);
      assert.equal(e.actor, 'admin');
      assert.equal(e.key, 'proxy.auth_method');
    }
    assert.equal(auditValue(e0.old), 'digest');
    assert.equal(auditValue(e0.new), 'ntlm');
    // The first change from the default: store.h documents null as "was not
    // set"; the default value itself is also acceptable.
    assert.equal(g.json.settings['proxy.auth_method'].source, 'default');
    assert.ok(e1.old === null || auditValue(e1.old) === old, `old: ${JSON.stringify(e1.old)}`);
    assert.equal(auditValue(e1.new), 'digest');
    const p = await srv.api('GET', '/api/v1/audit?offset=1&limit=1', { token });
    assert.equal(p.status, 200);
    assert.equal(p.json.total, a.json.total);
    assert.deepEqual(p.json.entries, [e1]);
  });

  test('a PATCH of several keys logs one entry per changed key', async () => {
    const a0 = (await srv.api('GET', '/api/v1/audit?offset=0&limit=1', { token })).json.total;
    const r = await patch({ 'proxy.username': 'svc-atrium', 'ad.container_dn': 'ou=atrium,dc=example,dc=com' });
    assert.equal(r.status, 200, r.text);
    const a = await srv.api('GET', '/api/v1/audit?offset=0&limit=10', { token });
    assert.equal(a.json.total, a0 + 2);
    assert.deepEqual(a.json.entries.slice(0, 2).map((e) => e.key).sort(), ['ad.container_dn', 'proxy.username']);
  });

  test('audit needs authentication', async () => {
    problemKeys(await srv.api('GET', '/api/v1/audit'), 401, assert);
  });
});

describe('secrets', () => {
  test('a secret is write-only: never returned, logged, exported or audited', async () => {
    const r = await patch({ 'proxy.password': SECRET_TEXT, 'ad.bind_password': AD_SECRET_TEXT });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.settings['proxy.password'].value, { set: true });
    assert.deepEqual(r.json.settings['ad.bind_password'].value, { set: true });
    const g = await getSettings();
    assert.deepEqual(g.json.settings['proxy.password'].value, { set: true });
    assert.deepEqual(g.json.settings['ad.bind_password'].value, { set: true });
    const e = await srv.api('GET', '/api/v1/settings/export', { token });
    const a = await srv.api('GET', '/api/v1/audit?offset=0&limit=100', { token });
    const sc = await srv.api('GET', '/api/v1/settings/schema', { token });
    const m = await srv.api('GET', '/metrics', { token });
    const entries = a.json.entries.filter((x) => x.key === 'proxy.password' || x.key === 'ad.bind_password');
    assert.equal(entries.length, 2, 'both secret changes are audited');
    for (const x of entries) {
      assert.notEqual(auditValue(x.new), null, 'the audit entry says the secret was set');
    }
    // A secret changed again: still redacted.
    const r2 = await patch({ 'proxy.password': `${SECRET_TEXT}-2` });
    assert.equal(r2.status, 200);
    const a2 = await srv.api('GET', '/api/v1/audit?offset=0&limit=5', { token });
    for (const [name, text] of [['PATCH', r.text], ['GET', g.text], ['export', e.text], ['audit', a.text],
      ['audit 2', a2.text], ['schema', sc.text], ['metrics', m.text], ['server output', srv.output()],
      ['PATCH 2', r2.text]]) {
      assert.ok(!text.includes(SECRET_TEXT), `proxy.password appears in ${name}`);
      assert.ok(!text.includes(AD_SECRET_TEXT), `ad.bind_password appears in ${name}`);
      assert.ok(!text.includes('Pr0xy-S3cret'), `part of proxy.password appears in ${name}`);
    }
  });

  test('validate of a secret does not echo it', async () => {
    const r = await srv.api('POST', '/api/v1/settings/validate', { token, body: { 'proxy.password': SECRET_TEXT } });
    assert.equal(r.status, 200, r.text);
    assert.ok(!r.text.includes(SECRET_TEXT));
    const bad = await srv.api('POST', '/api/v1/settings/validate', { token, body: { 'proxy.password': 12345678 } });
    assert.deepEqual(problemKeys(bad, 422, assert), ['proxy.password']);
    assert.ok(!bad.text.includes('12345678'));
  });
});

describe('cookie sessions and CSRF', () => {
  let cookie;
  let csrf;

  test('Set-Cookie is HttpOnly and SameSite=Strict', async () => {
    const r = await srv.api('POST', '/api/v1/session', { body: { user: 'admin', password: srv.adminPassword } });
    assert.equal(r.status, 200, r.text);
    const sc = r.headers.getSetCookie().find((c) => c.startsWith('atrium_session='));
    assert.ok(sc, 'no atrium_session cookie');
    const attrs = sc.split(';').map((x) => x.trim().toLowerCase());
    assert.ok(attrs.includes('httponly'), sc);
    assert.ok(attrs.includes('samesite=strict'), sc);
    assert.ok(attrs.some((a) => a === 'path=/' || a.startsWith('path=/')), `cookie path: ${sc}`);
    assert.ok(!attrs.includes('secure'), 'plain HTTP: no Secure attribute');
    cookie = sc.split(';')[0];
    csrf = r.json.csrf;
  });

  test('GET with the cookie alone is allowed', async () => {
    const r = await srv.api('GET', '/api/v1/settings', { headers: { cookie } });
    assert.equal(r.status, 200, r.text);
  });

  test('PATCH with the cookie but without X-CSRF-Token is 403 and changes nothing', async () => {
    const before = await getSettings();
    const r = await srv.api('PATCH', '/api/v1/settings', { headers: { cookie }, body: { 'login.allow_automatic': false } });
    problemKeys(r, 403, assert);
    const w = await srv.api('PATCH', '/api/v1/settings', { headers: { cookie, 'x-csrf-token': 'wrong' }, body: { 'login.allow_automatic': false } });
    problemKeys(w, 403, assert);
    assert.equal((await getSettings()).text, before.text);
  });

  test('validate, import and logout with the cookie but without X-CSRF-Token are 403', async () => {
    const before = await getSettings();
    const ex = (await srv.api('GET', '/api/v1/settings/export', { token })).json;
    ex.settings['docs.url'] = 'https://docs.example.com/csrf/';
    problemKeys(await srv.api('POST', '/api/v1/settings/validate', { headers: { cookie }, body: { 'proxy.port': 3000 } }), 403, assert);
    problemKeys(await srv.api('POST', '/api/v1/settings/import', { headers: { cookie }, body: ex }), 403, assert);
    problemKeys(await srv.api('DELETE', '/api/v1/session', { headers: { cookie } }), 403, assert);
    assert.equal((await getSettings()).text, before.text);
    assert.equal((await srv.api('GET', '/api/v1/settings', { headers: { cookie } })).status, 200, 'the session is still alive');
  });

  test('PATCH with the cookie and the CSRF token is 200', async () => {
    const r = await srv.api('PATCH', '/api/v1/settings', { headers: { cookie, 'x-csrf-token': csrf }, body: { 'login.allow_automatic': false } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.settings['login.allow_automatic'].value, false);
  });

  test('logout invalidates the session (cookie and bearer)', async () => {
    const r = await srv.api('DELETE', '/api/v1/session', { headers: { cookie, 'x-csrf-token': csrf } });
    assert.ok([200, 204].includes(r.status), `logout: ${r.status} ${r.text}`);
    problemKeys(await srv.api('GET', '/api/v1/settings', { headers: { cookie } }), 401, assert);

    const t = await srv.login();
    assert.equal((await srv.api('GET', '/api/v1/settings', { token: t })).status, 200);
    const d = await srv.api('DELETE', '/api/v1/session', { token: t });
    assert.ok([200, 204].includes(d.status), `logout: ${d.status} ${d.text}`);
    problemKeys(await srv.api('GET', '/api/v1/settings', { token: t }), 401, assert);
    // The main token is unaffected.
    assert.equal((await getSettings()).status, 200);
  });
});

describe('metrics', () => {
  test('/metrics has requests by route and the settings version', async () => {
    const v = (await getSettings()).json.version;
    const r = await srv.api('GET', '/metrics', { token });
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain/);
    const lines = r.text.split('\n');
    assert.ok(lines.some((l) => /^atrium_http_requests_total\{[^}]*route="[^"]+"[^}]*\} \d+/.test(l)), r.text);
    const settingsLine = lines.find((l) => l.startsWith('atrium_http_requests_total{')
      && /route="\/api\/v1\/settings"/.test(l) && /(status|code)="200"/.test(l));
    assert.ok(settingsLine, `no 200 counter for the settings route:\n${r.text}`);
    assert.ok(Number(settingsLine.split(' ').pop()) >= 1, settingsLine);
    const ver = lines.find((l) => /^atrium_settings_version(\{[^}]*\})? /.test(l));
    assert.ok(ver, r.text);
    assert.equal(Number(ver.split(' ').pop()), v);
    assert.ok(r.text.includes('# TYPE atrium_http_requests_total counter'));
  });
});
