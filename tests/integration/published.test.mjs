// Issue 6: published URLs (effective values, :443 / :7443), the reverse-proxy
// list as features are switched, the mobile configuration, the telephony web
// API base, UM settings as a user, the built-in documentation, atriumctl.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { startServer, ctl, REPO } from './harness.mjs';

let srv;
let token;

before(async () => {
  srv = await startServer();
  token = await srv.login();
});
after(async () => { await srv?.stop(); });

const patch = (body) => srv.api('PATCH', '/api/v1/settings', { token, body });
const features = async () => {
  const r = await srv.api('GET', '/api/v1/reverse-proxy', { token });
  assert.equal(r.status, 200, r.text);
  return r.json;
};

/** A raw GET with headers fetch does not let us set (Host, X-Forwarded-*). */
function rawGet(port, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

test('effective URLs resolve against server.public_url', async () => {
  let r = await patch({ 'server.public_url': 'https://atrium.example.com' });
  assert.equal(r.status, 200, r.text);
  r = await srv.api('GET', '/client/v1/config');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.urls.um, 'https://atrium.example.com/umsettings/');
  assert.equal(r.json.urls.docs, 'https://atrium.example.com/docs/');
  assert.equal(r.json.urls.meeting, null, 'meeting is off by default');
  assert.equal(r.json.urls.app, null);
  assert.equal(r.json.push.enabled, false);
  assert.equal(typeof r.json.domain, 'string');

  r = await patch({ 'server.public_url': 'https://portal.example.com:8443/atrium/' });
  assert.equal(r.status, 200, r.text);
  r = await srv.api('GET', '/client/v1/config');
  assert.equal(r.json.urls.um, 'https://portal.example.com:8443/atrium/umsettings/');
  const list = await features();
  const um = list.entries.find((e) => e.feature === 'um');
  assert.equal(um.port, 8443);
  assert.equal(um.path, '/atrium/umsettings/');
  assert.equal(um.upstream, `http://127.0.0.1:${srv.port}/umsettings/`);
  r = await patch({ 'server.public_url': 'https://atrium.example.com' });
  assert.equal(r.status, 200, r.text);
});

test(':443 is normalised away and :7443 kept, end to end', async () => {
  let r = await patch({
    'mobile.app_url': 'https://M.Example.com:443/mobile/',
    'mobile.webapi_url': 'https://m.example.com:7443/webapi/',
    'mobile.push_enabled': true,
  });
  assert.equal(r.status, 200, r.text);
  r = await srv.api('GET', '/client/v1/config');
  assert.equal(r.json.urls.app, 'https://m.example.com/mobile/');
  assert.equal(r.json.urls.webapi, 'https://m.example.com:7443/webapi/');
  assert.equal(r.json.push.enabled, true);
  const list = await features();
  const app = list.entries.find((e) => e.feature === 'mobile.app');
  const web = list.entries.find((e) => e.feature === 'mobile.webapi');
  assert.equal(app.port, 443);
  assert.equal(app.url, 'https://m.example.com/mobile/');
  assert.equal(app.upstream, `http://127.0.0.1:${srv.port}/client/`);
  assert.equal(web.port, 7443);
  assert.equal(web.upstream, `http://127.0.0.1:${srv.port}/webapi/`);
  // Two ports of one host are two server blocks.
  const servers = list.servers.filter((s) => s.host === 'm.example.com').map((s) => s.port).sort();
  assert.deepEqual(servers, [443, 7443]);
  const nginx = await srv.api('GET', '/api/v1/reverse-proxy/nginx', { token });
  assert.equal(nginx.status, 200);
  assert.match(nginx.headers.get('content-type'), /^text\/plain/);
  assert.match(nginx.text, /listen 7443 ssl;/);
  assert.match(nginx.text, /listen 443 ssl;/);
  assert.match(nginx.text, /server_name m\.example\.com;/);
  assert.match(nginx.text, /location \/mobile\/ \{\n\s+proxy_pass http:\/\/127\.0\.0\.1:\d+\/client\/;/);
  assert.match(nginx.text, /ssl_certificate\s+\/etc\/nginx\/atrium\/m\.example\.com\.crt;/);
  assert.match(nginx.text, /X-Forwarded-For \$proxy_add_x_forwarded_for/);
  assert.match(nginx.text, /X-Forwarded-Proto \$scheme/);
  assert.match(nginx.text, /client_max_body_size \d+k;/);
});

test('the reverse-proxy list follows the feature switches without restart', async () => {
  await patch({ 'mobile.app_url': '', 'mobile.webapi_url': '', 'meeting.enabled': false,
    'docs.url': '' });
  let names = (await features()).entries.map((e) => e.feature);
  assert.deepEqual(names, ['um', 'docs']);

  await patch({ 'mobile.app_url': 'https://m.example.com/app/' });
  names = (await features()).entries.map((e) => e.feature);
  assert.deepEqual(names, ['mobile.app', 'um', 'docs']);

  await patch({ 'meeting.enabled': true });
  let list = await features();
  const meeting = list.entries.find((e) => e.feature === 'meeting');
  assert.equal(meeting.websocket, true);
  assert.equal(meeting.websocket_path, '/webmeeting/ws');
  assert.equal(meeting.url, 'https://atrium.example.com/webmeeting/');
  let nginx = await srv.api('GET', '/api/v1/reverse-proxy/nginx', { token });
  assert.match(nginx.text, /location = \/webmeeting\/ws \{[^}]*proxy_set_header Upgrade \$http_upgrade;[^}]*Connection "upgrade"/s);

  // Documentation published elsewhere: atriumd no longer serves it.
  await patch({ 'docs.url': 'https://docs.example.org/atrium/' });
  list = await features();
  assert.deepEqual(list.entries.map((e) => e.feature), ['mobile.app', 'um', 'meeting']);
  let r = await srv.api('GET', '/docs/');
  assert.equal(r.status, 302);
  assert.equal(r.headers.get('location'), 'https://docs.example.org/atrium/');

  await patch({ 'meeting.enabled': false, 'docs.url': '', 'mobile.app_url': '' });
  names = (await features()).entries.map((e) => e.feature);
  assert.deepEqual(names, ['um', 'docs']);
  nginx = await srv.api('GET', '/api/v1/reverse-proxy/nginx', { token });
  assert.doesNotMatch(nginx.text, /webmeeting/);
  r = await srv.api('GET', '/webmeeting/');
  assert.equal(r.status, 404);
});

