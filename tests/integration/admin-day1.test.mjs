// The admin page on an administrator's first day: sentences beside the field
// they are about, Reset to default, the install default that says so, tables
// that never break inside a word (English and German, 375 and 1280 px), the
// audit log as cards on a phone and its filters, and a help link per section.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startServer } from './harness.mjs';
import { field, fieldError, launchBrowser, loginUi } from './browser.mjs';

/** Every word (whitespace-separated run of a text node) inside a visible
 * table cell that the browser laid out over more than one line. Runs in the
 * page. */
function wordsBrokenInCells() {
  const broken = [];
  const lines = (rects) => {
    const tops = [];
    for (const r of rects) {
      if (r.width < 0.5 || r.height < 0.5) continue;
      if (!tops.some((t) => Math.abs(t - r.top) < 3)) tops.push(r.top);
    }
    return tops.length;
  };
  // A header row a phone hides in a 1 px box (the cards label every value).
  const clipped = (el) => {
    for (let e = el; e && e.tagName !== 'TABLE'; e = e.parentElement) {
      const r = e.getBoundingClientRect();
      if (r.width <= 1 || r.height <= 1) return true;
    }
    return false;
  };
  for (const cell of document.querySelectorAll('table th, table td')) {
    if (!cell.getClientRects().length || clipped(cell)) continue; // not rendered, or clipped away
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      // Text for screen readers only sits in a 1 px box: it is not laid out for reading.
      if (el.closest('.visually-hidden')) continue;
      const box = el.getBoundingClientRect();
      if (box.width <= 1 || box.height <= 1) continue;
      const re = /\S+/g;
      let m;
      while ((m = re.exec(n.data))) {
        const range = document.createRange();
        range.setStart(n, m.index);
        range.setEnd(n, m.index + m[0].length);
        if (lines(range.getClientRects()) > 1) {
          broken.push(`${cell.closest('table').id || cell.closest('table').className} ${cell.className}: "${m[0]}"`);
        }
      }
    }
  }
  return broken;
}

/** Header cells whose text is wider than the cell: it runs into the next. */
function overflowingHeaders() {
  return [...document.querySelectorAll('table th')]
    .filter((th) => th.getClientRects().length && th.getBoundingClientRect().width > 1)
    .filter((th) => th.scrollWidth > th.clientWidth + 1)
    .map((th) => `${th.className}: ${th.textContent} (${th.scrollWidth} > ${th.clientWidth})`);
}

async function noHorizontalScroll(page, what) {
  const m = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
  }));
  assert.ok(m.scroll <= m.client, `${what}: page is ${m.scroll} px wide in a ${m.client} px viewport`);
}

