// The admin page (issue 4), end to end: a real atriumd, Debian's chromium
// driven by playwright-core. Set ATRIUM_SCREENSHOTS=docs/screenshots to
// (re)write the screenshots listed in docs/admin-page.md.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { REPO, startServer } from './harness.mjs';
import { downloadText, field, fieldError, launchBrowser, loginUi } from './browser.mjs';

const ADMIN_DIR = path.join(REPO, 'web', 'admin');
const SHOTS = process.env.ATRIUM_SCREENSHOTS ? path.resolve(REPO, process.env.ATRIUM_SCREENSHOTS) : null;

async function shot(target, name) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  await target.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

/** A screenshot of a section, in a viewport taller than the page: the sticky
 * save bar stays at the end of the form instead of covering the section. */
async function sectionShot(page, selector, name) {
  if (!SHOTS) return;
  const size = page.viewportSize();
  await page.setViewportSize({ width: size.width, height: 6000 });
  await shot(page.locator(selector), name);
  await page.setViewportSize(size);
}

function walk(dir) {
  // common/ is a link to web/common/, the files both pages share: followed.
  return fs.readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return fs.statSync(p).isDirectory() ? walk(p) : [p];
  });
}

const bearer = async (server) => {
  const token = await server.login();
  return {
    token,
    get: (p) => server.api('GET', p, { token }),
    post: (p, body) => server.api('POST', p, { token, body }),
    patch: (body, headers = {}) => server.api('PATCH', '/api/v1/settings', { token, body, headers }),
  };
};

/** Keeps pressing Tab until the element with this id has the focus (bounded). */
async function tabTo(page, id, max = 150) {
  for (let i = 0; i < max; i++) {
    if (await page.evaluate(() => document.activeElement?.id) === id) return;
    await page.keyboard.press('Tab');
  }
  assert.fail(`#${id} not reached with ${max} Tab presses`);
}

async function noHorizontalScroll(page, what) {
  const m = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
  }));
  assert.ok(m.scroll <= m.client, `${what}: page is ${m.scroll} px wide in a ${m.client} px viewport`);
}

// ---- without a browser ---------------------------------------------------------

describe('admin page: files served by atriumd', () => {
  let server;
  before(async () => { server = await startServer(); });
  after(async () => { await server?.stop(); });

  test('/ and /admin redirect to /admin/', async () => {
    // Relative locations: behind a proxy's path prefix they stay under it.
    let r = await server.api('GET', '/');
    assert.equal(r.status, 302);
    assert.equal(new URL(r.headers.get('location'), `${server.url}/`).pathname, '/admin/');
    assert.equal(new URL(r.headers.get('location'), 'https://proxy.example/atrium/').pathname, '/atrium/admin/');
    r = await server.api('GET', '/admin');
    assert.equal(r.status, 301);
    assert.equal(new URL(r.headers.get('location'), `${server.url}/admin`).pathname, '/admin/');
    assert.equal(new URL(r.headers.get('location'), 'https://proxy.example/atrium/admin').pathname, '/atrium/admin/');
  });

  test('every file under web/admin/ is compiled in, with type, ETag and revalidation', async () => {
    const files = walk(ADMIN_DIR).map((f) => path.relative(ADMIN_DIR, f).split(path.sep).join('/'));
    assert.ok(files.includes('index.html'));
    const types = { html: /^text\/html/, js: /^text\/javascript/, css: /^text\/css/, svg: /^image\/svg\+xml/ };
    for (const f of files) {
      const r = await server.api('GET', `/admin/${f}`);
      assert.equal(r.status, 200, `/admin/${f} is not served: add it to web/meson.build`);
      assert.match(r.headers.get('content-type'), types[f.split('.').pop()] ?? /./, f);
      assert.equal(r.text, fs.readFileSync(path.join(ADMIN_DIR, f), 'utf8'), `${f}: stale copy`);
      assert.equal(r.headers.get('cache-control'), 'no-cache', f);
      assert.match(r.headers.get('etag'), /^"[0-9a-f]+"$/, f);
      assert.equal(r.headers.get('content-security-policy'), "default-src 'self'", f);
      const again = await server.api('GET', `/admin/${f}`, { headers: { 'if-none-match': r.headers.get('etag') } });
      assert.equal(again.status, 304, f);
      assert.equal(again.text, '');
    }
    const index = await server.api('GET', '/admin/');
    assert.equal(index.text, fs.readFileSync(path.join(ADMIN_DIR, 'index.html'), 'utf8'));
    // No inline script or style: the CSP forbids them.
    assert.doesNotMatch(index.text, /<script(?![^>]*\bsrc=)[^>]*>|<style|\sstyle=|\son\w+=/i);
  });

  test('an unknown file is a 404 problem, API data stays no-store', async () => {
    const r = await server.api('GET', '/admin/nope.js');
    assert.equal(r.status, 404);
    assert.match(r.headers.get('content-type'), /problem\+json/);
    const h = await server.api('GET', '/healthz');
    assert.equal(h.headers.get('cache-control'), 'no-store');
  });

  test('German texts: every schema key, section and UI text has one', async () => {
    const api = await bearer(server);
    const schema = (await api.get('/api/v1/settings/schema')).json;
    const de = await import(path.join(ADMIN_DIR, 'i18n', 'de.js'));
    const { englishUi } = await import(path.join(ADMIN_DIR, 'js', 'i18n.js'));
    const missing = schema.settings.filter((s) => !de.settings[s.key]?.label || !de.settings[s.key]?.help)
      .map((s) => s.key);
    assert.deepEqual(missing, [], `add German label and help to web/admin/i18n/de.js for: ${missing.join(', ')}`);
    const stale = Object.keys(de.settings).filter((k) => !schema.settings.some((s) => s.key === k));
    assert.deepEqual(stale, [], 'German texts for settings that no longer exist');
    for (const s of schema.sections) assert.ok(de.sections[s.id], `German title for section ${s.id}`);
    for (const s of schema.settings.filter((x) => x.choices)) {
      for (const c of s.choices) assert.ok(de.choices[s.key]?.[c], `German name of ${s.key} = ${c}`);
    }
    const untranslated = Object.keys(englishUi).filter((k) => !(k in de.ui));
    assert.deepEqual(untranslated, [], 'UI texts without German');
  });
});

