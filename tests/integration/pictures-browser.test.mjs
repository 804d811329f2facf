// Profile pictures in Debian's chromium: a user uploads one in the web
// client's profile and sees it; another user sees it beside the name in
// the contacts and the chat header (and initials for a contact without
// one); a meeting guest sees the host's initials while the Users data
// source lacks Authenticated, and the picture once it holds it; the admin
// sets and removes a picture on the admin page's Users page.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { startServer } from './harness.mjs';
import { launchBrowser, loginUi } from './browser.mjs';
import { clientLogin } from './rt-client.mjs';
import { meetingConnect } from './meeting-client.mjs';

const FACE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'face.jpg');
const PW = 'picture-browser-1';
const USERS = { alice: 'Alice Liddell', bob: 'Bob Builder', carol: 'Carol Danvers' };

/** The colour at the middle of the avatar's canvas: the face's blue disc. */
const middle = (page, sel) => page.locator(sel).evaluate((c) => {
  const g = c.getContext('2d');
  return [...g.getImageData(c.width / 2, c.height / 2, 1, 1).data].slice(0, 3);
});

async function logIn(page, srv, name) {
  await page.goto(`${srv.url}/app/`);
  await page.locator('#login-user').fill(name);
  await page.locator('#login-password').fill(PW);
  await page.locator('#login-submit').click();
  await page.locator('#conn[data-state="open"]').waitFor();
}