test('the nginx generator checks its test options', async () => {
  let r = await srv.api('GET', '/api/v1/reverse-proxy/nginx?listen=127.0.0.1:8081&tls=off', { token });
  assert.equal(r.status, 200);
  assert.match(r.text, /listen 127\.0\.0\.1:8081;/);
  assert.doesNotMatch(r.text, /ssl_certificate/);
  for (const bad of ['listen=localhost:80', 'listen=1.2.3.4:99999', 'listen=80;evil', 'tls=maybe']) {
    r = await srv.api('GET', `/api/v1/reverse-proxy/nginx?listen=127.0.0.1:1&${bad}`, { token });
    if (bad.startsWith('tls')) assert.equal(r.status, 400, bad);
    r = await srv.api('GET', `/api/v1/reverse-proxy/nginx?${bad}`, { token });
    assert.equal(r.status, 400, bad);
  }
  r = await srv.api('GET', '/api/v1/reverse-proxy/nginx');
  assert.equal(r.status, 401, 'admin only');
  r = await srv.api('GET', '/api/v1/reverse-proxy');
  assert.equal(r.status, 401, 'admin only');
});

test('X-Forwarded-* is ignored from a peer that is not a trusted proxy', async () => {
  const r = await rawGet(srv.port, '/webapi/', {
    'X-Forwarded-For': '203.0.113.9', 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'evil.example',
  });
  assert.equal(r.status, 200);
  const doc = JSON.parse(r.body);
  assert.equal(doc.service, 'telephony-webapi');
  assert.equal(doc.request.via_trusted_proxy, false);
  assert.equal(doc.request.client, '127.0.0.1');
  assert.equal(doc.request.scheme, 'http');
  assert.equal(doc.request.host, `127.0.0.1:${srv.port}`);
  const list = await features();
  assert.deepEqual(list.trusted_proxies, []);
  assert.ok(list.warnings.some((w) => w.code === 'no-trusted-proxies'));
});

