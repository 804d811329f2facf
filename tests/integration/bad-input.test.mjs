// Bad input: each row is one rejected request. After each, the settings
// document (GET /api/v1/settings) must be byte-for-byte what it was before,
// and the audit log must not have grown.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, problemKeys } from './harness.mjs';

const DOMAIN = 'connect.example.com';
let srv;
let token;

before(async () => {
  srv = await startServer({
    env: { ATRIUM_PROXY_PORT: '3128' },
    atlas: `<Domain>${DOMAIN}</Domain>`,
  });
  token = await srv.login();
  // At least one stored change, so that a stale If-Match exists.
  const r = await srv.api('PATCH', '/api/v1/settings', { token, body: { 'login.publish_address': true } });
  assert.equal(r.status, 200, r.text);
});
after(async () => {
  if (srv) await srv.stop();
});

const qos = (over = {}, extra = []) => [
  { name: 'Voice', dscp: 46, max_rate_mbps: 10, url: 'https://voice.example.com/*', include_subdirectories: true, any_destination: true, ...over },
  ...extra,
];

// status may be a number or a list of acceptable numbers; keys are the keys
// that must be named in "errors"; allow are further keys that may be named.
const CASES = [
  // wrong types
  { name: '"true" for a bool', body: { 'login.publish_address': 'true' }, status: 422, keys: ['login.publish_address'] },
  { name: '1 for a bool', body: { 'proxy.enabled': 1 }, status: 422, keys: ['proxy.enabled'] },
  { name: 'string for a port', body: { 'login.discovery_port': '5060' }, status: 422, keys: ['login.discovery_port'] },
  { name: 'fraction for a port', body: { 'login.discovery_port': 5060.5 }, status: 422, keys: ['login.discovery_port'] },
  { name: 'number for a string', body: { 'ad.bind_dn': 42 }, status: 422, keys: ['ad.bind_dn'] },
  { name: 'number for a secret', body: { 'ad.bind_password': 42 }, status: 422, keys: ['ad.bind_password'] },
  { name: 'string for a list', body: { 'proxy.bypass': 'a.example.com' }, status: 422, keys: ['proxy.bypass'] },
  // ports
  { name: 'port 0', body: { 'login.discovery_port': 0 }, status: 422, keys: ['login.discovery_port'] },
  { name: 'port 70000', body: { 'login.discovery_port': 70000 }, status: 422, keys: ['login.discovery_port'] },
  { name: 'port -1', body: { 'login.discovery_port': -1 }, status: 422, keys: ['login.discovery_port'] },
  // enums
  { name: 'unknown auth method', body: { 'proxy.auth_method': 'kerberos' }, status: 422, keys: ['proxy.auth_method'] },
  { name: 'empty enum value', body: { 'proxy.auth_method': '' }, status: 422, keys: ['proxy.auth_method'] },
  // QoS policies
  { name: 'DSCP 64', body: { 'qos.policies': qos({ dscp: 64 }) }, status: 422, keys: ['qos.policies'], mention: /dscp/i },
  { name: 'DSCP -1', body: { 'qos.policies': qos({ dscp: -1 }) }, status: 422, keys: ['qos.policies'], mention: /dscp/i },
  { name: 'max_rate_mbps 0', body: { 'qos.policies': qos({ max_rate_mbps: 0 }) }, status: 422, keys: ['qos.policies'], mention: /max_rate/i },
  { name: 'max_rate_mbps 100001', body: { 'qos.policies': qos({ max_rate_mbps: 100001 }) }, status: 422, keys: ['qos.policies'] },
  { name: 'duplicate policy names', body: { 'qos.policies': qos({}, [{ ...qos()[0], name: 'VOICE' }]) }, status: 422, keys: ['qos.policies'] },
  { name: 'policy with an unknown member', body: { 'qos.policies': qos({ colour: 'red' }) }, status: 422, keys: ['qos.policies'] },
  { name: 'policy url with a space', body: { 'qos.policies': qos({ url: 'https://voice.example.com/a b' }) }, status: 422, keys: ['qos.policies'] },
  { name: 'policy url ftp', body: { 'qos.policies': qos({ url: 'ftp://voice.example.com/' }) }, status: 422, keys: ['qos.policies'] },
  { name: 'policy not an object', body: { 'qos.policies': [42] }, status: 422, keys: ['qos.policies'] },
  // URLs
  { name: 'URL with a space', body: { 'docs.url': 'https://docs.example.com/a b' }, status: 422, keys: ['docs.url'] },
  { name: 'https:// with no host', body: { 'um.url': 'https://' }, status: 422, keys: ['um.url'] },
  { name: 'relative URL', body: { 'meeting.url': '/webmeeting/' }, status: 422, keys: ['meeting.url'] },
  { name: 'http where https is required', body: { 'mobile.app_url': 'http://m.example.com/' }, status: 422, keys: ['mobile.app_url'] },
  { name: 'http for the license server', body: { 'license.server_url': 'http://license.example.com/' }, status: 422, keys: ['license.server_url'] },
  { name: 'IP where a FQDN is required', body: { 'mobile.app_url': 'https://192.0.2.1/' }, status: 422, keys: ['mobile.app_url'] },
  { name: 'IPv6 where a FQDN is required', body: { 'mobile.webapi_url': 'https://[2001:db8::1]/' }, status: 422, keys: ['mobile.webapi_url'] },
  { name: 'single label where a FQDN is required', body: { 'mobile.app_url': 'https://intranet/' }, status: 422, keys: ['mobile.app_url'] },
  { name: 'URL port 0', body: { 'mobile.app_url': 'https://m.example.com:0/' }, status: 422, keys: ['mobile.app_url'] },
  { name: 'URL port 70000', body: { 'mobile.app_url': 'https://m.example.com:70000/' }, status: 422, keys: ['mobile.app_url'] },
  { name: 'URL with user info', body: { 'mobile.app_url': 'https://user:pw@m.example.com/' }, status: 422, keys: ['mobile.app_url'] },
  { name: 'public URL with a query', body: { 'server.public_url': 'https://atrium.example.com/?a=1' }, status: 422, keys: ['server.public_url'] },
  { name: 'public URL with a fragment', body: { 'server.public_url': 'https://atrium.example.com/#x' }, status: 422, keys: ['server.public_url'] },
  { name: 'ftp public URL', body: { 'server.public_url': 'ftp://atrium.example.com' }, status: 422, keys: ['server.public_url'] },
  { name: 'http for the AD URI', body: { 'ad.uri': 'http://dc1.example.com/' }, status: 422, keys: ['ad.uri'] },
  { name: 'javascript: URL', body: { 'docs.url': 'javascript:alert(1)' }, status: 422, keys: ['docs.url'] },
  // hosts
  { name: 'host with an underscore and !', body: { 'proxy.host': 'bad_host!.example.com' }, status: 422, keys: ['proxy.host'] },
  { name: 'host label starting with -', body: { 'proxy.host': '-proxy.example.com' }, status: 422, keys: ['proxy.host'] },
  { name: 'host label of 64 characters', body: { 'proxy.host': `${'a'.repeat(64)}.example.com` }, status: 422, keys: ['proxy.host'] },
  { name: 'host of 254 characters', body: { 'proxy.host': `${'a'.repeat(60)}.`.repeat(4) + 'a'.repeat(6) + '.com' }, status: 422, keys: ['proxy.host'] },
  { name: 'bypass CIDR /33', body: { 'proxy.bypass': ['10.0.0.0/33'] }, status: 422, keys: ['proxy.bypass'] },
  { name: 'bypass duplicates', body: { 'proxy.bypass': ['a.example.com', 'A.example.com'] }, status: 422, keys: ['proxy.bypass'] },
  { name: 'bypass entry not a string', body: { 'proxy.bypass': [7] }, status: 422, keys: ['proxy.bypass'] },
  // federation FQDN against domain.name
  { name: 'federation.fqdn two labels below domain.name', body: { 'federation.fqdn': `a.b.${DOMAIN}` }, status: 422, keys: ['federation.fqdn'] },
  { name: 'federation.fqdn the parent of domain.name', body: { 'federation.fqdn': 'example.com' }, status: 422, keys: ['federation.fqdn'] },
  { name: 'federation.fqdn unrelated', body: { 'federation.fqdn': 'sip.example.org' }, status: 422, keys: ['federation.fqdn'] },
  // keys
  { name: 'unknown key', body: { 'no.such_key': 1 }, status: 422, keys: ['no.such_key'] },
  { name: 'unknown key beside a good one', body: { 'login.publish_address': false, 'proxy.colour': 'red' }, status: 422, keys: ['proxy.colour'] },
  { name: 'domain.name', body: { 'domain.name': 'other.example.com' }, status: 409, keys: ['domain.name'] },
  { name: 'env-locked key', body: { 'proxy.port': 3129 }, status: 409, keys: ['proxy.port'] },
  { name: 'env-locked key beside a good one', body: { 'proxy.port': 3129, 'login.publish_address': false }, status: 409, keys: ['proxy.port'] },
  // cross-field rules
  { name: 'proxy enabled without a host', body: { 'proxy.enabled': true, 'proxy.host': '' }, status: 422, keys: ['proxy.host'], allow: ['proxy.enabled'] },
  { name: 'proxy auth without a user name', body: { 'proxy.auth_required': true, 'proxy.username': '' }, status: 422, keys: ['proxy.username'], allow: ['proxy.auth_required'] },
  // several bad keys at once, and a good key that must not be applied
  {
    name: 'several bad keys at once are all listed',
    body: { 'login.discovery_port': 0, 'mobile.app_url': 'http://m.example.com/', 'proxy.auth_method': 'x', 'login.allow_automatic': 'no', 'login.publish_address': false },
    status: 422,
    keys: ['login.discovery_port', 'mobile.app_url', 'proxy.auth_method', 'login.allow_automatic'],
  },
  // body shape
  { name: 'body over 256 KiB', raw: JSON.stringify({ 'ad.bind_dn': 'x'.repeat(300 * 1024) }), status: 413 },
  { name: 'body just over 256 KiB', raw: JSON.stringify({ 'ad.bind_dn': 'x'.repeat(256 * 1024 + 1 - 17) }), status: 413 },
  { name: 'malformed JSON', raw: '{"login.publish_address": fals', status: 400 },
  { name: 'trailing garbage after JSON', raw: '{"login.publish_address": false} x', status: 400 },
  { name: 'empty body', raw: '', status: [400, 422] },
  { name: 'array body', raw: '[{"login.publish_address": false}]', status: [400, 422] },
  { name: 'string body', raw: '"login.publish_address"', status: [400, 422] },
  { name: 'null body', raw: 'null', status: [400, 422] },
  { name: 'number body', raw: '42', status: [400, 422] },
  // the rule also holds when the host is already blank in the store (no host in the body)
  { name: 'proxy enabled, host left blank', body: { 'proxy.enabled': true }, status: 422, keys: ['proxy.host'], allow: ['proxy.enabled'], needBlank: 'proxy.host' },
  { name: 'proxy auth, user name left blank', body: { 'proxy.auth_required': true }, status: 422, keys: ['proxy.username'], allow: ['proxy.auth_required'], needBlank: 'proxy.username' },
  // versions
  { name: 'stale If-Match', stale: true, body: { 'login.publish_address': false }, status: 412 },
  { name: 'garbage If-Match', headers: { 'if-match': '"banana"' }, body: { 'login.publish_address': false }, status: [400, 412] },
  // the dry run refuses the same way
  { name: 'validate: port 0', path: '/api/v1/settings/validate', method: 'POST', body: { 'login.discovery_port': 0 }, status: 422, keys: ['login.discovery_port'] },
  { name: 'validate: domain.name', path: '/api/v1/settings/validate', method: 'POST', body: { 'domain.name': 'other.example.com' }, status: 409, keys: ['domain.name'] },
  // Last, so that a wrongly accepted value cannot disturb the other rows.
  // Host names are strictly IDNA 2008 (RFC 5891/5892): symbols such as
  // U+2603 and emoji are DISALLOWED.
  { name: 'IDN host with a symbol IDNA 2008 disallows', body: { 'proxy.host': '\u2603.example.com' }, status: 422, keys: ['proxy.host'] },
  { name: 'IDN host with an emoji', body: { 'proxy.host': '\u{1F4A9}.example.com' }, status: 422, keys: ['proxy.host'] },
];

