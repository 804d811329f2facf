// The admin page's Status page in chromium, against a real atriumd: the
// modules with their states, the configuration warnings, the clients
// connected now (they appear and disappear), retention with "Run the sweep
// now" deleting old rows written through the store, federation and push,
// German, and a phone's width. ATRIUM_SCREENSHOTS=docs/screenshots writes
// the screenshots docs/admin-page.md shows.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';

import { REPO, STORE_TOOL, startServer } from './harness.mjs';
import { WAIT_MS, launchBrowser, loginUi } from './browser.mjs';
import { clientLogin, rtConnect } from './rt-client.mjs';

const run = promisify(execFile);
const PW = 'status-page-pass-1';
const DAY = 86400;
const SHOTS = process.env.ATRIUM_SCREENSHOTS ? path.resolve(REPO, process.env.ATRIUM_SCREENSHOTS) : null;

async function shot(page, name) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

const text = (page, sel) => page.locator(sel).innerText();

describe('admin page: the Status page', () => {
  let srv, browser, page, admin;
  const tool = async (...args) => (await run(STORE_TOOL, [srv.storeTarget, ...args.map(String)])).stdout.trim();

  before(async () => {
    srv = await startServer({ atlas: '<Domain>status.example</Domain>', imDays: 30, journalDays: 60 });
    admin = await srv.login();
    for (const name of ['alice', 'bob']) {
      const r = await srv.api('POST', '/api/v1/users', { token: admin, body: { name, password: PW } });
      assert.equal(r.status, 201, r.text);
    }
    browser = await launchBrowser();
    page = await browser.page();
    await loginUi(page, srv);
  });
  after(async () => {
    await browser?.close();
    await srv?.stop();
  });

  test('the navigation leads to it; every module is listed with its state as a word', async () => {
    await page.click('#nav-status');
    await page.locator('#status-modules-table tbody tr').first().waitFor();
    assert.equal(await page.getAttribute('#nav-status', 'aria-current'), 'page');
    assert.equal(await page.getAttribute('#nav-settings', 'aria-current'), null);
    assert.equal(await page.isHidden('#view-settings'), true);
    const doc = (await srv.api('GET', '/api/v1/status', { token: admin })).json;
    const names = await page.locator('#status-modules-table tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.module));
    assert.deepEqual(names, doc.modules.map((m) => m.name));
    // Publishing: automatic login allowed without a keytab is a warning, in words.
    const publishing = page.locator('#status-modules-table tr[data-module="publishing"]');
    assert.equal(await publishing.locator('.state').innerText(), 'Warning');
    assert.match(await publishing.innerText(), /not set up/);
    assert.match(await text(page, '#status-summary'), /Atrium \d+\.\d+\.\d+\./);
    // The same warning in the list of configuration warnings, with its label.
    const w = page.locator('#status-warning-list li[data-key="login.allow_automatic"]');
    await w.waitFor();
    assert.match(await w.innerText(), /login\.allow_automatic/);
    assert.deepEqual(browser.errors, []);
  });

  test('connected clients appear with their client and presence, and go when they close', async () => {
    assert.match(await text(page, '#status-clients-count'), /Users connected: 0; client connections: 0\./);
    const a = await rtConnect(srv, await clientLogin(srv, 'alice@status.example', PW), { client: 'desktop' });
    const b = await rtConnect(srv, await clientLogin(srv, 'alice@status.example', PW), { client: 'mobile' });
    try {
      assert.equal((await a.request({ type: 'presence.set', state: 'busy', note: 'In the lab' })).type, 'ok');
      await page.click('#status-refresh');
      await page.waitForFunction(() => /client connections: 2\./.test(document.getElementById('status-clients-count')?.textContent ?? ''),
        null, { timeout: WAIT_MS });
      const rows = page.locator('#status-clients-table tbody tr[data-user="alice"]');
      assert.equal(await rows.count(), 2);
      const all = await page.locator('#status-clients-table').innerText();
      assert.match(all, /alice@status\.example/);
      assert.match(all, /desktop/);
      assert.match(all, /mobile/);
      assert.match(all, /Busy/);
      assert.match(all, /In the lab/);
      assert.match(await text(page, '#status-clients-count'), /Users connected: 1; client connections: 2\./);
      await shot(page, 'status');
    } finally {
      a.close();
      b.close();
    }
    // Bounded: the hub notices the closes, Refresh shows it.
    const until = Date.now() + WAIT_MS;
    while (Date.now() < until) {
      await page.click('#status-refresh');
      if (/client connections: 0\./.test(await text(page, '#status-clients-count'))) break;
      await page.waitForTimeout(200);
    }
    assert.match(await text(page, '#status-clients-count'), /Users connected: 0; client connections: 0\./);
    assert.equal(await page.locator('#status-clients-table').count(), 0);
  });

  test('retention: the days from atlas.xml; the sweep button deletes exactly the old rows', async () => {
    const facts = await text(page, '#status-retention');
    assert.match(facts, /Chats are deleted after\s+30 days/);
    assert.match(facts, /Journal entries are deleted after\s+60 days/);
    // Two messages older than 30 days, one younger: the sweep takes the two.
    await tool('message', 'alice', 'bob', 40 * DAY, 1, 'old one');
    await tool('message', 'alice', 'bob', 31 * DAY, 1, 'old two');
    await tool('message', 'alice', 'bob', 29 * DAY, 1, 'young');
    await page.click('#status-retention-run');
    await page.waitForFunction(() => /^Done:/.test(document.getElementById('status-retention-message')?.textContent ?? ''),
      null, { timeout: WAIT_MS });
    assert.equal(await text(page, '#status-retention-message'), 'Done: 2 messages and 0 journal entries deleted.');
    assert.match(await text(page, '#status-retention'), /Deleted by the last sweep\s+2 messages, 0 journal entries/);
    const bob = await clientLogin(srv, 'bob@status.example', PW);
    const left = await srv.api('GET', '/client/v1/messages?with=alice@status.example&limit=50', { token: bob });
    assert.deepEqual(left.json.messages.map((m) => m.text), ['young']);
  });

  test('federation and push say that they are not set up', async () => {
    assert.equal(await page.locator('#status-federation-state .state').innerText(), 'Off');
    assert.match(await text(page, '#status-federation-state'), /SIP federation is not set up\./);
    assert.match(await text(page, '#status-federation'), /Remote watchers of our users\s+0 active, 0 pending/);
    assert.match(await text(page, '#status-push-state'), /Push notifications are off\./);
  });

  test('a failing call is said in its block; the others still show', async () => {
    await page.route('**/api/v1/push/status', (r) => r.fulfill({
      status: 503, contentType: 'application/problem+json',
      body: JSON.stringify({ title: 'Busy', detail: 'The push module did not answer.' }),
    }));
    try {
      await page.click('#status-refresh');
      await page.waitForFunction(() => /did not answer/.test(document.getElementById('status-push')?.textContent ?? ''),
        null, { timeout: WAIT_MS });
      assert.match(await text(page, '#status-push'), /Could not be loaded: The push module did not answer\./);
      assert.equal(await page.locator('#status-modules-table tbody tr').count() > 0, true);
    } finally {
      await page.unroute('**/api/v1/push/status');
    }
  });

  test('German, and a phone width without horizontal scrolling', async () => {
    await page.selectOption('#lang-select', 'de');
    await page.waitForFunction(() => document.getElementById('status-heading')?.textContent === 'Status');
    assert.match(await text(page, '#status-retention'), /Chats werden gelöscht nach\s+30 Tagen/);
    assert.match(await text(page, '#status-clients-count'), /Verbundene Benutzer: 0/);
    assert.equal(await page.locator('#status-modules-table tr[data-module="publishing"] .state').innerText(), 'Warnung');
    await page.selectOption('#lang-select', 'en');
    await page.setViewportSize({ width: 375, height: 800 });
    const m = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
    assert.ok(m.scroll <= m.client, `page is ${m.scroll} px wide in a ${m.client} px viewport`);
    await shot(page, 'phone-status');
    await page.setViewportSize({ width: 1280, height: 900 });
    // Back to the settings: the status refresh stops with the page.
    await page.click('#nav-settings');
    // The view switches on the hash change, a task after the click.
    await page.waitForSelector('#view-status', { state: 'hidden', timeout: 5000 });
    assert.equal(await page.isHidden('#view-status'), true);
    assert.deepEqual(browser.errors, []);
  });
});