test('X-Forwarded-* from a trusted proxy: the right-most untrusted address is the client', async () => {
  const s2 = await startServer({ atlas: '<TrustedProxies>127.0.0.1 10.0.0.0/8</TrustedProxies>' });
  try {
    const r = await rawGet(s2.port, '/webapi/', {
      'X-Forwarded-For': '198.51.100.7, 203.0.113.9, 10.1.2.3',
      'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'm.example.com:7443',
    });
    const doc = JSON.parse(r.body);
    assert.equal(doc.request.via_trusted_proxy, true);
    assert.equal(doc.request.client, '203.0.113.9');
    assert.equal(doc.request.scheme, 'https');
    assert.equal(doc.request.host, 'm.example.com:7443');
    const bad = await rawGet(s2.port, '/webapi/', { 'X-Forwarded-Host': 'evil"<x>' });
    assert.equal(JSON.parse(bad.body).request.host, `127.0.0.1:${s2.port}`);
  } finally {
    await s2.stop();
  }
});

test('UM settings: a user logs in and changes notification preferences', async () => {
  let r = await srv.api('POST', '/api/v1/users', { token, body: { name: 'ulla', password: 'ulla-pass-123' } });
  assert.equal(r.status, 201, r.text);
  const login = r.json.login;

  const page = await srv.api('GET', '/umsettings/');
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /^text\/html/);
  assert.match(page.headers.get('content-security-policy'), /default-src 'self'/);
  assert.match(page.text, /<script type="module" src="um\.js"><\/script>/);
  assert.doesNotMatch(page.text, /<script>(?!<\/script>)/, 'no inline script');
  for (const ch of ['voicemail', 'fax', 'sms']) assert.match(page.text, new RegExp(`data-channel="${ch}"`));
  for (const asset of ['um.js', 'pages.css']) {
    const a = await srv.api('GET', `/umsettings/${asset}`);
    assert.equal(a.status, 200, asset);
  }
  assert.equal((await srv.api('GET', '/umsettings/meeting.js')).status, 404);

  r = await srv.api('GET', '/umsettings/api/notifications');
  assert.equal(r.status, 401);
  r = await srv.api('POST', '/umsettings/api/login', { body: { login, password: 'wrong-password' } });
  assert.equal(r.status, 401);
  r = await srv.api('POST', '/umsettings/api/login', { body: { login, password: 'ulla-pass-123' } });
  assert.equal(r.status, 200, r.text);
  const user = r.json.token;

  r = await srv.api('GET', '/umsettings/api/notifications', { token: user });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.login, login);
  assert.deepEqual(r.json.notifications.voicemail, { notify: false, email: '', attach: false });
  assert.deepEqual(r.json.notifications.sms, { notify: false, email: '' });

  r = await srv.api('PUT', '/umsettings/api/notifications', {
    token: user,
    body: {
      voicemail: { notify: true, email: 'ulla@example.com', attach: true },
      fax: { notify: true, email: 'fax@example.com', attach: false },
      sms: { notify: true, email: 'ulla+sms@example.com' },
    },
  });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.notifications.fax, { notify: true, email: 'fax@example.com', attach: false });

  // A bad request changes nothing and names every field.
  r = await srv.api('PUT', '/umsettings/api/notifications', {
    token: user,
    body: { voicemail: { notify: true, email: 'not an address' }, sms: { attach: true }, pager: {} },
  });
  assert.equal(r.status, 422, r.text);
  const keys = r.json.errors.map((e) => e.key).sort();
  assert.deepEqual(keys, ['pager', 'sms.attach', 'voicemail.email']);
  r = await srv.api('PUT', '/umsettings/api/notifications', {
    token: user, body: { fax: { notify: true, email: '' } },
  });
  assert.equal(r.status, 422, 'notify needs an address');

  // Stored per user: a new login sees the same values; another user does not.
  r = await srv.api('POST', '/umsettings/api/login', { body: { login, password: 'ulla-pass-123' } });
  r = await srv.api('GET', '/umsettings/api/notifications', { token: r.json.token });
  assert.deepEqual(r.json.notifications.voicemail, { notify: true, email: 'ulla@example.com', attach: true });
  assert.deepEqual(r.json.notifications.sms, { notify: true, email: 'ulla+sms@example.com' });
  await srv.api('POST', '/api/v1/users', { token, body: { name: 'otto', password: 'otto-pass-123' } });
  r = await srv.api('POST', '/umsettings/api/login', { body: { login: 'otto', password: 'otto-pass-123' } });
  assert.equal(r.status, 200, r.text);
  r = await srv.api('GET', '/umsettings/api/notifications', { token: r.json.token });
  assert.equal(r.json.notifications.voicemail.notify, false);
  // The admin token is not a user's.
  r = await srv.api('GET', '/umsettings/api/notifications', { token });
  assert.equal(r.status, 401);
});

