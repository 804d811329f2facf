// The admin page's Users page in chromium, against a real atriumd: 121
// users made through the import API, listed a page at a time and searched
// on the server (one request for a typed word); add with a refused name
// (the message beside the field, nothing created), edit, disable (the
// user's client token ends), delete after a confirmation naming the user,
// import with bad rows (the errors by row, nothing imported) and a good
// file, an import answered 202 with a job that is polled, a user's devices
// and client sessions with "Sign out everywhere", German, and a phone's
// width. ATRIUM_SCREENSHOTS=docs/screenshots writes the screenshots
// docs/admin-page.md shows.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { REPO, startServer } from './harness.mjs';
import { WAIT_MS, launchBrowser, loginUi } from './browser.mjs';
import { clientLogin } from './rt-client.mjs';

const PW = 'users-page-pass-1';
const DOMAIN = 'users.example';
const SHOTS = process.env.ATRIUM_SCREENSHOTS ? path.resolve(REPO, process.env.ATRIUM_SCREENSHOTS) : null;

// The viewport only: a full page of 50 users is too long to read in the docs.
async function shot(page, name) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

const text = (page, sel) => page.locator(sel).innerText();
const pad = (i) => String(i).padStart(3, '0');
const waitText = (page, sel, re, timeout = WAIT_MS) => page.waitForFunction(([s, src]) => new RegExp(src).test(document.querySelector(s)?.textContent ?? ''),
  [sel, re.source], { timeout });
const row = (page, name) => page.locator(`#users-table tbody tr[data-name="${name}"]`);

async function noHorizontalScroll(page, what) {
  const m = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
  assert.ok(m.scroll <= m.client, `${what}: page is ${m.scroll} px wide in a ${m.client} px viewport`);
}

