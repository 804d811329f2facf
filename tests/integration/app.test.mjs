// The web client at /app/, end to end: a real atriumd, Debian's chromium
// driven by playwright-core, two users in two browsers. Set
// ATRIUM_SCREENSHOTS=docs/screenshots to (re)write app-chat-1280.png,
// app-chat-375.png and app-de.png.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { REPO, freePort, sleep, startServer, waitExit } from './harness.mjs';
import { WAIT_MS, launchBrowser } from './browser.mjs';

const APP_DIR = path.join(REPO, 'web', 'app');
const SHOTS = process.env.ATRIUM_SCREENSHOTS ? path.resolve(REPO, process.env.ATRIUM_SCREENSHOTS) : null;

async function shot(page, name) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

function walk(dir) {
  // common/ is a link to web/common/, the files both pages share: followed.
  return fs.readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return fs.statSync(p).isDirectory() ? walk(p) : [p];
  });
}

const USERS = {
  alice: { password: 'alice-pass-1234', display_name: 'Alice Liddell' },
  bob: { password: 'bob-pass-1234', display_name: 'Bob Builder' },
  carol: { password: 'carol-pass-1234', display_name: 'Carol Danvers' },
  dave: { password: 'dave-pass-1234', display_name: 'Dave Lister' },
};

/** Creates the users; returns {name: im_address}. */
async function createUsers(server) {
  const token = await server.login();
  const addresses = {};
  for (const [name, u] of Object.entries(USERS)) {
    const r = await server.api('POST', '/api/v1/users', { token, body: { name, password: u.password, display_name: u.display_name } });
    assert.equal(r.status, 201, r.text);
    addresses[name] = r.json.im_address;
  }
  return { token, addresses };
}

/** A client token for a user, through the REST login. */
async function clientToken(server, name) {
  const r = await server.api('POST', '/client/v1/login', { body: { login: name, password: USERS[name].password } });
  assert.equal(r.status, 200, r.text);
  return r.json.token;
}

/** Opens /app/, logs in through the form and waits for the connection. */
async function logIn(page, server, name, { password = USERS[name].password } = {}) {
  await page.goto(`${server.url}/app/`);
  await page.locator('#login-user').fill(name);
  await page.locator('#login-password').fill(password);
  await page.locator('#login-submit').click();
  await page.locator('#conn[data-state="open"]').waitFor();
}

const row = (address) => `#contact-list li[data-address="${address}"]`;
const chatLink = (address) => `${row(address)} a.contact-open`;

/** Keeps pressing Tab until an element matching selector has the focus (bounded). */
async function tabTo(page, selector, max = 80) {
  for (let i = 0; i < max; i++) {
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return;
    await page.keyboard.press('Tab');
  }
  assert.fail(`${selector} not reached with ${max} Tab presses`);
}

async function noHorizontalScroll(page, what) {
  const m = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
    body: document.body.scrollWidth,
  }));
  assert.ok(m.scroll <= m.client && m.body <= m.client, `${what}: page is ${Math.max(m.scroll, m.body)} px wide in a ${m.client} px viewport`);
}

/** The state (pending, sent, delivered, read, failed) of the outgoing message with this text. */
function outgoing(page, text) {
  return page.locator('#messages li.msg.out').filter({ has: page.locator('p.text', { hasText: exactly(text) }) });
}

/** The incoming message with exactly this text. */
function incoming(page, text) {
  return page.locator('#messages li.msg.in').filter({ has: page.locator('p.text', { hasText: exactly(text) }) });
}

/** A pattern for exactly this text (any whitespace where it has some). */
function exactly(text) {
  const esc = text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\s+/g, '\\s+');
  return new RegExp(`^${esc}$`);
}

// ---- without a browser ---------------------------------------------------------