async function snapshot() {
  const g = await srv.api('GET', '/api/v1/settings', { token });
  assert.equal(g.status, 200, g.text);
  const a = await srv.api('GET', '/api/v1/audit?offset=0&limit=1', { token });
  assert.equal(a.status, 200, a.text);
  return { text: g.text, json: g.json, audit: a.json.total };
}

async function assertUnchanged(before, what) {
  const now = await snapshot();
  assert.equal(now.json.version, before.json.version, `${what}: version changed`);
  assert.deepEqual(now.json.settings, before.json.settings, `${what}: settings changed`);
  assert.equal(now.text, before.text, `${what}: document not byte-for-byte the same`);
  assert.equal(now.audit, before.audit, `${what}: audit log grew`);
}

describe('bad PATCH bodies', () => {
  for (const c of CASES) {
    test(c.name, async () => {
      const b = await snapshot();
      if (c.needBlank) assert.equal(b.json.settings[c.needBlank].value, '', `precondition: ${c.needBlank} blank`);
      const headers = { ...(c.headers ?? {}) };
      if (c.stale) {
        assert.ok(b.json.version >= 1);
        headers['if-match'] = `"${b.json.version - 1}"`;
      }
      const o = { token, headers };
      if (c.raw !== undefined) {
        o.raw = c.raw;
        headers['content-type'] = 'application/json';
      } else {
        o.body = c.body;
      }
      const r = await srv.api(c.method ?? 'PATCH', c.path ?? '/api/v1/settings', o);
      const statuses = Array.isArray(c.status) ? c.status : [c.status];
      assert.ok(statuses.includes(r.status), `expected ${statuses.join(' or ')}, got ${r.status}: ${r.text.slice(0, 500)}`);
      const named = problemKeys(r, r.status, assert);
      for (const k of c.keys ?? []) assert.ok(named.includes(k), `errors should name ${k}: ${r.text}`);
      if (c.keys) {
        const ok = new Set([...c.keys, ...(c.allow ?? [])]);
        for (const k of named) assert.ok(ok.has(k), `errors name an unexpected key ${k}: ${r.text}`);
      }
      if (c.mention) assert.match(JSON.stringify(r.json.errors), c.mention);
      await assertUnchanged(b, c.name);
    });
  }
});