describe('profile pictures in the browser', () => {
  let srv, admin, tok, addr;
  const browsers = [];
  const sockets = [];
  const browser = async () => { const b = await launchBrowser(); browsers.push(b); return b; };
  const setPerm = async (list) => {
    const r = await srv.api('PATCH', '/api/v1/settings', { token: admin, body: { 'directory.users_permissions': list } });
    assert.equal(r.status, 200, r.text);
  };

  before(async () => {
    srv = await startServer();
    admin = await srv.login();
    assert.equal((await srv.api('PATCH', '/api/v1/settings', { token: admin,
      body: { 'meeting.enabled': true, 'meeting.url': `${srv.url}/webmeeting/` } })).status, 200);
    const r = await srv.api('POST', '/api/v1/users/import', { token: admin,
      body: Object.entries(USERS).map(([name, display_name]) => ({ name, password: PW, display_name })) });
    assert.equal(r.status, 200, r.text);
    tok = {};
    addr = {};
    for (const n of Object.keys(USERS)) {
      tok[n] = await clientLogin(srv, n, PW);
      addr[n] = (await srv.api('GET', '/client/v1/me', { token: tok[n] })).json.im_address;
    }
    for (const c of ['alice', 'carol']) {
      const p = await srv.api('PUT', `/client/v1/contacts/${encodeURIComponent(addr[c])}`, { token: tok.bob });
      assert.ok(p.status === 200 || p.status === 201 || p.status === 204, p.text);
    }
  });
  after(async () => {
    for (const s of sockets) s.close();
    for (const b of browsers) await b.close();
    if (srv) await srv.stop();
  });

  test('upload in the profile; the picture shows there, in the contacts and in the chat header', async () => {
    const b = await browser();
    const page = await b.page();
    await logIn(page, srv, 'alice');
    await page.locator('#nav-profile').click();
    await page.locator('#profile-picture .avatar[data-picture="none"]').waitFor();
    assert.equal(await page.locator('#profile-picture .initials').textContent(), 'AL');
    assert.equal(await page.locator('#picture-remove').isHidden(), true);
    await page.locator('#picture-file').setInputFiles(FACE);
    await page.locator('#profile-status', { hasText: 'Your picture is saved.' }).waitFor();
    await page.locator('#profile-picture .avatar[data-picture="shown"] canvas').waitFor();
    const [r, g, bl] = await middle(page, '#profile-picture canvas');
    assert.ok(bl > 150 && r < 90, `the middle is the blue of the face: ${r},${g},${bl}`);
    assert.equal(await page.locator('#picture-remove').isVisible(), true);

    // A file the server refuses: its sentence is shown.
    await page.locator('#picture-file').setInputFiles({ name: 'x.png', mimeType: 'image/png', buffer: Buffer.from('not a picture') });
    await page.locator('#profile-status.error', { hasText: /neither a JPEG nor a PNG/ }).waitFor();

    // Bob sees Alice's picture beside her name, Carol's initials.
    const b2 = await browser();
    const bob = await b2.page();
    await logIn(bob, srv, 'bob');
    const row = (a) => `#contact-list li[data-address="${a}"]`;
    await bob.locator(`${row(addr.alice)} .avatar[data-picture="shown"] canvas`).waitFor();
    await bob.locator(`${row(addr.carol)} .avatar[data-picture="none"]`).waitFor();
    assert.equal(await bob.locator(`${row(addr.carol)} .avatar .initials`).textContent(), 'CD');
    await bob.locator(`${row(addr.alice)} a.contact-open`).click();
    await bob.locator('#chat-avatar .avatar[data-picture="shown"] canvas').waitFor();
    const c = await middle(bob, '#chat-avatar canvas');
    assert.ok(c[2] > 150 && c[0] < 90, `chat header: ${c}`);
    assert.deepEqual(b.errors, []);
    assert.deepEqual(b2.errors, []);
  });

  test('a meeting guest sees initials without Authenticated, the picture with it', async () => {
    await setPerm(['Users']);
    const m = (await srv.api('POST', '/client/v1/meetings', { token: tok.alice, body: { title: 'Faces' } })).json;
    const host = await meetingConnect(srv, m.id, { token: tok.alice });
    sockets.push(host);
    const b = await browser();
    const page = await b.page();
    await page.goto(`${srv.url}/webmeeting/?meeting=${m.id}`);
    await page.locator('input[name=name]').fill('Gail Guest');
    await page.locator('input[name=consent]').check();
    await page.locator('#register button').click();
    const lobby = await host.type('lobby', 10000, (f) => f.waiting.length === 1);
    host.send({ type: 'admit', participant: lobby.waiting[0].id });
    await page.locator('#meeting').waitFor();
    const hostRow = '#participants li[data-role=host]';
    await page.locator(`${hostRow} .initials`).waitFor();
    assert.equal(await page.locator(`${hostRow} .initials`).textContent(), 'AL');
    assert.equal(await page.locator(`${hostRow} img`).count(), 0);
    assert.equal(await page.locator('#participants li[data-role=guest] .initials').textContent(), 'GG');

    // With Authenticated, the next participant list brings the picture.
    await setPerm(['Users', 'Authenticated']);
    const bob = await meetingConnect(srv, m.id, { token: tok.bob });
    sockets.push(bob);
    await page.locator('#participants li[data-role=user]').waitFor();
    await page.locator(`${hostRow} img.picture`).waitFor();
    await page.waitForFunction((s) => document.querySelector(s)?.complete && document.querySelector(s).naturalWidth > 0,
      `${hostRow} img.picture`);
    assert.equal(await page.locator(`${hostRow} img.picture`).evaluate((i) => i.naturalWidth), 240);

    // Taken away again: the next list has initials only.
    await setPerm(['Users']);
    bob.close();
    await page.locator('#participants li[data-role=user]').waitFor({ state: 'detached' });
    await page.locator(`${hostRow} .initials`).waitFor();
    assert.equal(await page.locator('#participants img').count(), 0);
    assert.deepEqual(b.errors, []);
  });

  test('the admin page\'s Users page: find a user, upload a picture, remove it', async () => {
    const b = await browser();
    const page = await b.page();
    await loginUi(page, srv);
    await page.locator('#nav-users').click();
    await page.locator('#users-table tr[data-name="alice"]').waitFor();
    await page.locator('#users-search').fill('carol');
    await page.locator('#users-table tr[data-name="alice"]').waitFor({ state: 'detached' });
    const carol = '#users-table tr[data-name="carol"]';
    assert.equal(await page.locator(`${carol} .avatar`).textContent(), 'CD');
    await page.locator('#picture-file-carol').setInputFiles(FACE);
    await page.locator('#users-notice', { hasText: 'The picture of carol is saved.' }).waitFor();
    await page.waitForFunction((s) => document.querySelector(s)?.complete && document.querySelector(s).naturalWidth > 0,
      `${carol} img.avatar`);
    assert.equal(await page.locator(`${carol} img.avatar`).evaluate((i) => i.naturalWidth), 240);
    const me = await srv.api('GET', '/client/v1/me', { token: tok.carol });
    assert.match(me.json.picture, /^[0-9a-f]{32}$/);
    await page.locator(`${carol} .picture-remove`).click();
    await page.locator('#users-notice', { hasText: 'The picture of carol is removed.' }).waitFor();
    assert.equal(await page.locator(`${carol} span.avatar`).textContent(), 'CD');
    assert.equal((await srv.api('GET', '/client/v1/me', { token: tok.carol })).json.picture, null);
    assert.deepEqual(b.errors, []);
  });
});