test('the built-in documentation is served as HTML', async () => {
  let r = await srv.api('GET', '/docs/');
  assert.equal(r.status, 200);
  assert.match(r.text, /href="settings\.html"/);
  assert.match(r.text, /href="operations\/reverse-proxy\.html"/);
  r = await srv.api('GET', '/docs/settings.html');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/html/);
  assert.match(r.text, /<table>/);
  r = await srv.api('GET', '/docs/operations/reverse-proxy.html');
  assert.equal(r.status, 200);
  assert.match(r.text, /href="\.\.\/pages\.css"/);
  assert.equal((await srv.api('GET', '/docs/pages.css')).status, 200);
  assert.equal((await srv.api('GET', '/docs/nope.html')).status, 404);
  assert.equal((await srv.api('GET', '/docs/../etc/passwd')).status >= 400, true);
});

test('atriumctl reverse-proxy list and nginx', async () => {
  await patch({ 'meeting.enabled': true });
  let r = await ctl(srv, ['reverse-proxy', 'list'], { token });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /UM settings\s+https:\/\/atrium\.example\.com\/umsettings\//);
  assert.match(r.stdout, /WebSocket at \/webmeeting\/ws/);
  r = await ctl(srv, ['reverse-proxy', 'nginx', '--listen', '127.0.0.1:8081', '--tls', 'off'], { token });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /listen 127\.0\.0\.1:8081;/);
  r = await ctl(srv, ['reverse-proxy', 'nginx', '--listen', 'bogus'], { token });
  assert.equal(r.code, 1, r.stderr);
  r = await ctl(srv, ['reverse-proxy', 'frobnicate'], { token });
  assert.equal(r.code, 2);
  await patch({ 'meeting.enabled': false });
});