describe('web client: files served by atriumd', () => {
  let server;
  before(async () => { server = await startServer(); });
  after(async () => { await server?.stop(); });

  test('every file under web/app/ is compiled in, with its type and the security headers', async () => {
    const files = walk(APP_DIR).map((f) => path.relative(APP_DIR, f).split(path.sep).join('/'));
    assert.ok(files.includes('index.html'));
    const types = { html: /^text\/html/, js: /^text\/javascript/, css: /^text\/css/, svg: /^image\/svg\+xml/ };
    for (const f of files) {
      const r = await server.api('GET', `/app/${f}`);
      assert.equal(r.status, 200, `/app/${f} is not served: add it to web/meson.build`);
      assert.match(r.headers.get('content-type') ?? '', types[f.split('.').pop()] ?? /./, f);
      assert.equal(r.text, fs.readFileSync(path.join(APP_DIR, f), 'utf8'), `${f}: stale copy`);
      assert.equal(r.headers.get('content-security-policy'), "default-src 'self'", f);
      assert.equal(r.headers.get('x-frame-options'), 'DENY', f);
    }
    const index = await server.api('GET', '/app/');
    assert.equal(index.status, 200);
    assert.equal(index.text, fs.readFileSync(path.join(APP_DIR, 'index.html'), 'utf8'));
    // No inline script or style, nothing from elsewhere: the CSP forbids them.
    assert.doesNotMatch(index.text, /<script(?![^>]*\bsrc=)[^>]*>|<style|\sstyle=|\son\w+=/i);
    for (const f of files.filter((x) => /\.(html|css|js)$/.test(x))) {
      const text = fs.readFileSync(path.join(APP_DIR, f), 'utf8');
      assert.doesNotMatch(text, /(src|href)=["']?(https?:)?\/\//i, `${f} loads something from another site`);
      assert.doesNotMatch(text, /\.innerHTML\s*=|insertAdjacentHTML|document\.write/, `${f} builds markup from strings`);
    }
  });

  test('/app without the slash leads to /app/', async () => {
    const r = await server.api('GET', '/app');
    assert.ok([301, 302, 308].includes(r.status), `HTTP ${r.status}`);
    assert.equal(new URL(r.headers.get('location'), `${server.url}/app`).pathname, '/app/');
    assert.equal(new URL(r.headers.get('location'), 'https://proxy.example/atrium/app').pathname, '/atrium/app/');
  });

  test('the client model: ids compare as numbers, marks cover earlier messages, unread follows reads', async () => {
    const { cmpId, createStore } = await import(path.join(APP_DIR, 'js', 'store.js'));
    assert.ok(cmpId('999', '1000') < 0 && cmpId('1000', '999') > 0 && cmpId('0042', '42') === 0);
    const s = createStore();
    s.setMe('alice@x.example');
    const msg = (id, from, to) => ({ message_id: id, from, to, text: `m${id}`, time: '2026-12-01T10:00:00Z' });
    s.chat(msg('999', 'bob@x.example', 'alice@x.example'));
    s.chat(msg('1000', 'bob@x.example', 'alice@x.example'));
    assert.equal(s.unread('bob@x.example'), 2);
    assert.equal(s.newestIncoming('bob@x.example').message_id, '1000');
    const p1 = s.addPending('bob@x.example', 'first');
    const p2 = s.addPending('bob@x.example', 'second');
    assert.deepEqual(s.messages('bob@x.example').map((m) => m.text), ['m999', 'm1000', 'first', 'second']);
    s.confirm('bob@x.example', p2, { message_id: '1002', time: '2026-12-01T10:00:02Z' });
    s.confirm('bob@x.example', p1, { message_id: '1001', time: '2026-12-01T10:00:01Z' });
    assert.deepEqual(s.messages('bob@x.example').map((m) => m.text), ['m999', 'm1000', 'first', 'second']);
    s.delivered({ message_id: '1001', by: 'bob@x.example' });
    assert.deepEqual([p1.state, p2.state], ['delivered', 'sent']);
    s.read({ message_id: '1002', by: 'bob@x.example' });
    assert.deepEqual([p1.state, p2.state], ['read', 'read']);
    // Read on another device of this user: the unread count follows.
    s.read({ message_id: '999', by: 'alice@x.example' });
    assert.equal(s.unread('bob@x.example'), 1);
    s.read({ message_id: '1000', by: 'alice@x.example' });
    assert.equal(s.unread('bob@x.example'), 0);
    // History that brings a message before its "ok" leaves one copy.
    const p3 = s.addPending('bob@x.example', 'third');
    s.history('bob@x.example', [{ ...msg('1003', 'alice@x.example', 'bob@x.example'), text: 'third', delivered: true, read: false }], { limit: 50 });
    s.confirm('bob@x.example', p3, { message_id: '1003' });
    const thirds = s.messages('bob@x.example').filter((m) => m.text === 'third');
    assert.equal(thirds.length, 1);
    assert.equal(thirds[0].state, 'delivered');
  });

  test('German texts: every UI text has one', async () => {
    const de = await import(path.join(APP_DIR, 'i18n', 'de.js'));
    const { englishUi } = await import(path.join(APP_DIR, 'js', 'i18n.js'));
    const missing = Object.keys(englishUi).filter((k) => !de.ui[k]);
    assert.deepEqual(missing, [], `add German texts to web/app/i18n/de.js for: ${missing.join(', ')}`);
    const stale = Object.keys(de.ui).filter((k) => !(k in englishUi));
    assert.deepEqual(stale, [], 'German texts for keys that no longer exist');
  });
});

// ---- in chromium ------------------------------------------------------------------

describe('web client in chromium', () => {
  let server, admin, addr;
  let aliceBrowser, bobBrowser;
  let alice, bob;

  before(async () => {
    server = await startServer();
    ({ token: admin, addresses: addr } = await createUsers(server));
    // alice and bob keep each other as contacts (the search test adds carol).
    for (const [who, other] of [['alice', 'bob'], ['bob', 'alice']]) {
      const token = await clientToken(server, who);
      const r = await server.api('PUT', `/client/v1/contacts/${encodeURIComponent(addr[other])}`, { token });
      assert.equal(r.status, 204, r.text);
    }
    aliceBrowser = await launchBrowser();
    bobBrowser = await launchBrowser();
    alice = await aliceBrowser.page();
    bob = await bobBrowser.page();
  });

  after(async () => {
    await aliceBrowser?.close();
    await bobBrowser?.close();
    const errors = [...(aliceBrowser?.errors ?? []), ...(bobBrowser?.errors ?? [])];
    await server?.stop();
    assert.deepEqual(errors, [], 'no script errors in the pages');
  });

  test('login: a wrong password is refused with the server’s sentence; the right one connects', async () => {
    await alice.goto(`${server.url}/app/`);
    await alice.locator('#login-user').waitFor();
    assert.equal(await alice.evaluate(() => document.activeElement?.id), 'login-user', 'the login name has the focus');
    await alice.locator('#login-user').fill('alice');
    await alice.locator('#login-password').fill('not-the-password');
    await alice.locator('#login-submit').click();
    const error = alice.locator('#login-error');
    await error.waitFor();
    assert.match(await error.textContent(), /^Login failed: .*(wrong|password)/i);
    assert.equal(await alice.locator('#login-password').isVisible(), true, 'the form stays');
    assert.equal(await alice.locator('#sidebar').isVisible(), false);

    // Automatic login: this server has no keytab; its sentence is shown, the form stays.
    await alice.locator('#login-auto').click();
    await alice.locator('#login-error', { hasText: 'Automatic login failed' }).waitFor();
    assert.match(await error.textContent(), /keytab|Kerberos|automatic/i);
    assert.equal(await alice.locator('#login-password').isVisible(), true);

    await logIn(alice, server, 'alice');
    await alice.locator(chatLink(addr.bob)).waitFor();
    assert.match(await alice.locator('#who').textContent(), new RegExp(addr.alice.replace(/\./g, '\\.')));
    // The token lives in sessionStorage, never in localStorage.
    const storage = await alice.evaluate(() => ({
      session: Object.values(sessionStorage).join(' '),
      local: Object.values(localStorage).join(' '),
    }));
    assert.match(storage.session, /"token":"[^"]+"/);
    assert.doesNotMatch(storage.local, /token/);
    // A reload keeps the login (same tab) and connects again.
    await alice.reload();
    await alice.locator('#conn[data-state="open"]').waitFor();
    await alice.locator(chatLink(addr.bob)).waitFor();
  });

  test('alice and bob chat both ways; delivered ✓ and read ✓✓ marks appear; typing is shown', async () => {
    await logIn(bob, server, 'bob');
    await bob.locator(chatLink(addr.alice)).waitFor();

    await alice.locator(chatLink(addr.bob)).click();
    await alice.locator('#composer:focus').waitFor();
    assert.equal(await alice.locator('#chat-title').textContent(), 'Bob Builder');
    await alice.locator('#composer').fill('Hello Bob, lunch at noon?');
    await alice.locator('#send').click();
    const first = outgoing(alice, 'Hello Bob, lunch at noon?');
    // bob's client has it (chat.received): delivered, but not read while his chat is closed.
    await first.and(alice.locator('[data-state="delivered"]')).waitFor();
    assert.equal(await first.locator('.mark').textContent(), '✓');
    await bob.locator(`${row(addr.alice)}[data-unread="1"]`).waitFor();
    assert.equal(await bob.locator(`${row(addr.alice)} .badge`).textContent(), '1');
    assert.match(await bob.title(), /^\(1\) /);

    // bob opens the conversation: he reads it, alice sees ✓✓.
    await bob.locator(chatLink(addr.alice)).click();
    await incoming(bob, 'Hello Bob, lunch at noon?').waitFor();
    await first.and(alice.locator('[data-state="read"]')).waitFor();
    assert.equal(await first.locator('.mark').textContent(), '✓✓');
    await bob.locator(`${row(addr.alice)}[data-unread="0"]`).waitFor();

    // bob types: alice sees it; then he answers and alice (chat open) reads it at once.
    await bob.locator('#composer').focus();
    await bob.keyboard.type('Sure', { delay: 20 });
    await alice.locator('#typing', { hasText: 'Bob Builder is typing' }).waitFor();
    await bob.keyboard.type(', see you there!');
    await bob.keyboard.press('Enter');
    await incoming(alice, 'Sure, see you there!').waitFor();
    assert.equal(await alice.locator('#typing').textContent(), '', 'the message ends the typing indicator');
    await outgoing(bob, 'Sure, see you there!').and(bob.locator('[data-state="read"]')).waitFor();
  });

  test('bob’s presence change (busy + note) shows at alice’s within 2 s', async (t) => {
    await bob.locator('#my-note').fill('in a meeting');
    await bob.locator('#my-note').press('Enter');
    const t0 = Date.now();
    await bob.locator('#my-state').selectOption('busy');
    await alice.locator(`${row(addr.bob)}[data-state="busy"]`).waitFor({ timeout: 2000 });
    await alice.locator(`${row(addr.bob)} .note`, { hasText: 'in a meeting' }).waitFor({ timeout: 2000 });
    const ms = Date.now() - t0;
    assert.ok(ms < 2000, `busy + note took ${ms} ms to arrive`);
    t.diagnostic(`busy + note shown at alice's ${ms} ms after bob chose busy`);
    // The open conversation's header follows too.
    await alice.locator('#chat-presence', { hasText: 'Busy' }).waitFor({ timeout: 2000 });
    await bob.locator('#my-state').selectOption('available');
    await alice.locator(`${row(addr.bob)}[data-state="available"]`).waitFor({ timeout: 2000 });
  });

  test('messages sent while bob is logged out arrive, in order, when he logs in', async () => {
    const stored = await bob.evaluate(() => Object.values(sessionStorage).join(' '));
    const oldToken = /"token":"([^"]+)"/.exec(stored)?.[1];
    assert.ok(oldToken, 'a token was kept for the session');
    await bob.locator('#logout-button').click();
    await bob.locator('#login-notice', { hasText: 'You have logged out.' }).waitFor();
    assert.equal(await bob.evaluate(() => sessionStorage.length), 0, 'the token is forgotten');
    assert.equal((await server.api('GET', '/client/v1/me', { token: oldToken })).status, 401, 'and revoked on the server');
    await alice.locator(`${row(addr.bob)}[data-state="offline"]`).waitFor();

    const texts = ['The draft is in the shared folder.', 'Can you review it today?', 'Thanks!'];
    for (const text of texts) {
      await alice.locator('#composer').fill(text);
      await alice.locator('#composer').press('Enter');
      await outgoing(alice, text).and(alice.locator('[data-state="sent"]')).waitFor();
    }
    assert.equal(await alice.locator('#messages li.msg.out[data-state="delivered"]').count(), 0);

    await logIn(bob, server, 'bob');
    // The three arrive as offline messages (unread, not from history), and are delivered.
    await bob.locator(`${row(addr.alice)}[data-unread="3"]`).waitFor();
    for (const text of texts) await outgoing(alice, text).and(alice.locator('[data-state="delivered"]')).waitFor();
    await bob.locator(chatLink(addr.alice)).click();
    await incoming(bob, 'Thanks!').waitFor();
    const shown = await bob.locator('#messages li.msg.in p.text').allTextContents();
    assert.deepEqual(shown.slice(-3), texts, 'in the order sent');
    const ids = await bob.locator('#messages li.msg').evaluateAll((lis) => lis.map((li) => li.dataset.id));
    const sorted = [...ids].sort((a, b) => (a.length - b.length) || (a < b ? -1 : a > b ? 1 : 0));
    assert.deepEqual(ids, sorted, 'messages in message_id order');
    for (const text of texts) await outgoing(alice, text).and(alice.locator('[data-state="read"]')).waitFor();
    await incoming(bob, 'Hello Bob, lunch at noon?').waitFor();
    await bob.locator('#composer').fill('Looks good, I will comment by 3 pm.');
    await bob.locator('#composer').press('Enter');
    await incoming(alice, 'Looks good, I will comment by 3 pm.').waitFor();
    await alice.locator('#composer').fill('Great');
    await shot(alice, 'app-chat-1280');
    await alice.locator('#composer').fill('');
  });

  test('every shown text has a contrast of at least 4.5:1 against its background', async () => {
    await alice.goto(`${server.url}/app/#/chat/${encodeURIComponent(addr.bob)}`);
    await alice.locator('#conn[data-state="open"]').waitFor();
    await incoming(alice, 'Looks good, I will comment by 3 pm.').waitFor();
    const low = await alice.evaluate(() => {
      const rgb = (c) => (c.match(/[\d.]+/g) ?? []).map(Number);
      const lum = ([r, g, b]) => {
        const f = (v) => { const x = v / 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; };
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
      };
      const background = (el) => {
        for (let e = el; e; e = e.parentElement) {
          const c = rgb(getComputedStyle(e).backgroundColor);
          if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
        }
        return [255, 255, 255];
      };
      const out = [];
      let checked = 0;
      for (const el of document.querySelectorAll('body *')) {
        if (!el.checkVisibility?.() || el.closest('.visually-hidden') || el.disabled) continue;
        if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
        checked++;
        const fg = rgb(getComputedStyle(el).color).slice(0, 3);
        const a = lum(fg), b = lum(background(el));
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        if (ratio < 4.5) out.push(`${el.tagName}.${el.className} "${el.textContent.trim().slice(0, 30)}": ${ratio.toFixed(2)}`);
      }
      return { out, checked };
    });
    assert.ok(low.checked > 30, `only ${low.checked} texts checked`);
    assert.deepEqual(low.out, [], 'texts below 4.5:1');
  });

  test('at 375 px: contacts, then the chat, without horizontal scrolling', async () => {
    await alice.setViewportSize({ width: 375, height: 740 });
    try {
      await alice.goto(`${server.url}/app/#/`);
      await alice.locator('#conn[data-state="open"]').waitFor();
      await alice.locator(chatLink(addr.bob)).waitFor();
      assert.equal(await alice.locator('#view-chat').isVisible(), false, 'the list fills the screen');
      await noHorizontalScroll(alice, 'contacts at 375 px');
      await alice.locator(chatLink(addr.bob)).click();
      await incoming(alice, 'Sure, see you there!').waitFor();
      assert.equal(await alice.locator('#sidebar').isVisible(), false, 'the chat fills the screen');
      await noHorizontalScroll(alice, 'chat at 375 px');
      const send = await alice.locator('#send').boundingBox();
      assert.ok(send && send.x + send.width <= 375, 'the send button is on screen');
      await shot(alice, 'app-chat-375');
      await alice.locator('#chat-back').click();
      await alice.locator(chatLink(addr.bob)).waitFor();
      await alice.locator('#nav-journal').click();
      await alice.locator('#journal-list li.entry').first().waitFor();
      await noHorizontalScroll(alice, 'journal at 375 px');
    } finally {
      await alice.setViewportSize({ width: 1280, height: 900 });
    }
  });

  test('German UI: the texts are translated, nothing English is left in the chrome', async () => {
    const de = await import(path.join(APP_DIR, 'i18n', 'de.js'));
    const { englishUi } = await import(path.join(APP_DIR, 'js', 'i18n.js'));
    const b = await launchBrowser({ locale: 'de-DE' });
    try {
      const page = await b.page();
      await page.goto(`${server.url}/app/`);
      await page.locator('#login-heading', { hasText: 'Anmelden' }).waitFor();
      assert.equal(await page.evaluate(() => document.documentElement.lang), 'de');
      assert.equal(await page.locator('label[for="login-password"]').textContent(), 'Passwort');
      await logIn(page, server, 'alice');
      await page.locator(chatLink(addr.bob)).click();
      await incoming(page, 'Sure, see you there!').waitFor();
      await page.locator('#conn', { hasText: 'Verbunden' }).waitFor();
      // Every shown text and label of the page against every English UI text
      // that differs in German (placeholders match anything).
      const templates = Object.entries(englishUi).filter(([k, v]) => de.ui[k] !== v).map(([, v]) => v);
      const english = await page.evaluate((tpls) => {
        const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        const res = tpls.map((s) => new RegExp(`^${s.split(/\{\w+\}/).map(esc).join('.+')}$`));
        const shown = (el) => !el.closest('[hidden]') && getComputedStyle(el).display !== 'none';
        const found = [];
        const check = (text, where) => {
          const s = text.trim();
          if (s && res.some((re) => re.test(s))) found.push(`${where}: ${s}`);
        };
        const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        for (let n = walker.nextNode(); n; n = walker.nextNode()) {
          if (n.parentElement && (shown(n.parentElement) || n.parentElement.tagName === 'OPTION')) check(n.textContent, n.parentElement.tagName);
        }
        for (const el of document.querySelectorAll('[aria-label], [placeholder], [title]')) {
          if (!shown(el)) continue;
          for (const a of ['aria-label', 'placeholder', 'title']) if (el.hasAttribute(a)) check(el.getAttribute(a), `@${a}`);
        }
        check(document.title, 'title');
        return found;
      }, templates);
      assert.deepEqual(english, [], 'English texts left in the German UI');
      assert.equal(await page.locator('#send').textContent(), 'Senden');
      assert.equal(await page.locator('#logout-button').textContent(), 'Abmelden');
      assert.equal(await page.locator(`${row(addr.bob)} .state`).textContent(), 'Verfügbar');
      await shot(page, 'app-de');
      // The switch back to English works in place.
      await page.locator('#lang-select').selectOption('en');
      await page.locator('#send', { hasText: 'Send' }).waitFor();
      assert.equal(await page.evaluate(() => document.documentElement.lang), 'en');
      assert.deepEqual(b.errors, []);
    } finally {
      await b.close();
    }
  });

  test('contact search and add; remove with undo', async () => {
    await alice.locator('#search-input').fill('carol');
    const result = alice.locator(`#search-results li[data-address="${addr.carol}"]`);
    await result.waitFor();
    assert.match(await result.textContent(), /Carol Danvers/);
    await result.locator('button.result-add').click();
    await alice.locator(chatLink(addr.carol)).waitFor();
    await result.locator('.in-list').waitFor();
    // The server keeps it: a reload shows it again.
    await alice.reload();
    await alice.locator('#conn[data-state="open"]').waitFor();
    await alice.locator(chatLink(addr.carol)).waitFor();
    await alice.locator(`${row(addr.carol)}[data-state="offline"]`).waitFor();

    await alice.locator(`${row(addr.carol)} button.contact-remove`).click();
    await alice.locator(row(addr.carol)).waitFor({ state: 'detached' });
    await alice.locator('#contacts-undo:focus').waitFor();
    const token = await clientToken(server, 'alice');
    let r = await server.api('GET', '/client/v1/contacts', { token });
    assert.ok(!r.json.contacts.some((c) => c.address === addr.carol), 'removed on the server');
    await alice.locator('#contacts-undo').click();
    await alice.locator(chatLink(addr.carol)).waitFor();
    r = await server.api('GET', '/client/v1/contacts', { token });
    assert.ok(r.json.contacts.some((c) => c.address === addr.carol), 'added again on the server');
  });

  test('after 10 minutes without input the presence turns away, and back at the next input', async () => {
    const b = await launchBrowser();
    try {
      const page = await b.page();
      await page.clock.install();
      await logIn(page, server, 'carol');
      await alice.locator(`${row(addr.carol)}[data-state="available"]`).waitFor();
      await page.clock.fastForward('09:00');
      await page.waitForTimeout(300);
      assert.equal(await alice.locator(row(addr.carol)).getAttribute('data-state'), 'available', 'not away before 10 minutes');
      await page.clock.fastForward('01:30');
      await alice.locator(`${row(addr.carol)}[data-state="away"]`).waitFor();
      await page.locator('#my-auto-away').waitFor();
      assert.equal(await page.locator('#my-state').inputValue(), 'away');
      await page.mouse.move(200, 300);
      await page.mouse.move(220, 320);
      await alice.locator(`${row(addr.carol)}[data-state="available"]`).waitFor();
      assert.equal(await page.locator('#my-auto-away').isVisible(), false);
      // A state the user chose is never changed by the idle rule.
      await page.locator('#my-state').selectOption('dnd');
      await alice.locator(`${row(addr.carol)}[data-state="dnd"]`).waitFor();
      await page.clock.fastForward('11:00');
      await page.waitForTimeout(300);
      assert.equal(await alice.locator(row(addr.carol)).getAttribute('data-state'), 'dnd');
      assert.deepEqual(b.errors, []);
    } finally {
      await b.close();
    }
    await alice.locator(`${row(addr.carol)}[data-state="offline"]`).waitFor();
  });

  test('keyboard only: Tab to a contact, Enter opens the chat, Enter sends, Shift+Enter is a new line', async () => {
    await alice.locator(chatLink(addr.bob)).click();
    await alice.locator('#chat-title', { hasText: 'Bob Builder' }).waitFor();
    await bob.goto(`${server.url}/app/#/`);
    await bob.locator('#conn[data-state="open"]').waitFor();
    await tabTo(bob, `a.contact-open[href="#/chat/${encodeURIComponent(addr.alice)}"]`);
    await bob.keyboard.press('Enter');
    await bob.locator('#composer:focus').waitFor();
    await bob.keyboard.type('typed with the keyboard');
    await bob.keyboard.press('Shift+Enter');
    await bob.keyboard.type('second line');
    await bob.keyboard.press('Enter');
    const msg = incoming(alice, 'typed with the keyboard\nsecond line');
    await msg.waitFor();
    assert.equal(await msg.locator('p.text').textContent(), 'typed with the keyboard\nsecond line');
    assert.equal(await bob.locator('#composer').inputValue(), '', 'the composer is empty again');
    assert.equal(await bob.evaluate(() => document.activeElement?.id), 'composer', 'the focus stays in the composer');
    // Text stays text: markup in a message is shown, not parsed.
    await bob.keyboard.type('<img src=x onerror="window.pwned=1"><b>bold</b>');
    await bob.keyboard.press('Enter');
    const markup = incoming(alice, '<img src=x onerror="window.pwned=1"><b>bold</b>');
    await markup.waitFor();
    assert.equal(await markup.locator('img, b').count(), 0);
    assert.equal(await alice.evaluate(() => window.pwned), undefined);
  });

  test('history pages back with “load earlier”', async () => {
    // 55 more messages from bob, sent through his composer (paced below the
    // server's limit of 30 per second and connection).
    const token = await clientToken(server, 'alice');
    const before = await server.api('GET', `/client/v1/messages?with=${encodeURIComponent(addr.bob)}&limit=200`, { token });
    assert.equal(before.status, 200, before.text);
    for (let i = 1; i <= 55; i++) {
      await bob.locator('#composer').fill(`numbered ${i}`);
      await bob.locator('#composer').press('Enter');
      await outgoing(bob, `numbered ${i}`).and(bob.locator('[data-state="sent"], [data-state="delivered"], [data-state="read"]')).waitFor();
      await bob.waitForTimeout(40);
    }
    // A fresh load of alice's conversation shows the newest 50 and a button for the rest.
    await alice.goto(`${server.url}/app/#/chat/${encodeURIComponent(addr.bob)}`);
    await alice.reload();
    await alice.locator('#conn[data-state="open"]').waitFor();
    await incoming(alice, 'numbered 55').waitFor();
    assert.equal(await alice.locator('#messages li.msg').count(), 50);
    await alice.locator('#chat-earlier').click();
    await outgoing(alice, 'Hello Bob, lunch at noon?').waitFor();
    const total = before.json.messages.length + 55;
    await alice.waitForFunction((n) => document.querySelectorAll('#messages li.msg').length === n, total, { timeout: WAIT_MS });
    assert.equal(await alice.locator('#chat-earlier').isVisible(), false, 'everything is loaded');
    await alice.locator('#chat-info', { hasText: 'beginning' }).waitFor();
  });

  test('the journal lists the chats with peer and time', async () => {
    await alice.locator('#nav-journal').click();
    const entry = alice.locator(`#journal-list li.entry[data-kind="chat"]`, { has: alice.locator(`a.peer[href="#/chat/${encodeURIComponent(addr.bob)}"]`) });
    await entry.first().waitFor();
    assert.match(await entry.first().textContent(), /Bob Builder/);
    assert.match(await entry.first().locator('time').getAttribute('datetime'), /^\d{4}-\d\d-\d\dT/);
    assert.match(await entry.first().textContent(), /\d+ messages?/);
    await alice.locator('#journal-heading:focus').waitFor();
    await entry.first().locator('a.peer').click();
    await alice.locator('#chat-title', { hasText: 'Bob Builder' }).waitFor();
  });

  test('an account disabled by the administrator is sent back to the login with the reason', async () => {
    const b = await launchBrowser();
    try {
      const page = await b.page();
      await logIn(page, server, 'dave');
      const r = await server.api('PATCH', '/api/v1/users/dave', { token: admin, body: { enabled: false } });
      assert.equal(r.status, 200, r.text);
      await page.locator('#login-notice', { hasText: 'disabled' }).waitFor();
      assert.equal(await page.locator('#sidebar').isVisible(), false);
      assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'the token is forgotten');
      assert.deepEqual(b.errors, []);

      // A message to a disabled user: the error frame's sentence beside it.
      await alice.goto(`${server.url}/app/#/chat/${encodeURIComponent(addr.dave)}`);
      await alice.locator('#conn[data-state="open"]').waitFor();
      await alice.locator('#composer').fill('Are you still there?');
      await alice.locator('#composer').press('Enter');
      const failed = outgoing(alice, 'Are you still there?');
      await failed.and(alice.locator('[data-state="failed"]')).waitFor();
      const sentence = await failed.locator('.msg-error-text').textContent();
      assert.match(sentence, /disabled/i, 'the server’s sentence');
      assert.equal(await failed.locator('.msg-error').getAttribute('role'), 'alert');
      await failed.locator('button.retry').waitFor();
    } finally {
      await b.close();
    }
  });
});