describe('admin page: the Users page', () => {
  let srv, browser, page, admin;
  const api = (method, p, o = {}) => srv.api(method, p, { token: admin, ...o });

  before(async () => {
    srv = await startServer({ atlas: `<Domain>${DOMAIN}</Domain>` });
    admin = await srv.login();
    const rows = Array.from({ length: 120 }, (_, i) => ({ name: `u${pad(i + 1)}`, display_name: `User ${pad(i + 1)}` }));
    let r = await api('POST', '/api/v1/users/import', { body: rows });
    assert.equal(r.status, 200, r.text);
    r = await api('POST', '/api/v1/users', { body: { name: 'alice', display_name: 'Alice Example', windows_account: 'CORP\\alice', password: PW } });
    assert.equal(r.status, 201, r.text);
    browser = await launchBrowser();
    page = await browser.page();
    await loginUi(page, srv);
  });
  after(async () => {
    await browser?.close();
    await srv?.stop();
  });

  test('the link sits between System settings and Status; the list pages through 121 users', async () => {
    const links = await page.locator('#mainnav a').evaluateAll((as) => as.map((a) => a.id));
    assert.deepEqual(links.slice(0, 3), ['nav-settings', 'nav-users', 'nav-status']);
    await page.click('#nav-users');
    await waitText(page, '#users-status', /^121 users\.$/);
    assert.equal(await page.getAttribute('#nav-users', 'aria-current'), 'page');
    assert.equal(await page.isHidden('#view-settings'), true);
    assert.equal(await page.locator('#users-table tbody tr').count(), 50);
    assert.equal(await text(page, '#users-range'), 'Users 1–50 of 121');
    assert.equal(await page.isDisabled('#users-prev'), true);
    // Ordered by name: alice first, then u001 ...
    assert.match(await row(page, 'alice').innerText(), /alice@users\.example[\s\S]*Alice Example[\s\S]*CORP\\alice[\s\S]*Enabled/);
    await page.click('#users-next');
    await waitText(page, '#users-range', /^Users 51–100 of 121$/);
    assert.equal(await page.locator('#users-table tbody tr').first().getAttribute('data-name'), 'u050');
    await page.click('#users-next');
    await waitText(page, '#users-range', /^Users 101–121 of 121$/);
    assert.equal(await page.locator('#users-table tbody tr').count(), 21);
    assert.equal(await page.isDisabled('#users-next'), true);
    await page.click('#users-prev');
    await waitText(page, '#users-range', /^Users 51–100 of 121$/);
    assert.deepEqual(browser.errors, []);
  });

  test('the search is the server’s, sent once for a typed word, and starts at page 1', async () => {
    const searches = [];
    const onRequest = (req) => { if (/\/api\/v1\/users\?q=/.test(req.url())) searches.push(new URL(req.url()).searchParams.get('q')); };
    page.on('request', onRequest);
    try {
      await page.locator('#users-search').pressSequentially('u11', { delay: 40 });
      await waitText(page, '#users-status', /^10 users match “u11”\.$/);
      const names = await page.locator('#users-table tbody tr').evaluateAll((rs) => rs.map((r) => r.dataset.name));
      assert.deepEqual(names, Array.from({ length: 10 }, (_, i) => `u11${i}`));
      // Debounced: one search for the word (fewer than one per key even when
      // a loaded machine stretches the gaps between the keys past the delay).
      assert.ok(searches.length < 3, `searches sent: ${searches.join(', ')}`);
      assert.equal(searches.at(-1), 'u11');
      assert.equal(await page.isHidden('nav.pager'), true, 'one page: no pager');
      // A login name finds its user; a display name part too.
      await page.fill('#users-search', `alice@${DOMAIN}`);
      await waitText(page, '#users-status', /^1 user matches/);
      await page.fill('#users-search', 'Example');
      await waitText(page, '#users-status', /^1 user matches “Example”\.$/);
      await page.fill('#users-search', 'nobody-like-this');
      await waitText(page, '#users-status', /^No user matches “nobody-like-this”\.$/);
      assert.equal(await page.isHidden('#users-table'), true);
      // A slow answer (a large directory's search): said while it runs.
      await page.route('**/api/v1/users?q=slow*', async (r) => { await new Promise((ok) => setTimeout(ok, 1200)); await r.continue(); });
      await page.fill('#users-search', 'slow');
      await waitText(page, '#users-status', /^Searching for “slow”…$/);
      await waitText(page, '#users-status', /^No user matches “slow”\.$/);
      await page.unroute('**/api/v1/users?q=slow*');
      await page.fill('#users-search', '');
      await waitText(page, '#users-status', /^121 users\.$/);
      assert.equal(await text(page, '#users-range'), 'Users 1–50 of 121');
    } finally {
      page.off('request', onRequest);
    }
  });

  test('add: a refused name is said beside the field and creates nothing; a good one is added', async () => {
    await page.click('#users-add');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'user-name');
    await page.fill('#user-name', 'Bad Name');
    await page.fill('#user-display-name', 'Bad');
    await page.click('#user-save');
    await page.locator('#user-name-error').waitFor();
    assert.match(await text(page, '#user-name-error'), /\S/);
    assert.equal(await page.getAttribute('#user-name', 'aria-invalid'), 'true');
    assert.match(await page.getAttribute('#user-name', 'aria-describedby'), /user-name-error/);
    assert.match(await text(page, '#user-dialog-status'), /^Nothing was saved/);
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'user-name');
    assert.equal((await api('GET', '/api/v1/users?limit=1')).json.total, 121, 'nothing created');
    // A password too short: beside the password.
    await page.fill('#user-name', 'zoe');
    await page.fill('#user-display-name', 'Zoe Zed');
    await page.fill('#user-password', 'short');
    await page.click('#user-save');
    await page.locator('#user-password-error').waitFor();
    assert.equal(await page.isHidden('#user-name-error'), true);
    await page.fill('#user-password', PW);
    await page.click('#user-save');
    await waitText(page, '#users-notice', /^User zoe was added\.$/);
    assert.equal(await page.isHidden('#user-dialog'), true);
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'users-add', 'the focus goes back');
    const z = (await api('GET', '/api/v1/users/zoe')).json;
    assert.equal(z.display_name, 'Zoe Zed');
    assert.equal(z.enabled, true);
    assert.equal(z.has_password, true);
    await waitText(page, '#users-status', /^122 users\.$/);
  });

  test('edit and disable: the display name changes, a disabled user’s client token ends', async () => {
    const token = await clientLogin(srv, `zoe@${DOMAIN}`, PW);
    assert.equal((await srv.api('GET', '/client/v1/me', { token })).status, 200);
    await page.fill('#users-search', 'zoe');
    await waitText(page, '#users-status', /^1 user matches “zoe”\.$/);
    await row(page, 'zoe').locator('button', { hasText: 'Edit' }).click();
    assert.equal(await page.getAttribute('#user-name', 'readonly'), '');
    assert.equal(await page.inputValue('#user-display-name'), 'Zoe Zed');
    assert.equal(await page.isChecked('#user-enabled'), true);
    await page.fill('#user-display-name', 'Zoe Zeta');
    await page.uncheck('#user-enabled');
    await page.click('#user-save');
    await waitText(page, '#users-notice', /^User zoe was disabled and signed out everywhere\.$/);
    await waitText(page, '#users-table tbody tr[data-name="zoe"]', /Disabled/);
    assert.match(await row(page, 'zoe').innerText(), /Zoe Zeta/);
    const z = (await api('GET', '/api/v1/users/zoe')).json;
    assert.equal(z.display_name, 'Zoe Zeta');
    assert.equal(z.enabled, false);
    assert.equal((await srv.api('GET', '/client/v1/me', { token })).status, 401);
    // Enabled again with a new password: the new one logs in.
    await row(page, 'zoe').locator('button', { hasText: 'Edit' }).click();
    await page.check('#user-enabled');
    await page.fill('#user-password', 'another-pass-2');
    await page.click('#user-save');
    await waitText(page, '#users-notice', /^User zoe was saved\.$/);
    await clientLogin(srv, `zoe@${DOMAIN}`, 'another-pass-2');
    // Nothing changed: said so, nothing sent.
    await row(page, 'zoe').locator('button', { hasText: 'Edit' }).click();
    await page.click('#user-save');
    await waitText(page, '#user-dialog-status', /^Nothing was changed\.$/);
    await page.keyboard.press('Escape');
    assert.equal(await page.isHidden('#user-dialog'), true);
  });

  test('delete asks, naming the user; Cancel keeps it, Delete removes it', async () => {
    const del = row(page, 'zoe').locator('button', { hasText: 'Delete' });
    assert.equal(await del.getAttribute('aria-label'), 'Delete zoe');
    await del.click();
    assert.match(await text(page, '#user-delete-question'), /zoe \(zoe@users\.example\)/);
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'user-delete-cancel', 'Enter does not delete');
    await page.click('#user-delete-cancel');
    assert.equal((await api('GET', '/api/v1/users/zoe')).status, 200);
    await del.click();
    await page.click('#user-delete-confirm');
    await waitText(page, '#users-notice', /^User zoe was deleted\.$/);
    await waitText(page, '#users-status', /^No user matches “zoe”\.$/);
    assert.equal((await api('GET', '/api/v1/users/zoe')).status, 404);
    await page.fill('#users-search', '');
    await waitText(page, '#users-status', /^121 users\.$/);
  });

  test('import: bad rows are listed by row and line, nothing is imported; a good file is', async () => {
    await page.click('#users-import');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'users-import-file');
    const bad = 'name,display_name,enabled\r\nimp1,Imported One,true\r\nNOPE,Upper,true\r\nimp3,Three,maybe\r\n';
    await page.setInputFiles('#users-import-file', { name: 'users.csv', mimeType: 'text/csv', buffer: Buffer.from(bad) });
    await page.click('#users-import-submit');
    await page.locator('#users-import-errors li').first().waitFor();
    const items = await page.locator('#users-import-errors li').evaluateAll((ls) => ls.map((l) => ({ row: l.dataset.row, text: l.textContent })));
    assert.deepEqual(items.map((i) => i.row), ['2', '3']);
    assert.match(items[0].text, /^Row 2 \(line 3\): name: /);
    assert.match(items[1].text, /^Row 3 \(line 4\): enabled: /);
    assert.equal(await text(page, '#users-import-status'), 'Nothing was imported: 2 rows have errors. Correct the file and import it again.');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'users-import-errors-h');
    await shot(page, 'users-import-errors');
    assert.equal((await api('GET', '/api/v1/users/imp1')).status, 404, 'nothing of a refused import is written');
    // A name that exists: refused by the store, the row named.
    const clash = JSON.stringify([{ name: 'imp1' }, { name: 'alice' }]);
    await page.setInputFiles('#users-import-file', { name: 'users.json', mimeType: 'application/json', buffer: Buffer.from(clash) });
    await page.click('#users-import-submit');
    await waitText(page, '#users-import-errors', /Row 2/);
    assert.equal((await api('GET', '/api/v1/users/imp1')).status, 404);
    // A good JSON file.
    const good = JSON.stringify([
      { name: 'imp1', display_name: 'Imported One' },
      { name: 'imp2', windows_account: 'CORP\\imp2', enabled: false },
      { name: 'imp3', password: PW },
    ]);
    await page.setInputFiles('#users-import-file', { name: 'good.json', mimeType: 'application/json', buffer: Buffer.from(good) });
    await page.click('#users-import-submit');
    await waitText(page, '#users-import-status', /^Imported 3 users\.$/);
    assert.equal(await page.isHidden('#users-import-errors'), true);
    await page.click('#users-import-close');
    await waitText(page, '#users-notice', /^Imported 3 users\.$/);
    await waitText(page, '#users-status', /^124 users\.$/);
    assert.equal((await api('GET', '/api/v1/users/imp2')).json.enabled, false);
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'users-import');
  });

  test('an import answered 202 with a job: "Import running…" until the job is done', async () => {
    let polls = 0;
    await page.route('**/api/v1/users/import', (r) => r.fulfill({
      status: 202, contentType: 'application/json',
      headers: { Location: '/api/v1/jobs/imp-7' }, body: JSON.stringify({ job: '/api/v1/jobs/imp-7', state: 'queued' }),
    }));
    await page.route('**/api/v1/jobs/imp-7', (r) => {
      polls++;
      const doc = polls < 3 ? { id: 'imp-7', state: 'running' } : { id: 'imp-7', state: 'done', imported: 5 };
      return r.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(doc) });
    });
    try {
      await page.click('#users-import');
      await page.setInputFiles('#users-import-file', { name: 'later.csv', mimeType: 'text/csv', buffer: Buffer.from('name\nlate1\n') });
      await page.click('#users-import-submit');
      await waitText(page, '#users-import-status', /^Import running…$/);
      await waitText(page, '#users-import-status', /^Imported 5 users\.$/);
      assert.ok(polls >= 3);
      await page.click('#users-import-close');
    } finally {
      await page.unroute('**/api/v1/users/import');
      await page.unroute('**/api/v1/jobs/imp-7');
    }
  });

  test('a big import with passwords runs as the server\'s job, with its progress shown', async () => {
    // 60 rows with passwords: more than the server hashes while the request
    // waits, so it answers 202 and the page follows the real job.
    const rows = Array.from({ length: 60 }, (_, i) => ({ name: `bulk${String(i).padStart(2, '0')}`, password: PW }));
    await page.click('#users-import');
    await page.setInputFiles('#users-import-file', { name: 'bulk.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(rows)) });
    await page.click('#users-import-submit');
    await page.locator('#users-import-progress:not([hidden])').waitFor({ timeout: 30000 });
    assert.equal(await page.getAttribute('#users-import-progress', 'max'), '60');
    assert.match(await text(page, '#users-import-progress-text'), /^\d+ of 60 rows checked and hashed$/);
    await waitText(page, '#users-import-status', /^Imported 60 users\.$/, 120000);
    assert.equal(await page.isHidden('#users-import-progress'), true);
    await page.click('#users-import-close');
    await waitText(page, '#users-status', /^184 users\.$/);
    const login = await srv.api('POST', '/client/v1/login', { body: { login: `bulk59@${DOMAIN}`, password: PW } });
    assert.equal(login.status, 200, 'the imported password works');
  });

  test('details: the devices and client sessions; Sign out everywhere ends them', async () => {
    const desktop = await clientLogin(srv, `alice@${DOMAIN}`, PW);
    const phone = await clientLogin(srv, `alice@${DOMAIN}`, PW, { id: 'phone-1', platform: 'ios' });
    assert.equal((await srv.api('GET', '/client/v1/me', { token: desktop })).status, 200);
    await page.fill('#users-search', 'alice');
    await waitText(page, '#users-status', /^1 user matches “alice”\.$/);
    await row(page, 'alice').locator('button', { hasText: 'Details' }).click();
    await page.locator('#user-sessions-table').waitFor();
    assert.match(await text(page, '#user-detail-title'), /Alice Example/);
    assert.match(await text(page, '#user-detail-facts'), /alice@users\.example/);
    const devices = await text(page, '#user-devices-table');
    assert.match(devices, /phone-1/);
    assert.match(devices, /ios/);
    const sessions = page.locator('#user-sessions-table tbody tr');
    assert.equal(await sessions.count(), 2);
    assert.match(await text(page, '#user-sessions-table'), /Desktop or web[\s\S]*phone-1|phone-1[\s\S]*Desktop or web/);
    await shot(page, 'user-details');
    await page.click('#user-signout');
    await waitText(page, '#user-detail-status', /^alice was signed out: 2 sessions ended\.$/);
    await page.locator('#user-sessions-none').waitFor();
    assert.equal((await srv.api('GET', '/client/v1/me', { token: desktop })).status, 401);
    assert.equal((await srv.api('GET', '/client/v1/me', { token: phone })).status, 401);
    // The device stays registered; its session is gone.
    assert.match(await text(page, '#user-devices-table'), /phone-1/);
    await page.keyboard.press('Escape');
    assert.equal(await page.isHidden('#user-detail-dialog'), true);
    assert.deepEqual(browser.errors, []);
  });

  test('German, and a phone width: cards without horizontal scrolling or words broken', async () => {
    await page.fill('#users-search', '');
    await waitText(page, '#users-status', /^184 users\.$/);
    // Away and back: the page opens without the last action's message.
    await page.click('#nav-status');
    await page.click('#nav-users');
    await waitText(page, '#users-status', /^184 users\.$/);
    assert.equal(await text(page, '#users-notice'), '');
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, 'users');
    await page.selectOption('#lang-select', 'de');
    await waitText(page, '#users-heading', /^Benutzer$/);
    assert.equal(await text(page, '#nav-users'), 'Benutzer');
    assert.equal(await text(page, '#users-status'), '184 Benutzer.');
    assert.equal(await text(page, '#users-range'), 'Benutzer 1–50 von 184');
    assert.match(await row(page, 'alice').innerText(), /Aktiviert/);
    await row(page, 'alice').locator('button', { hasText: 'Bearbeiten' }).click();
    assert.equal(await text(page, '#user-dialog-title'), 'alice bearbeiten');
    await page.keyboard.press('Escape');
    await page.click('#users-import');
    await page.setInputFiles('#users-import-file', { name: 'x.csv', mimeType: 'text/csv', buffer: Buffer.from('name\nBAD\n') });
    await page.click('#users-import-submit');
    await waitText(page, '#users-import-errors', /^Zeile 1 \(Dateizeile 2\)/);
    assert.match(await text(page, '#users-import-status'), /^Nichts wurde importiert: 1 Zeile ist fehlerhaft/);
    await page.click('#users-import-close');

    await page.setViewportSize({ width: 375, height: 800 });
    await noHorizontalScroll(page, 'users, German, 375 px');
    // Each card: the labels visible, a name, login and state on one line each.
    const broken = await page.evaluate(() => {
      const bad = [];
      for (const el of document.querySelectorAll('#users-table .user-name, #users-table .user-login, #users-table .state, #users-table button')) {
        const range = document.createRange();
        range.selectNodeContents(el);
        const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
        if (lines.size > 1) bad.push(el.textContent);
      }
      return bad;
    });
    assert.deepEqual(broken, [], 'words broken across lines');
    const before = await page.evaluate(() => getComputedStyle(document.querySelector('#users-table td.col-name'), '::before').content);
    assert.equal(before, '"Name"');
    await page.evaluate(() => document.getElementById('users-status').scrollIntoView({ block: 'start' }));
    await shot(page, 'phone-users');
    await row(page, 'alice').locator('button', { hasText: 'Details' }).click();
    await page.locator('#user-devices-table').waitFor();
    assert.equal(await text(page, '#user-signout'), 'Überall abmelden');
    const d = await page.evaluate(() => { const e = document.getElementById('user-detail-dialog'); return { s: e.scrollWidth, c: e.clientWidth }; });
    assert.ok(d.s <= d.c, `the details dialog is ${d.s} px wide in ${d.c} px`);
    await page.keyboard.press('Escape');
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.selectOption('#lang-select', 'en');
    assert.deepEqual(browser.errors, []);
  });
});