// The install default of server.public_url names atriumd's own host and
// port: it is reported as fixed at first start, warned about once atriumd
// listens elsewhere, and never becomes a port nginx is told to listen on.
test('server.public_url: an install default that says so and warns when the port moves', async () => {
  const dd = await fsp.mkdtemp(path.join(os.tmpdir(), 'atrium-install-url-'));
  let s1, s2;
  try {
    s1 = await startServer({ dataDir: dd });
    let t = await s1.login();
    let g = await s1.api('GET', '/api/v1/settings', { token: t });
    const e = g.json.settings['server.public_url'];
    assert.equal(e.source, 'install');
    assert.match(e.value, new RegExp(`^http://[^/]+:${s1.port}$`));
    assert.equal(e.warnings, undefined, 'matches the listen address');

    // nginx: not atriumd's port, the standard one, with a comment.
    let r = await s1.api('GET', '/api/v1/reverse-proxy/nginx', { token: t });
    assert.equal(r.status, 200, r.text);
    assert.doesNotMatch(r.text, new RegExp(`listen (\\[::\\]:)?${s1.port}\\b`));
    assert.match(r.text, /listen 80;/);
    assert.match(r.text, new RegExp(`names port ${s1.port}, which is atriumd's own: nginx listens on 80`));
    // --listen overrides, except onto atriumd's own address and port.
    r = await s1.api('GET', '/api/v1/reverse-proxy/nginx?listen=127.0.0.1:8444&tls=off', { token: t });
    assert.match(r.text, /listen 127\.0\.0\.1:8444;/);
    for (const own of [`127.0.0.1:${s1.port}`, `${s1.port}`, `0.0.0.0:${s1.port}`]) {
      r = await s1.api('GET', `/api/v1/reverse-proxy/nginx?listen=${encodeURIComponent(own)}&tls=off`, { token: t });
      assert.equal(r.status, 400, own);
      assert.match(r.json.detail, /atriumd's own address and port/, own);
    }
    let c = await ctl(s1, ['reverse-proxy', 'nginx', '--listen', `127.0.0.1:${s1.port}`, '--tls', 'off'], { token: t });
    assert.equal(c.code, 1, c.stderr);
    assert.match(c.stderr, /atriumd's own address and port/);
    // TLS URL on atriumd's port: 443 ssl.
    r = await s1.api('PATCH', '/api/v1/settings', { token: t, body: { 'um.url': `https://127.0.0.1:${s1.port}/um/` } });
    assert.equal(r.status, 200, r.text);
    r = await s1.api('GET', '/api/v1/reverse-proxy/nginx', { token: t });
    assert.match(r.text, /listen 443 ssl;/);
    await s1.stop();
    s1 = null;

    // The same store on another port: the install default stays and warns.
    s2 = await startServer({ dataDir: dd });
    t = await s2.login();
    g = await s2.api('GET', '/api/v1/settings', { token: t });
    const e2 = g.json.settings['server.public_url'];
    assert.equal(e2.value, e.value, 'fixed at first start');
    assert.equal(e2.source, 'install');
    assert.equal(e2.warnings?.[0]?.code, 'install-default-stale', JSON.stringify(e2));
    assert.match(e2.warnings[0].message, new RegExp(`now listens at http://[^ ]+:${s2.port}`));
    const st = await s2.api('GET', '/api/v1/status', { token: t });
    assert.ok(st.json.warnings.some((w) => w.key === 'server.public_url'), st.text);
    // Setting it removes the warning; the source is then the store.
    r = await s2.api('PATCH', '/api/v1/settings', { token: t, body: { 'server.public_url': `http://127.0.0.1:${s2.port}` } });
    assert.equal(r.status, 200, r.text);
    g = await s2.api('GET', '/api/v1/settings', { token: t });
    assert.equal(g.json.settings['server.public_url'].source, 'store');
    assert.equal(g.json.settings['server.public_url'].warnings, undefined);
    // Null removes the stored value: the install default is back, with its warning.
    r = await s2.api('PATCH', '/api/v1/settings', { token: t, body: { 'server.public_url': null } });
    assert.equal(r.status, 200, r.text);
    g = await s2.api('GET', '/api/v1/settings', { token: t });
    assert.equal(g.json.settings['server.public_url'].source, 'install');
    assert.equal(g.json.settings['server.public_url'].warnings?.[0]?.code, 'install-default-stale');
  } finally {
    await s1?.stop();
    await s2?.stop();
    await fsp.rm(dd, { recursive: true, force: true });
  }
});

test('/docs/: the index lists every guide, the admin-page guide too, and every link on every page resolves', async () => {
  await patch({ 'server.public_url': srv.url, 'docs.url': '' });
  const index = await srv.api('GET', '/docs/');
  assert.equal(index.status, 200);
  assert.match(index.text, /<a href="admin-page\.html">/);
  const pages = new Set(['index.html']);
  const queue = ['index.html'];
  const broken = [];
  while (queue.length && pages.size < 200) {
    const p = queue.shift();
    const r = await srv.api('GET', `/docs/${p}`);
    if (r.status !== 200) { broken.push(`${p}: ${r.status}`); continue; }
    const ids = new Set([...r.text.matchAll(/ id="([^"]+)"/g)].map((m) => m[1]));
    for (const [, href] of r.text.matchAll(/<a href="([^"]+)"/g)) {
      if (/^[a-z]+:/.test(href)) continue;
      const [file, frag] = href.split('#');
      const target = file ? new URL(file, `http://x/docs/${p}`).pathname.slice('/docs/'.length) : p;
      if (frag && !file && !ids.has(frag)) broken.push(`${p}: #${frag}`);
      if (file && !pages.has(target)) { pages.add(target); queue.push(target); }
    }
  }
  assert.deepEqual(broken, []);
  assert.ok(pages.has('admin-page.html') && pages.has('cli.html'), [...pages].join(' '));
  // The admin page's screenshots are not served: their labels stay as text.
  const admin = await srv.api('GET', '/docs/admin-page.html');
  assert.doesNotMatch(admin.text, /href="screenshots\//);
});

test('every relative link in docs/ and README.md points at a file in the repository', () => {
  const files = ['README.md'];
  const walk = (d) => {
    for (const n of fs.readdirSync(path.join(REPO, d))) {
      const rel = path.join(d, n);
      if (fs.statSync(path.join(REPO, rel)).isDirectory()) walk(rel);
      else if (n.endsWith('.md')) files.push(rel);
    }
  };
  walk('docs');
  const broken = [];
  for (const f of files) {
    // Fenced code is not a link.
    const text = fs.readFileSync(path.join(REPO, f), 'utf8').replace(/```[\s\S]*?```/g, '');
    for (const [, url] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(url) || url.startsWith('#')) continue;
      const target = path.normalize(path.join(path.dirname(f), url.split('#')[0]));
      if (!fs.existsSync(path.join(REPO, target))) broken.push(`${f}: ${url}`);
    }
    // A path in code that names a file outside the repository misleads as much as a link.
    for (const [, p] of text.matchAll(/`((?:shared|spec)\/[^`\s]+\.md)`/g)) broken.push(`${f}: \`${p}\``);
  }
  assert.deepEqual(broken, []);
});