describe('web client: the server’s domain changes under a connected client', () => {
  let server, browser;
  after(async () => { await browser?.close(); await server?.stop(); });

  test('bye domain_changed: the client connects again with a fresh ticket and shows the new address', async () => {
    server = await startServer();
    const token = await server.login();
    const r = await server.api('POST', '/api/v1/users', { token, body: { name: 'alice', password: USERS.alice.password } });
    assert.equal(r.status, 201, r.text);
    const oldAddress = r.json.im_address;
    browser = await launchBrowser();
    const page = await browser.page();
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    await logIn(page, server, 'alice');
    await page.locator('#me', { hasText: oldAddress }).waitFor();
    const change = await server.api('POST', '/api/v1/domain/change', { token, body: { domain: 'renamed.example', dry_run: false } });
    assert.equal(change.status, 200, change.text);
    await page.locator('#me', { hasText: 'alice@renamed.example' }).waitFor({ timeout: 20000 });
    await page.locator('#conn[data-state="open"]').waitFor();
    assert.match(await page.locator('#who').textContent(), /alice@renamed\.example/);
    assert.equal(sockets.length, 2, `one WebSocket before and one after: ${sockets.join(', ')}`);
    const tickets = sockets.map((u) => new URL(u).searchParams.get('ticket'));
    assert.notEqual(tickets[0], tickets[1], 'a fresh ticket');
    assert.ok(sockets.every((u) => new URL(u).pathname === '/client/v1/ws'));
    assert.deepEqual(browser.errors, []);
  });
});