describe('admin page: the first day', () => {
  let server;
  let browser;
  let page;
  let token;
  const api = (method, p, body) => server.api(method, p, { token, body });
  const settings = async () => (await api('GET', '/api/v1/settings')).json.settings;

  before(async () => {
    server = await startServer();
    token = await server.login();
    // Something in every table: audit entries of several kinds, a stored value.
    for (const [k, v] of [['proxy.host', 'squid.example.com'], ['proxy.port', 3128],
      ['login.discovery_port', 21800], ['mobile.app_url', 'https://m.example.com/app/']]) {
      assert.equal((await api('PATCH', '/api/v1/settings', { [k]: v })).status, 200);
    }
    await server.api('POST', '/api/v1/session', { body: { login: 'nobody', password: 'wrong-password-1' } });
    browser = await launchBrowser();
    page = await browser.page();
    await loginUi(page, server);
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  // A reload, not a hash change: the page reads the settings again.
  const reloadSettings = async () => {
    await page.goto(`${server.url}/admin/#/settings`);
    await page.reload();
    await page.locator('#settings-form fieldset.section').first().waitFor();
  };

  test('the install default of the server address says it is fixed at first start', async () => {
    assert.equal((await settings())['server.public_url'].source, 'install');
    const lock = page.locator(`${field('server.public_url')}-lock`);
    await lock.waitFor();
    assert.match(await lock.textContent(), /Fixed at the first start/);
    assert.equal(await page.locator(field('server.public_url')).evaluate((e) => e.readOnly), false, 'still editable');
  });

  test('Test connection with an invalid port: the message is beside the port field too', async () => {
    await page.fill(field('proxy.port'), '70000');
    await page.click('#proxy-test-button');
    const err = page.locator(fieldError('proxy.port'));
    await err.waitFor();
    assert.match(await err.textContent(), /65535/);
    assert.match(await page.textContent('#proxy-test-result'), /proxy\.port/);
    assert.equal(await page.getAttribute(field('proxy.port'), 'aria-invalid'), 'true');
    // A good port and the next test: the old message goes.
    await page.fill(field('proxy.port'), '3128');
    await page.click('#proxy-test-button');
    await page.locator('#proxy-test-result:not(.busy)').waitFor();
    await page.waitForFunction((id) => document.querySelector(id)?.hidden, fieldError('proxy.port'));
  });

  test('clearing the proxy port resets it to the default (null), not "not a string"', async () => {
    await reloadSettings();
    assert.equal(await page.inputValue(field('proxy.port')), '3128');
    await page.fill(field('proxy.port'), '');
    assert.match(await page.textContent('#unsaved-marker'), /1/);
    let sent = null;
    page.on('request', (r) => { if (r.method() === 'PATCH') sent = r.postDataJSON(); });
    await page.click('#save-button');
    await page.locator('#save-status.ok').waitFor();
    assert.deepEqual(sent, { 'proxy.port': null });
    const s = await settings();
    assert.equal(s['proxy.port'].source, 'default');
    assert.equal(await page.inputValue(field('proxy.port')), String(s['proxy.port'].value));
    // Cleared while already the default: nothing to save.
    await page.fill(field('proxy.port'), '');
    assert.doesNotMatch(await page.textContent('#unsaved-marker'), /1/);
    await page.click('#discard-button');
  });

  test('Reset to default: beside stored values only; stages null, shows the default, saved with Save', async () => {
    await reloadSettings();
    const schema = (await api('GET', '/api/v1/settings/schema')).json;
    const def = schema.settings.find((d) => d.key === 'login.discovery_port');
    const reset = page.locator(`${field('login.discovery_port')}-reset`);
    assert.ok(await reset.isVisible(), 'a stored value has the button');
    assert.equal(await reset.textContent(), 'Reset to default');
    assert.match(await reset.getAttribute('aria-label'), /Reset .+ to its default on Save/);
    // Default values, the environment's and the install default: no button.
    assert.equal(await page.locator(`${field('proxy.auth_method')}-reset`).isVisible(), false);
    assert.equal(await page.locator(`${field('server.public_url')}-reset`).isVisible(), false);
    assert.equal(await page.locator(`${field('domain.name')}-reset`).isVisible(), false);

    await reset.click();
    assert.equal(await page.inputValue(field('login.discovery_port')), String(def.default));
    assert.equal(await reset.textContent(), 'Keep stored value');
    assert.ok(await page.locator('#field-login-discovery-port.changed').isVisible());
    // Taken back: the stored value again, nothing changed.
    await reset.click();
    assert.equal(await page.inputValue(field('login.discovery_port')), '21800');
    assert.doesNotMatch(await page.textContent('#unsaved-marker'), /1/);
    // And a URL beside it, both saved with the normal Save.
    await reset.click();
    await page.locator(`${field('mobile.app_url')}-reset`).click();
    assert.equal(await page.inputValue(field('mobile.app_url')), '');
    let sent = null;
    page.on('request', (r) => { if (r.method() === 'PATCH') sent = r.postDataJSON(); });
    await page.click('#save-button');
    await page.locator('#save-status.ok').waitFor();
    assert.deepEqual(sent, { 'login.discovery_port': null, 'mobile.app_url': null });
    const s = await settings();
    assert.equal(s['login.discovery_port'].source, 'default');
    assert.equal(s['mobile.app_url'].source, 'default');
    assert.equal(await reset.isVisible(), false, 'the default has no button');
    // Typing after a reset means the typed value.
    await api('PATCH', '/api/v1/settings', { 'login.discovery_port': 21801 });
    await reloadSettings();
    await reset.click();
    await page.fill(field('login.discovery_port'), '21802');
    assert.equal(await reset.textContent(), 'Reset to default');
    await page.click('#save-button');
    await page.locator('#save-status.ok').waitFor();
    assert.equal((await settings())['login.discovery_port'].value, 21802);
    // German.
    await page.selectOption('#lang-select', 'de');
    assert.equal(await reset.textContent(), 'Standard wiederherstellen');
    await page.selectOption('#lang-select', 'en');
    assert.deepEqual(browser.errors, []);
  });

  for (const lang of ['en', 'de']) {
    for (const width of [1280, 375]) {
      test(`${lang}, ${width} px: no table cell wraps inside a word, no header runs into the next`, async (t) => {
        t.after(async () => {
          await page.selectOption('#lang-select', 'en').catch(() => {});
          await page.setViewportSize({ width: 1280, height: 900 });
        });
        await page.setViewportSize({ width, height: 900 });
        await reloadSettings();
        await page.selectOption('#lang-select', lang);
        // QoS table (settings), with a row added so that its Remove button shows twice.
        await page.locator('#sec-qos table').first().scrollIntoViewIfNeeded();
        assert.deepEqual(await page.evaluate(wordsBrokenInCells), [], 'settings');
        assert.deepEqual(width === 1280 ? await page.evaluate(overflowingHeaders) : [], [], 'QoS headers');
        // The Remove buttons on one line ("Entfernen", not "Entfern/en").
        const removes = await page.$$eval('#sec-qos td.col-actions button', (bs) => bs.map((b) => {
          const range = document.createRange();
          range.selectNodeContents(b);
          const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
          return { text: b.textContent, lines: tops.size };
        }));
        assert.ok(removes.length > 0);
        for (const r of removes) assert.equal(r.lines, 1, `${r.text}: ${r.lines} lines`);
        // Audit log.
        await page.click('#nav-audit');
        await page.locator('#audit-table tbody tr').first().waitFor();
        assert.deepEqual(await page.evaluate(wordsBrokenInCells), [], 'audit');
        await noHorizontalScroll(page, 'audit');
        // Status page.
        await page.click('#nav-status');
        await page.locator('#view-status table').first().waitFor();
        assert.deepEqual(await page.evaluate(wordsBrokenInCells), [], 'status');
        await page.click('#nav-settings');
        await page.selectOption('#lang-select', 'en');
        await page.setViewportSize({ width: 1280, height: 900 });
      });
    }
  }

  test('a help link per section opens its guide in the built-in documentation', async () => {
    await reloadSettings();
    const links = await page.$$eval('#settings-form fieldset.section > legend a.help-link', (as) =>
      as.map((a) => ({ section: a.closest('fieldset').dataset.section, href: a.href, target: a.target, label: a.getAttribute('aria-label'), text: a.textContent })));
    const sections = await page.$$eval('#settings-form fieldset.section', (fs) => fs.map((f) => f.dataset.section));
    assert.deepEqual(links.map((l) => l.section), sections, 'one per section');
    for (const l of links) {
      const u = new URL(l.href);
      assert.match(u.pathname, /^\/docs\/.+\.html$/, l.href);
      const r = await server.api('GET', u.pathname);
      assert.equal(r.status, 200, `${l.section}: ${l.href}`);
      if (u.hash) assert.match(r.text, new RegExp(` id="${u.hash.slice(1)}"`), `${l.section}: ${u.hash} missing`);
      assert.equal(l.target, '_blank', 'unsaved changes stay in this tab');
      assert.equal(l.text, 'Guide');
      assert.match(l.label, /^Guide for .+ \(opens the documentation in a new tab\)$/);
    }
    const guide = new URL(await page.locator('#settings-guide').evaluate((a) => a.href));
    assert.equal(guide.pathname, '/docs/admin-page.html');
    assert.equal((await server.api('GET', guide.pathname)).status, 200);
    await page.selectOption('#lang-select', 'de');
    assert.equal(await page.textContent('#help-proxy'), 'Anleitung');
    await page.selectOption('#lang-select', 'en');
  });

  test('375 px: the audit log is a stack of cards, each value under its column name', async () => {
    await page.setViewportSize({ width: 375, height: 812 });
    await page.click('#nav-audit');
    await page.locator('#audit-table tbody tr').first().waitFor();
    const card = await page.evaluate(() => {
      const tr = document.querySelector('#audit-table tbody tr');
      const tds = [...tr.querySelectorAll('td')];
      return {
        tr: getComputedStyle(tr).display,
        td: tds.map((td) => getComputedStyle(td).display),
        labels: tds.map((td) => getComputedStyle(td, '::before').content),
        head: document.querySelector('#audit-table thead').getBoundingClientRect().height,
        widths: tds.map((td) => Math.round(td.getBoundingClientRect().width)),
      };
    });
    assert.equal(card.tr, 'block');
    assert.ok(card.td.every((d) => d === 'block'), card.td.join());
    assert.deepEqual(card.labels, ['"Time"', '"Changed by"', '"Action"', '"Setting"', '"Old value"', '"New value"']);
    assert.ok(card.head <= 1, 'the header row is for screen readers only');
    assert.ok(card.widths.every((w) => w >= 300), `cards use the width: ${card.widths}`);
    await noHorizontalScroll(page, 'audit cards');
    await page.setViewportSize({ width: 1280, height: 900 });
    const table = await page.evaluate(() => getComputedStyle(document.querySelector('#audit-table tbody tr')).display);
    assert.equal(table, 'table-row', 'a table again at 1280 px');
  });

  test('audit filters: actor, setting or object, action, time range; times name their zone', async () => {
    await page.click('#nav-audit');
    await page.locator('#audit-table tbody tr').first().waitFor();
    // The zone is said beside the filters and in every time.
    assert.match(await page.textContent('#audit-zone'), /UTC[+-]\d\d:\d\d/);
    const time = await page.textContent('#audit-table tbody tr .col-time time');
    assert.match(time, /(UTC|GMT|[A-Z]{3,5}|[+-]\d{1,2}(:\d\d)?)$/, `a time without zone: ${time}`);
    // key: prefix.
    await page.fill('#audit-filter-key', 'proxy.*');
    await page.click('#audit-apply');
    await page.waitForFunction(() => [...document.querySelectorAll('#audit-table tbody tr .col-key code')].every((c) => c.textContent.startsWith('proxy.')));
    let api1 = (await api('GET', '/api/v1/audit?key=proxy.*&limit=100')).json;
    assert.equal(await page.locator('#audit-table tbody tr').count(), Math.min(20, api1.total));
    assert.match(await page.textContent('#audit-range'), new RegExp(`of ${api1.total}$`));
    // action and actor.
    await page.fill('#audit-filter-key', '');
    await page.fill('#audit-filter-action', 'admin.login_failed');
    await page.click('#audit-apply');
    await page.waitForFunction(() => [...document.querySelectorAll('#audit-table tbody tr .col-action')].every((c) => c.textContent === 'admin.login_failed'));
    assert.match(await page.textContent('#audit-table tbody'), /nobody/);
    await page.fill('#audit-filter-action', '');
    await page.fill('#audit-filter-actor', 'nosuchactor');
    await page.click('#audit-apply');
    await page.locator('#audit-status', { hasText: 'No entry matches these filters.' }).waitFor();
    // Time range: a window in the future holds nothing; one around now holds everything.
    await page.fill('#audit-filter-actor', '');
    const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
    let sent = null;
    page.on('request', (r) => { if (r.url().includes('/api/v1/audit')) sent = new URL(r.url()).searchParams; });
    await page.fill('#audit-filter-since', local(new Date(Date.now() + 3600e3)));
    await page.click('#audit-apply');
    await page.locator('#audit-status', { hasText: 'No entry matches these filters.' }).waitFor();
    assert.match(sent.get('since'), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/, 'sent with its offset');
    await page.fill('#audit-filter-since', local(new Date(Date.now() - 3600e3)));
    await page.fill('#audit-filter-until', local(new Date(Date.now() + 3600e3)));
    await page.click('#audit-apply');
    api1 = (await api('GET', '/api/v1/audit?limit=1')).json;
    await page.locator('#audit-range', { hasText: `of ${api1.total}` }).waitFor();
    // Clear: every entry again.
    await page.click('#audit-clear');
    await page.locator('#audit-range', { hasText: `of ${api1.total}` }).waitFor();
    assert.equal(await page.inputValue('#audit-filter-since'), '');
    // German labels.
    await page.selectOption('#lang-select', 'de');
    assert.equal(await page.textContent('label[for=audit-filter-actor]'), 'Geändert von');
    await page.selectOption('#lang-select', 'en');
    await page.click('#nav-settings');
    assert.deepEqual(browser.errors, []);
  });
});