describe('the env-locked key is reported as such', () => {
  test('proxy.port has source env and the env value', async () => {
    const s = (await snapshot()).json.settings['proxy.port'];
    assert.equal(s.source, 'env');
    assert.equal(s.value, 3128);
  });
});

describe('bad imports', () => {
  async function exportDoc() {
    const e = await srv.api('GET', '/api/v1/settings/export', { token });
    assert.equal(e.status, 200, e.text);
    const doc = e.json;
    delete doc.settings['proxy.port']; // env-locked on this server
    return doc;
  }

  test('an import with one bad value imports nothing', async () => {
    const doc = await exportDoc();
    const b = await snapshot();
    doc.settings['login.publish_address'] = !b.json.settings['login.publish_address'].value;
    doc.settings['docs.url'] = 'https://docs.example.com/atrium/';
    doc.settings['login.discovery_port'] = 0;
    const r = await srv.api('POST', '/api/v1/settings/import', { token, body: doc });
    const named = problemKeys(r, 422, assert);
    assert.deepEqual(named, ['login.discovery_port']);
    await assertUnchanged(b, 'bad import');
  });

  test('an import with an unknown key imports nothing', async () => {
    const doc = await exportDoc();
    const b = await snapshot();
    doc.settings['docs.url'] = 'https://docs.example.com/atrium/';
    doc.settings['no.such_key'] = true;
    const r = await srv.api('POST', '/api/v1/settings/import', { token, body: doc });
    assert.ok(problemKeys(r, 422, assert).includes('no.such_key'), r.text);
    await assertUnchanged(b, 'import with unknown key');
  });

  for (const [name, mutate] of [
    ['wrong format', (d) => { d.format = 'something-else'; }],
    ['unknown format_version', (d) => { d.format_version = 99; }],
    ['settings not an object', (d) => { d.settings = [1, 2]; }],
    ['settings missing', (d) => { delete d.settings; }],
  ]) {
    test(`an import document with ${name} is refused`, async () => {
      const doc = await exportDoc();
      const b = await snapshot();
      doc.settings['docs.url'] = 'https://docs.example.com/atrium/';
      mutate(doc);
      const r = await srv.api('POST', '/api/v1/settings/import', { token, body: doc });
      assert.ok([400, 422].includes(r.status), `${r.status} ${r.text}`);
      problemKeys(r, r.status, assert);
      await assertUnchanged(b, name);
    });
  }

  test('a good import still works afterwards (the server is not wedged)', async () => {
    const doc = await exportDoc();
    doc.settings['docs.url'] = 'https://docs.example.com/atrium/';
    const r = await srv.api('POST', '/api/v1/settings/import', { token, body: doc });
    assert.equal(r.status, 200, r.text);
    const g = await snapshot();
    assert.equal(g.json.settings['docs.url'].value, 'https://docs.example.com/atrium/');
    assert.equal(g.json.settings['proxy.port'].value, 3128);
  });
});