// ---- behind a reverse proxy at a path prefix -------------------------------------

const NGINX = process.env.NGINX || '/usr/sbin/nginx';

/** nginx on a free loopback port, passing /atrium/ to the server (WebSocket upgrades too). */
async function startPrefixProxy(upstreamPort) {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'atrium-nginx-'));
  const port = await freePort();
  await fsp.writeFile(path.join(dir, 'nginx.conf'), `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:${port};
    location /atrium/ {
      proxy_pass http://127.0.0.1:${upstreamPort}/;
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 120s;
    }
  }
}
`);
  const proc = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log')], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (proc.exitCode !== null) break;
    try { const r = await fetch(`${url}/atrium/healthz`); await r.arrayBuffer(); if (r.status === 200) break; } catch { /* not yet */ }
    await sleep(50);
  }
  return {
    url,
    async stop() {
      proc.kill('SIGTERM');
      if (await waitExit(proc, 5000) === null) { proc.kill('SIGKILL'); await waitExit(proc, 5000); }
      await fsp.rm(dir, { recursive: true, force: true });
    },
    log: () => fs.readFileSync(path.join(dir, 'error.log'), 'utf8'),
  };
}

describe('web client behind a reverse proxy at /atrium/', { skip: !fs.existsSync(NGINX) && `no ${NGINX}` }, () => {
  let server, proxy, browser;
  after(async () => { await browser?.close(); await proxy?.stop(); await server?.stop(); });

  test('API and WebSocket are found under the prefix; chat works through the proxy', async () => {
    server = await startServer();
    const { addresses } = await createUsers(server);
    proxy = await startPrefixProxy(server.port);
    const h = await fetch(`${proxy.url}/atrium/healthz`);
    assert.equal(h.status, 200, `nginx does not pass /atrium/: ${proxy.log()}`);
    const bobToken = await clientToken(server, 'bob');
    assert.equal((await server.api('PUT', `/client/v1/contacts/${encodeURIComponent(addresses.alice)}`, { token: bobToken })).status, 204);

    browser = await launchBrowser();
    const page = await browser.page();
    const requests = [];
    page.on('request', (r) => requests.push(r.url()));
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    await page.goto(`${proxy.url}/atrium/app/`);
    await page.locator('#login-user').fill('bob');
    await page.locator('#login-password').fill(USERS.bob.password);
    await page.locator('#login-submit').click();
    await page.locator('#conn[data-state="open"]').waitFor();
    assert.ok(sockets.length >= 1);
    assert.equal(new URL(sockets[0]).origin.replace(/^ws/, 'http'), proxy.url);
    assert.equal(new URL(sockets[0]).pathname, '/atrium/client/v1/ws');
    const api = requests.filter((u) => u.includes('/client/v1/'));
    assert.ok(api.length >= 3, api.join('\n'));
    for (const u of api) assert.ok(u.startsWith(`${proxy.url}/atrium/client/v1/`), `${u} is not under the prefix`);

    await page.locator(chatLink(addresses.alice)).click();
    await page.locator('#composer').fill('Through the proxy');
    await page.locator('#composer').press('Enter');
    await outgoing(page, 'Through the proxy').and(page.locator('[data-state="sent"]')).waitFor();
    const aliceToken = await clientToken(server, 'alice');
    const m = await server.api('GET', `/client/v1/messages?with=${encodeURIComponent(addresses.bob)}&limit=5`, { token: aliceToken });
    assert.equal(m.json?.messages?.[0]?.text, 'Through the proxy', m.text);
    assert.deepEqual(browser.errors, []);
  });
});