// ---- in the browser -------------------------------------------------------------

describe('admin page in chromium', () => {
  let server;
  let browser;
  let page;
  let api;
  let schema;

  before(async () => {
    server = await startServer({
      env: { ATRIUM_DOCS_URL: 'https://docs.example.com/atrium/', ATRIUM_PROXY_TEST_TIMEOUT_MS: '5000' },
    });
    api = await bearer(server);
    schema = (await api.get('/api/v1/settings/schema')).json;
    browser = await launchBrowser();
    page = await browser.page();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('login page: a wrong password is refused, the right one opens the settings', async () => {
    await page.goto(`${server.url}/`);
    assert.match(page.url(), /\/admin\/$/);
    await page.locator('#login-user').waitFor();
    await shot(page, 'login');
    await page.fill('#login-user', 'admin');
    await page.fill('#login-password', 'wrong-password');
    await page.click('#login-submit');
    await page.locator('#login-error').waitFor();
    assert.match(await page.textContent('#login-error'), /Login failed/);
    await page.fill('#login-password', server.adminPassword);
    await page.click('#login-submit');
    await page.locator('#settings-form fieldset.section').first().waitFor();
    assert.equal(await page.textContent('#settings-heading'), 'System settings');
    assert.deepEqual(browser.errors, []);
  });

  test('sections in the schema order, each a fieldset with a legend; every key has its labelled control', async () => {
    const ids = await page.$$eval('#settings-form fieldset.section', (fs) => fs.map((f) => f.dataset.section));
    assert.deepEqual(ids, schema.sections.map((s) => s.id));
    const legends = await page.$$eval('#settings-form fieldset.section > legend h2', (l) => l.map((x) => x.textContent));
    assert.deepEqual(legends, schema.sections.map((s) => s.title));
    for (const def of schema.settings) {
      const row = page.locator(`#field-${def.key.replace(/[^A-Za-z0-9]+/g, '-')}`);
      assert.equal(await row.count(), 1, def.key);
      assert.equal(await row.locator('.label-text').first().textContent(), def.label, def.key);
      assert.equal(await row.locator('.help').last().textContent(), def.help, def.key);
      const section = await row.evaluate((r) => r.closest('fieldset.section').dataset.section);
      assert.equal(section, def.section, def.key);
    }
    // Every form control has a real label.
    const unlabelled = await page.$$eval('#settings-form input, #settings-form select',
      (els) => els.filter((e) => !e.labels || e.labels.length === 0).map((e) => e.id || e.name));
    assert.deepEqual(unlabelled, []);
    // Control types follow the schema.
    assert.equal(await page.getAttribute(field('proxy.enabled'), 'type'), 'checkbox');
    assert.equal(await page.getAttribute(field('proxy.port'), 'type'), 'number');
    assert.equal(await page.getAttribute(field('proxy.port'), 'max'), '65535');
    assert.equal(await page.getAttribute(field('proxy.password'), 'type'), 'password');
    assert.equal(await page.locator(`select${field('proxy.auth_method')} option`).count(), 4);
    // Blank means default: the effective URL is the placeholder.
    const doc = (await api.get('/api/v1/settings')).json;
    assert.equal(await page.getAttribute(field('um.url'), 'placeholder'), doc.settings['um.url'].effective);
    assert.equal(await page.getAttribute(field('meeting.url'), 'placeholder'), doc.settings['meeting.url'].effective);
    // The environment locks docs.url: read-only, with the reason.
    assert.equal(await page.locator(field('docs.url')).evaluate((e) => e.readOnly), true);
    assert.match(await page.textContent(`${field('docs.url')}-lock`), /ATRIUM_DOCS_URL/);
    // The domain is changed through its dialog only.
    assert.equal(await page.locator(field('domain.name')).evaluate((e) => e.readOnly), true);
    assert.ok(await page.isVisible('#domain-change-button'));
  });

  test('screenshots of every section at 1280 px', async () => {
    if (!SHOTS) return;
    // A viewport taller than the page keeps the sticky save bar at the end of the form.
    await page.setViewportSize({ width: 1280, height: 6000 });
    for (const s of schema.sections) await shot(page.locator(`#sec-${s.id}`), `section-${s.id}`);
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, 'settings-1280');
  });

  test('changes are sent as ONE PATCH with only the changed keys and If-Match, and persist', async () => {
    const before = (await api.get('/api/v1/settings')).json;
    const patches = [];
    const onRequest = (req) => { if (req.method() === 'PATCH') patches.push(req); };
    page.on('request', onRequest);
    await page.check(field('mobile.push_enabled'));
    await page.fill(field('um.url'), 'https://um.example.com/settings/');
    await page.fill(field('proxy.port'), '3128');
    await page.selectOption(field('proxy.auth_method'), 'digest');
    await page.fill(field('proxy.password'), 'pr0xy-secret');
    await page.click(`${field('proxy.bypass')}-add`);
    await page.keyboard.type('*.intranet.example.com');
    await page.click(`${field('qos.policies')}-add`);
    const row = page.locator(`${field('qos.policies')}-table tbody tr`).last();
    await row.locator('input[data-col=name]').fill('Softphone');
    await row.locator('input[data-col=dscp]').fill('46');
    await row.locator('input[data-col=max_rate_mbps]').fill('10');
    await row.locator('input[data-col=url]').fill('https://softphone.example.com/*');
    await row.locator('input[data-col=any_destination]').uncheck();
    assert.equal(await page.textContent('#unsaved-marker'), '7 unsaved changes');
    assert.ok(await page.locator('#field-um-url').evaluate((e) => e.classList.contains('changed')));
    await page.click('#save-button');
    await page.locator('#save-status.ok').waitFor();
    assert.equal(await page.textContent('#save-status'), 'Saved 7 settings.');
    assert.equal(await page.textContent('#unsaved-marker'), 'No unsaved changes');
    page.off('request', onRequest);
    assert.equal(patches.length, 1);
    assert.equal(patches[0].headers()['if-match'], `"${before.version}"`);
    assert.deepEqual(Object.keys(patches[0].postDataJSON()).sort(), ['mobile.push_enabled', 'proxy.auth_method',
      'proxy.bypass', 'proxy.password', 'proxy.port', 'qos.policies', 'um.url']);

    const s = (await api.get('/api/v1/settings')).json.settings;
    assert.equal(s['mobile.push_enabled'].value, true);
    assert.equal(s['um.url'].value, 'https://um.example.com/settings/');
    assert.equal(s['proxy.port'].value, 3128);
    assert.equal(s['proxy.auth_method'].value, 'digest');
    assert.deepEqual(s['proxy.password'].value, { set: true });
    assert.deepEqual(s['proxy.bypass'].value, ['*.intranet.example.com']);
    assert.equal(s['qos.policies'].value.length, 3);
    assert.deepEqual(s['qos.policies'].value[2], { name: 'Softphone', dscp: 46, max_rate_mbps: 10,
      url: 'https://softphone.example.com/*', include_subdirectories: true, any_destination: false });

    await page.reload();
    await page.locator('#settings-form fieldset.section').first().waitFor();
    assert.equal(await page.isChecked(field('mobile.push_enabled')), true);
    assert.equal(await page.inputValue(field('um.url')), 'https://um.example.com/settings/');
    assert.equal(await page.inputValue(field('proxy.port')), '3128');
    assert.equal(await page.inputValue(field('proxy.auth_method')), 'digest');
    assert.equal(await page.getAttribute(field('proxy.password'), 'placeholder'), '(set)');
    assert.equal(await page.inputValue(`${field('proxy.bypass')}-entries input`), '*.intranet.example.com');
    assert.equal(await page.locator(`${field('qos.policies')}-table tbody tr`).count(), 3);

    // Clearing the secret sends null and leaves it unset.
    await page.click(`${field('proxy.password')}-clear`);
    await page.click('#save-button');
    await page.locator('#save-status.ok').waitFor();
    assert.deepEqual((await api.get('/api/v1/settings')).json.settings['proxy.password'].value, { set: false });
    assert.equal(await page.getAttribute(field('proxy.password'), 'placeholder'), 'not set');
  });

  test('an invalid mobile URL: the message beside the field, nothing saved', async () => {
    const before = (await api.get('/api/v1/settings')).json;
    await page.fill(field('mobile.app_url'), 'http://m.example.com/app');
    await page.fill(field('mobile.webapi_url'), 'https://api.example.com/');
    await page.click('#save-button');
    await page.locator(fieldError('mobile.app_url')).waitFor();
    const expected = await api.post('/api/v1/settings/validate', { 'mobile.app_url': 'http://m.example.com/app' });
    assert.equal(expected.status, 422);
    const message = expected.json.errors.find((e) => e.key === 'mobile.app_url').message;
    assert.equal(await page.textContent(fieldError('mobile.app_url')), message);
    assert.equal(await page.getAttribute(field('mobile.app_url'), 'aria-invalid'), 'true');
    assert.match(await page.getAttribute(field('mobile.app_url'), 'aria-describedby'), /set-mobile-app-url-error/);
    assert.match(await page.textContent('#save-status'), /Nothing was saved/);
    // The focus moves to the field to fix.
    assert.equal(await page.evaluate(() => document.activeElement.id), 'set-mobile-app-url');
    const now = (await api.get('/api/v1/settings')).json;
    assert.equal(now.version, before.version);
    assert.equal(now.settings['mobile.app_url'].value, before.settings['mobile.app_url'].value);
    assert.equal(now.settings['mobile.webapi_url'].value, before.settings['mobile.webapi_url'].value);
    await sectionShot(page, '#sec-mobile', 'error-mobile-url');
    // Editing the field clears its message; discarding restores the document.
    await page.fill(field('mobile.app_url'), 'https://m.example.com/app');
    assert.equal(await page.isVisible(fieldError('mobile.app_url')), false);
    await page.click('#discard-button');
    assert.equal(await page.inputValue(field('mobile.app_url')), before.settings['mobile.app_url'].value);
  });

  test('a QoS error lands in its cell; a warning is shown beside its field', async () => {
    const cell = page.locator(`${field('qos.policies')}-table tbody tr`).nth(1).locator('input[data-col=dscp]');
    await cell.fill('99');
    await page.click('#save-button');
    const err = page.locator(`${field('qos.policies')}-table tbody tr`).nth(1).locator('td.col-dscp .error');
    await err.waitFor();
    assert.match(await err.textContent(), /0-63/);
    assert.equal(await cell.getAttribute('aria-invalid'), 'true');
    await shot(page.locator('#sec-qos'), 'error-qos-cell');
    await page.click('#discard-button');

    await page.fill(field('meeting.url'), 'http://meet.example.com/webmeeting/');
    await page.click('#save-button');
    await page.locator('#save-status.ok').waitFor();
    const warnings = page.locator(`${field('meeting.url')}-warnings li`);
    await warnings.first().waitFor();
    assert.equal(await warnings.first().getAttribute('data-code'), 'unencrypted');
    await sectionShot(page, '#sec-meeting', 'warning-meeting-url');
  });

  test('reverse-proxy list: the mobile URLs appear after saving them, the meeting when switched on', async () => {
    const entriesOf = (features) => async () => (await api.get('/api/v1/reverse-proxy')).json.entries
      .filter((e) => features.includes(e.feature));
    const shown = (section) => page.$$eval(`#rp-${section}-list li.rp-entry`, (lis) => lis.map((li) => ({
      feature: li.dataset.feature,
      url: li.querySelector('.rp-url').textContent,
      path: li.querySelector('.rp-path').textContent,
      upstream: li.querySelector('.rp-upstream').textContent,
      websocket: li.querySelector('.rp-ws').textContent,
    })));
    const expect = (e) => ({ feature: e.feature, url: e.url, path: e.path, upstream: e.upstream,
      websocket: e.websocket ? `yes, at ${e.websocket_path}` : 'no' });

    // Nothing published for the mobile app yet, and web meetings are off.
    assert.deepEqual(await entriesOf(['mobile.app', 'mobile.webapi'])(), []);
    assert.equal((await api.get('/api/v1/settings')).json.settings['meeting.enabled'].value, false);
    await page.locator('#rp-mobile-empty').waitFor();
    assert.equal(await page.locator('#rp-mobile-list li').count(), 0);
    assert.equal(await page.isVisible('#rp-meeting-empty'), true);
    // UM settings are always published.
    const um = await entriesOf(['um'])();
    assert.deepEqual(await shown('um'), um.map(expect));

    await page.fill(field('mobile.app_url'), 'https://m.example.com/app/');
    await page.fill(field('mobile.webapi_url'), 'https://m.example.com/telephony/');
    // Unsaved values are not published yet.
    assert.equal(await page.locator('#rp-mobile-list li').count(), 0);
    await page.click('#save-button');
    await page.locator('#save-status.ok').waitFor();
    await page.locator('#rp-mobile-list li.rp-entry').nth(1).waitFor();
    const mobile = await entriesOf(['mobile.app', 'mobile.webapi'])();
    assert.deepEqual(mobile.map((e) => e.url), ['https://m.example.com/app/', 'https://m.example.com/telephony/']);
    assert.deepEqual(await shown('mobile'), mobile.map(expect));
    assert.equal(await page.isVisible('#rp-mobile-empty'), false);
    assert.equal(await page.textContent('#rp-url-mobile-app'), 'https://m.example.com/app/');

    // The API's warnings are shown under Server address, with a pointer from the section.
    const doc = (await api.get('/api/v1/reverse-proxy')).json;
    assert.ok(doc.warnings.length > 0, 'the test server lists no trusted proxies');
    assert.deepEqual(await page.$$eval('#rp-warnings li', (l) => l.map((x) => x.dataset.code)),
      doc.warnings.map((w) => w.code));
    assert.match(await page.textContent('#rp-warnings'), new RegExp(doc.warnings[0].message.slice(0, 40).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    assert.match(await page.textContent('#rp-mobile-notes'), /notes? on the reverse proxy/);
    assert.equal(await page.textContent('#rp-upstream code'), doc.upstream.url);
    await sectionShot(page, '#sec-mobile', 'reverse-proxy-mobile');
    await sectionShot(page, '#sec-server', 'reverse-proxy-server');

    // Switching web meetings on publishes the meeting (with its WebSocket).
    await page.check(field('meeting.enabled'));
    await page.click('#save-button');
    await page.locator('#save-status.ok').waitFor();
    await page.locator('#rp-meeting-list li.rp-entry').first().waitFor();
    const meeting = await entriesOf(['meeting'])();
    assert.equal(meeting.length, 1);
    assert.equal(meeting[0].websocket, true);
    assert.deepEqual(await shown('meeting'), meeting.map(expect));
    assert.equal(await page.isVisible('#rp-meeting-empty'), false);
    // Two features on one URL: the conflict is shown beside both.
    await page.fill(field('um.url'), meeting[0].url);
    await page.click('#save-button');
    await page.locator('#save-status.ok').waitFor();
    const conflicts = (await api.get('/api/v1/reverse-proxy')).json.conflicts;
    assert.deepEqual(conflicts, [{ url: meeting[0].url, features: 'um', also: 'meeting' }]);
    await page.locator('#rp-meeting-conflicts li').first().waitFor();
    assert.equal(await page.textContent('#rp-meeting-conflicts'), `Warning: ${meeting[0].url}: UM settings and Web meeting `
      + 'are published at the same host, port and path. Give one of them another URL.');
    assert.equal(await page.locator('#rp-um-conflicts li').count(), 1);
    assert.equal(await page.locator('#rp-server-conflicts li').count(), 1);
    await page.fill(field('um.url'), 'https://um.example.com/settings/');
    await page.click('#save-button');
    await page.locator('#save-status.ok').waitFor();
    await page.locator('#rp-meeting-conflicts').waitFor({ state: 'hidden' });
    await sectionShot(page, '#sec-meeting', 'reverse-proxy-meeting');
  });

  test('reverse-proxy list: a copy button puts the URL on the clipboard and announces it', async () => {
    await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    const url = await page.textContent('#rp-url-mobile-webapi');
    assert.equal(url, 'https://m.example.com/telephony/');
    assert.match(await page.getAttribute('#rp-copy-mobile-webapi', 'aria-label'), /Copy the URL of Web API/);
    await page.click('#rp-copy-mobile-webapi');
    await page.waitForFunction(() => document.getElementById('rp-mobile-copied').textContent !== '');
    assert.equal(await page.textContent('#rp-mobile-copied'), `Copied to the clipboard: ${url}`);
    assert.equal(await page.getAttribute('#rp-mobile-copied', 'aria-live'), 'polite');
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), url);

    // Without the Clipboard API (a plain http:// page) the URL is selected instead.
    await page.evaluate(() => Object.defineProperty(navigator, 'clipboard', { value: undefined, configurable: true }));
    const app = await page.textContent('#rp-url-mobile-app');
    await page.click('#rp-copy-mobile-app');
    await page.waitForFunction((u) => document.getElementById('rp-mobile-copied').textContent.includes(u), app);
    assert.equal(await page.evaluate(() => window.getSelection().toString()), app);
    assert.match(await page.textContent('#rp-mobile-copied'), /^(Copied to the clipboard: |The URL .* is selected)/);
    await page.evaluate(() => { delete navigator.clipboard; window.getSelection().removeAllRanges(); });
  });

  test('reverse-proxy list: the nginx download is the API text', async () => {
    const { name, text } = await downloadText(page, () => page.click('#rp-mobile-nginx'));
    const expected = await server.api('GET', '/api/v1/reverse-proxy/nginx', { token: api.token });
    assert.equal(expected.status, 200);
    assert.equal(name, 'atrium.conf');
    assert.equal(text, expected.text);
    assert.match(text, /server_name m\.example\.com;/);
    await page.locator('#rp-mobile-nginx-status.ok').waitFor();
    assert.match(await page.textContent('#rp-mobile-nginx-status'), /Downloaded atrium\.conf/);
    // The download needs the session: without it the API refuses.
    assert.equal((await server.api('GET', '/api/v1/reverse-proxy/nginx')).status, 401);
  });

  test('privacy policy preview: rendered, with the retention time, in English and German', async () => {
    const info = (await api.get('/api/v1/privacy')).json;
    assert.equal(info.retention_days, 365); // max(IMDeleteAfterDays 90, JournalDeleteAfterDays 365)
    await page.locator('#privacy-install-dir').waitFor();
    assert.equal(await page.textContent('#privacy-install-dir'), info.install_directory);
    assert.equal(await page.textContent('#privacy-custom-dir'), info.custom_directory);
    assert.match(await page.textContent('#privacy-dirs'), /atriumctl privacy customize/);
    assert.match(await page.textContent('#privacy-retention-summary'), /Retention time: 365 days/);

    const en = (await api.get('/api/v1/privacy/preview?lang=en')).json;
    await page.click('#privacy-preview-button');
    await page.locator('#privacy-dialog').waitFor();
    await page.locator('#privacy-policy h2').waitFor();
    assert.equal(await page.textContent('#privacy-retention'), '365 days');
    assert.equal(await page.textContent('#privacy-lang'), 'English');
    assert.equal(await page.getAttribute('#privacy-policy', 'lang'), 'en');
    assert.match(await page.textContent('#privacy-policy'), /365 days/);
    assert.equal(await page.textContent('#privacy-policy h2'), /<h2>([^<]*)<\/h2>/.exec(en.html)[1]);
    // Nothing from the template runs or styles the page: no script, style or handler.
    assert.equal(await page.locator('#privacy-policy script, #privacy-policy style, #privacy-policy [style]').count(), 0);
    await shot(page.locator('#privacy-dialog'), 'privacy-preview');
    await page.keyboard.press('Escape');
    await page.locator('#privacy-dialog').waitFor({ state: 'hidden' });
    assert.equal(await page.evaluate(() => document.activeElement.id), 'privacy-preview-button');

    await page.selectOption('#lang-select', 'de');
    const de = (await api.get('/api/v1/privacy/preview?lang=de')).json;
    assert.match(await page.textContent('#privacy-retention-summary'), /Aufbewahrungsdauer: 365 Tage/);
    await page.click('#privacy-preview-button');
    await page.locator('#privacy-policy h2').waitFor();
    await page.waitForFunction(() => document.getElementById('privacy-policy').lang === 'de');
    assert.equal(await page.textContent('#privacy-retention'), '365 Tage');
    assert.equal(await page.textContent('#privacy-lang'), 'Deutsch');
    assert.equal(await page.textContent('#privacy-policy h2'), /<h2>([^<]*)<\/h2>/.exec(de.html)[1]);
    assert.match(await page.textContent('#privacy-policy'), /365 Tagen/);
    assert.equal(await page.textContent('#privacy-dialog-title'), 'Vorschau der Datenschutzerklärung');
    await shot(page.locator('#privacy-dialog'), 'privacy-preview-de');
    await page.click('#privacy-close-button');
    await page.locator('#privacy-dialog').waitFor({ state: 'hidden' });
    await page.selectOption('#lang-select', 'en');
    assert.match(await page.textContent('#privacy-retention-summary'), /Retention time: 365 days/);
  });

  test('keyboard only: Tab to a field, type, Tab to Save, Enter', async () => {
    await page.reload();
    await page.locator('#settings-form fieldset.section').first().waitFor();
    await page.locator('#settings-heading').focus();
    await tabTo(page, 'set-login-kerberos-keytab');
    // The focus is visible.
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, 'none');
    await page.keyboard.type('/etc/atrium/http.keytab');
    await tabTo(page, 'save-button');
    const btnOutline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(btnOutline, 'none');
    await page.keyboard.press('Enter');
    await page.locator('#save-status.ok').waitFor();
    assert.equal((await api.get('/api/v1/settings')).json.settings['login.kerberos_keytab'].value, '/etc/atrium/http.keytab');
    // Space toggles a checkbox, Enter in a text field saves too.
    await page.locator(field('login.publish_address')).focus();
    await page.keyboard.press('Space');
    await page.locator(field('login.discovery_port')).focus();
    await page.keyboard.press('Enter');
    await page.locator('#save-status.ok').waitFor();
    assert.equal((await api.get('/api/v1/settings')).json.settings['login.publish_address'].value, true);
  });

  test('412: the settings changed elsewhere → a reload message with a reload button', async () => {
    await page.fill(field('ad.bind_dn'), 'CN=page,DC=example,DC=com');
    const r = await api.patch({ 'ad.bind_dn': 'CN=api,DC=example,DC=com' });
    assert.equal(r.status, 200);
    await page.click('#save-button');
    await page.locator('#stale-banner').waitFor();
    assert.match(await page.textContent('#stale-message'), /changed elsewhere/);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'reload-button');
    await shot(page.locator('.actionbar'), 'stale-412');
    assert.equal((await api.get('/api/v1/settings')).json.settings['ad.bind_dn'].value, 'CN=api,DC=example,DC=com');
    await page.click('#reload-button');
    await page.locator('#stale-banner').waitFor({ state: 'hidden' });
    assert.equal(await page.inputValue(field('ad.bind_dn')), 'CN=api,DC=example,DC=com');
    assert.equal(await page.textContent('#unsaved-marker'), 'No unsaved changes');
  });

  test('unsaved changes: marker and a prompt before leaving', async () => {
    await page.fill(field('ad.container_dn'), 'CN=Atrium,DC=example,DC=com');
    assert.equal(await page.textContent('#unsaved-marker'), '1 unsaved change');
    assert.equal(await page.isVisible('#field-ad-container-dn .changed-mark'), true);
    const dialog = new Promise((resolve) => page.once('dialog', (d) => { resolve(d.type()); d.dismiss(); }));
    const timeout = new Promise((resolve) => setTimeout(() => resolve('no dialog'), 5000));
    await page.evaluate(() => { location.href = '#/audit'; }); // a route change is not leaving
    await page.evaluate(() => { location.href = '#/settings'; });
    page.reload().catch(() => {});
    assert.equal(await Promise.race([dialog, timeout]), 'beforeunload');
    assert.equal(await page.inputValue(field('ad.container_dn')), 'CN=Atrium,DC=example,DC=com');
    await page.click('#discard-button');
  });

  test('Test connection tests the unsaved form values and shows the server message', async () => {
    await page.check(field('proxy.enabled'));
    await page.fill(field('proxy.host'), '127.0.0.1');
    await page.fill(field('proxy.port'), '9');
    const sent = page.waitForRequest((r) => r.url().endsWith('/api/v1/proxy/test'));
    await page.click('#proxy-test-button');
    const body = (await sent).postDataJSON();
    assert.equal(body['proxy.enabled'], true);
    assert.equal(body['proxy.host'], '127.0.0.1');
    assert.equal(body['proxy.port'], 9);
    await page.locator('#proxy-test-result.ok, #proxy-test-result.error').waitFor({ timeout: 30000 });
    const expected = await api.post('/api/v1/proxy/test', body);
    assert.equal(expected.status, 200, expected.text);
    assert.equal(await page.textContent('#proxy-test-message'), expected.json.message);
    const kind = expected.json.ok ? 'ok' : 'error';
    assert.equal(await page.locator('#proxy-test-result').evaluate((e, k) => e.classList.contains(k), kind), true);
    await shot(page.locator('#sec-proxy'), 'proxy-test');
    // Nothing was saved by the test.
    assert.equal((await api.get('/api/v1/settings')).json.settings['proxy.enabled'].value, false);
    await page.click('#discard-button');
  });

  test('domain change: blocked while federation is on, then previewed and applied', async () => {
    assert.equal((await api.patch({ 'federation.enabled': true })).status, 200);
    await page.reload();
    await page.locator('#settings-form fieldset.section').first().waitFor();
    assert.equal(await page.isVisible('#domain-change-button'), false);
    assert.match(await page.textContent('#domain-blocked'), /federation is enabled/);
    await shot(page.locator('#sec-domain'), 'domain-blocked');
    const blocked = await api.post('/api/v1/domain/change', { domain: 'corp.example.com', dry_run: true });
    assert.equal(blocked.status, 409, blocked.text);

    // Switch federation off on the page, then change the domain.
    await page.uncheck(field('federation.enabled'));
    await page.click('#save-button');
    await page.locator('#save-status.ok').waitFor();
    await page.locator('#domain-change-button').waitFor();
    await page.click('#domain-change-button');
    await page.locator('#domain-dialog').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.id), 'domain-new');
    await page.keyboard.type('corp.example.com');
    await page.keyboard.press('Enter');
    await page.locator('#domain-preview').waitFor();
    const preview = (await api.post('/api/v1/domain/change', { domain: 'corp.example.com', dry_run: true })).json;
    assert.equal(await page.textContent('#domain-users'), String(preview.users));
    assert.equal(await page.textContent('#domain-mobile'), String(preview.mobile_devices));
    assert.equal(await page.textContent('#domain-subs'), String(preview.subscriptions));
    assert.equal(await page.textContent('#domain-fqdn'), `${preview.federation_fqdn.old} → ${preview.federation_fqdn.new}`);
    assert.equal(await page.locator('#domain-samples li').count(), Math.max(1, preview.samples.length));
    assert.equal(await page.isDisabled('#domain-apply-button'), true);
    await page.fill('#domain-confirm', 'corp.example.org');
    assert.equal(await page.isDisabled('#domain-apply-button'), true);
    await page.fill('#domain-confirm', 'corp.example.com');
    assert.equal(await page.isEnabled('#domain-apply-button'), true);
    await shot(page.locator('#domain-dialog'), 'domain-dialog');
    await page.click('#domain-apply-button');
    await page.locator('#domain-status.ok').waitFor({ timeout: 30000 });
    assert.equal((await api.get('/api/v1/settings')).json.settings['domain.name'].value, 'corp.example.com');
    await page.click('#domain-cancel-button');
    await page.locator('#domain-dialog').waitFor({ state: 'hidden' });
    assert.equal(await page.inputValue(field('domain.name')), 'corp.example.com');
  });

  test('audit log: paged, newest first', async () => {
    for (let i = 0; i < 22; i++) {
      assert.equal((await api.patch({ 'login.discovery_port': 20000 + i })).status, 200);
    }
    const total = (await api.get('/api/v1/audit?offset=0&limit=1')).json.total;
    await page.click('#nav-audit');
    await page.locator('#audit-table tbody tr').first().waitFor();
    assert.equal(await page.getAttribute('#nav-audit', 'aria-current'), 'page');
    assert.equal(await page.locator('#audit-table tbody tr').count(), 20);
    assert.equal(await page.textContent('#audit-range'), `Entries 1–20 of ${total}`);
    const first = page.locator('#audit-table tbody tr').first();
    assert.match(await first.locator('.col-key').textContent(), /login\.discovery_port/);
    assert.equal(await first.locator('.col-new').textContent(), '20021');
    assert.equal(await first.locator('.col-actor').textContent(), 'admin');
    await shot(page, 'audit');
    await page.click('#audit-next');
    await page.waitForFunction((t) => document.getElementById('audit-range').textContent.startsWith('Entries 21'), total);
    assert.equal(await page.isDisabled('#audit-prev'), false);
    // Secrets are never shown.
    assert.doesNotMatch(await page.textContent('#audit-table'), /pr0xy-secret/);
    await page.click('#nav-settings');
    await page.locator('#view-settings').waitFor();
  });

  test('language: switch to German and back, remembered across reloads', async () => {
    await page.selectOption('#lang-select', 'de');
    assert.equal(await page.textContent('#settings-heading'), 'Systemeinstellungen');
    assert.equal(await page.textContent('#field-proxy-host .label-text'), 'Proxy-Host');
    assert.equal(await page.textContent('#sec-proxy legend h2'), 'Proxy-Einstellungen');
    assert.equal(await page.textContent('#save-button'), 'Speichern');
    assert.equal(await page.getAttribute('html', 'lang'), 'de');
    await page.reload();
    await page.locator('#settings-form fieldset.section').first().waitFor();
    assert.equal(await page.textContent('#settings-heading'), 'Systemeinstellungen');
    await page.setViewportSize({ width: 1280, height: 900 });
    await shot(page, 'settings-de');
    await page.selectOption('#lang-select', 'en');
    assert.equal(await page.textContent('#settings-heading'), 'System settings');
    assert.equal(await page.textContent('#field-proxy-host .label-text'), 'Proxy host');
  });

  test('contrast of the text on the page is at least 4.5:1', async () => {
    const low = await page.evaluate(() => {
      const rgb = (s) => (s.match(/[\d.]+/g) ?? []).map(Number);
      const lum = ([r, g, b]) => {
        const c = [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
      };
      const bg = (el) => {
        for (let e = el; e; e = e.parentElement) {
          const c = rgb(getComputedStyle(e).backgroundColor);
          if (c.length >= 3 && (c.length < 4 || c[3] === 1)) return c;
        }
        return [255, 255, 255];
      };
      const bad = [];
      const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
      for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        const el = n.parentElement;
        if (!n.textContent.trim() || !el || el.closest('[hidden], .visually-hidden, option, noscript')) continue;
        if (el.closest('button:disabled, input:disabled')) continue; // exempt (WCAG 1.4.3)
        const r = el.getBoundingClientRect();
        if (!r.width || !r.height) continue;
        const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(bg(el))];
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        if (ratio < 4.5) bad.push(`${n.textContent.trim().slice(0, 40)}: ${ratio.toFixed(2)}`);
      }
      return bad;
    });
    assert.deepEqual(low, []);
  });

  test('phone width (375 px): no horizontal scroll', async () => {
    await page.setViewportSize({ width: 375, height: 812 });
    await page.evaluate(() => window.scrollTo(0, 0));
    await noHorizontalScroll(page, 'settings');
    await shot(page, 'phone-settings');
    if (SHOTS) {
      await page.setViewportSize({ width: 375, height: 9000 }); // the save bar at the end of the form
      await shot(page.locator('#sec-qos'), 'phone-qos');
      await shot(page.locator('#sec-mobile'), 'phone-reverse-proxy');
      await page.setViewportSize({ width: 375, height: 812 });
    }
    // The reverse-proxy list and the privacy preview fit too.
    await page.locator('#rp-mobile-list li.rp-entry').first().scrollIntoViewIfNeeded();
    await noHorizontalScroll(page, 'reverse-proxy list');
    await page.click('#privacy-preview-button');
    await page.locator('#privacy-policy h2').waitFor();
    await noHorizontalScroll(page, 'privacy preview');
    await shot(page, 'phone-privacy-preview');
    await page.keyboard.press('Escape');
    await page.locator('#privacy-dialog').waitFor({ state: 'hidden' });
    await page.click('#nav-audit');
    await page.locator('#audit-table tbody tr').first().waitFor();
    await noHorizontalScroll(page, 'audit log');
    await page.click('#nav-settings');
    await page.click('#domain-change-button');
    await page.locator('#domain-dialog').waitFor();
    await page.fill('#domain-new', 'corp2.example.com');
    await page.click('#domain-preview-button');
    await page.locator('#domain-preview, #domain-status.error').first().waitFor();
    await noHorizontalScroll(page, 'domain dialog');
    await page.evaluate(() => { document.getElementById('domain-dialog').scrollTop = 0; });
    await shot(page, 'phone-domain-dialog');
    await page.keyboard.press('Escape');
    await page.locator('#domain-dialog').waitFor({ state: 'hidden' });
    assert.equal(await page.evaluate(() => document.activeElement.id), 'domain-change-button');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  test('session expiry brings the login back; unsaved input survives a new login', async () => {
    await page.fill(field('ad.bind_dn'), 'CN=after-expiry,DC=example,DC=com');
    const cookie = (await browser.context.cookies()).find((c) => c.name === 'atrium_session');
    assert.ok(cookie, 'session cookie');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    // End the session behind the page's back.
    assert.equal((await server.api('DELETE', '/api/v1/session', { token: cookie.value })).status, 204);
    await page.click('#save-button');
    await page.locator('#view-login').waitFor();
    assert.match(await page.textContent('#login-notice'), /session has expired/);
    await page.fill('#login-user', 'admin');
    await page.fill('#login-password', server.adminPassword);
    await page.click('#login-submit');
    await page.locator('#view-settings').waitFor();
    assert.equal(await page.inputValue(field('ad.bind_dn')), 'CN=after-expiry,DC=example,DC=com');
    await page.click('#save-button');
    await page.locator('#save-status.ok').waitFor();
    assert.equal((await api.get('/api/v1/settings')).json.settings['ad.bind_dn'].value, 'CN=after-expiry,DC=example,DC=com');
  });

  test('logout ends the session', async () => {
    await page.click('#logout-button');
    await page.locator('#view-login').waitFor();
    assert.match(await page.textContent('#login-notice'), /logged out/);
    const r = await page.evaluate(() => fetch('/api/v1/session').then((x) => x.status));
    assert.equal(r, 401);
    await page.reload();
    await page.locator('#login-user').waitFor();
    assert.deepEqual(browser.errors, []);
  });
});

describe('admin page: browser language', () => {
  test('a German browser gets the German page', async () => {
    const server = await startServer();
    const browser = await launchBrowser({ locale: 'de-DE' });
    try {
      const page = await browser.page();
      await page.goto(`${server.url}/admin/`);
      await page.locator('#login-user').waitFor();
      assert.equal(await page.textContent('#login-heading'), 'Anmelden');
      assert.equal(await page.textContent('label[for=login-password]'), 'Passwort');
      await loginUi(page, server);
      assert.equal(await page.textContent('#settings-heading'), 'Systemeinstellungen');
      assert.equal(await page.inputValue('#lang-select'), 'de');
    } finally {
      await browser.close();
      await server.stop();
    }
  });
});
