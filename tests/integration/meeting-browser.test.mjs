// The web meeting in Debian's chromium: a guest opens the link, sees the
// not-encrypted banner, must accept the privacy policy, waits in the lobby
// and is admitted by the host; a host in the browser presents a canvas
// (canvas.captureStream(): headless getDisplayMedia gives only a test
// pattern) drawing scrolling text with frame numbers, and viewers in the
// browser paint the frames and get the lossless picture once it stops.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { WAIT_MS, launchBrowser } from './browser.mjs';
import { startServer } from './harness.mjs';
import { clientLogin } from './rt-client.mjs';
import { meetingConnect } from './meeting-client.mjs';

const PW = 'browser-meeting-1';

// In the page before its scripts: the shared "screen" is a canvas with
// scrolling text and the frame number; window.atriumStill stops it.
const CANVAS_SCREEN = () => {
  window.atriumDisplayMedia = async () => {
    const c = document.createElement('canvas');
    c.width = 640; c.height = 360;
    const g = c.getContext('2d');
    let n = 0;
    const draw = () => {
      if (!window.atriumStill) {
        // A long document scrolling 2 px a frame, and a frame counter that
        // stands in the corner.
        g.fillStyle = '#fff'; g.fillRect(0, 0, 640, 360);
        g.fillStyle = '#123'; g.font = '16px sans-serif';
        const top = n * 2, first = Math.floor(top / 18);
        for (let k = first; k < first + 22; k++) g.fillText(`Line ${k} of the scrolling document, always the same words`, 10, 20 + k * 18 - top);
        g.fillStyle = '#eee'; g.fillRect(520, 0, 120, 24);
        g.fillStyle = '#a00'; g.fillText(`frame ${n}`, 530, 18);
        n++;
      }
      requestAnimationFrame(draw);
    };
    draw();
    return c.captureStream(15);
  };
};

describe('web meeting in the browser', () => {
  let srv, admin, tok, browser;
  const open = [];

  before(async () => {
    srv = await startServer();
    admin = await srv.login();
    // The links point at the test server (the default names the machine's host name).
    assert.equal((await srv.api('PATCH', '/api/v1/settings', { token: admin,
      body: { 'meeting.enabled': true, 'meeting.url': `${srv.url}/webmeeting/` } })).status, 200);
    const r = await srv.api('POST', '/api/v1/users/import', { token: admin,
      body: ['alice', 'bob'].map((name) => ({ name, password: PW, display_name: name === 'alice' ? 'Alice Host' : 'Bob Viewer' })) });
    assert.equal(r.status, 200, r.text);
    tok = { alice: await clientLogin(srv, 'alice', PW), bob: await clientLogin(srv, 'bob', PW) };
    browser = await launchBrowser();
  });
  after(async () => {
    for (const c of open) c.close();
    await browser?.close();
    if (srv) await srv.stop();
  });

  test('a guest: banner, privacy consent, lobby, admitted by the host, chat', async () => {
    const m = (await srv.api('POST', '/client/v1/meetings', { token: tok.alice, body: { title: 'Browser lobby' } })).json;
    const host = await meetingConnect(srv, m.id, { token: tok.alice });
    open.push(host);
    const page = await browser.context.newPage();
    await page.goto(`${srv.url}/webmeeting/?meeting=${m.id}`);
    await page.locator('#unencrypted').waitFor();
    assert.match(await page.locator('#unencrypted').textContent(), /not encrypted/);
    assert.ok(await page.locator('.privacy').count() > 0, 'the privacy policy is on the page');
    await page.locator('input[name=name]').fill('Gail Guest');
    // Without the consent the browser's own check stops the form; the script
    // checks too when that is bypassed.
    await page.locator('#register').evaluate((f) => f.requestSubmit ? f.dispatchEvent(new Event('submit', { cancelable: true })) : null);
    await page.locator('#status.error').waitFor();
    await page.locator('input[name=consent]').check();
    await page.locator('#register button').click();
    await page.waitForFunction(() => document.body.dataset.state === 'lobby', null, { timeout: WAIT_MS });
    assert.match(await page.locator('#status').textContent(), /lobby/);
    assert.equal(await page.locator('#meeting').isHidden(), true, 'nothing of the meeting before admission');
    const lobby = await host.type('lobby', 5000, (f) => f.waiting?.length === 1);
    assert.equal(lobby.waiting[0].name, 'Gail Guest');
    host.send({ type: 'admit', participant: lobby.waiting[0].id });
    await page.locator('#meeting').waitFor();
    await page.locator('#participants li[data-role=host]').waitFor();
    assert.match(await page.locator('#participants').textContent(), /Alice Host.*Gail Guest/s);
    await page.locator('#chat-text').fill('Hello from the browser');
    await page.locator('#chat-form button').click();
    const chat = await host.type('chat', 5000, (f) => f.text === 'Hello from the browser');
    assert.equal(chat.name, 'Gail Guest');
    host.send({ type: 'chat', text: 'Welcome, Gail' });
    await page.locator('#chat-log li', { hasText: 'Welcome, Gail' }).waitFor();
    host.send({ type: 'end' });
    await page.waitForFunction(() => document.body.dataset.state === 'ended', null, { timeout: WAIT_MS });
    assert.match(await page.locator('#status').textContent(), /host ended/);
    await page.close();
  });

  test('a canvas presenter in the browser; viewers paint its frames, then the lossless picture', { timeout: 60000 }, async () => {
    const m = (await srv.api('POST', '/client/v1/meetings', { token: tok.alice, body: { title: 'Browser share' } })).json;
    const ticket = async (who) => (await srv.api('POST', `/client/v1/meetings/${m.id}/ticket`, { token: tok[who] })).json.page_url;
    const local = (u) => { const x = new URL(u); return `${srv.url}${x.pathname}${x.search}`; };
    const presenter = await browser.context.newPage();
    await presenter.addInitScript(CANVAS_SCREEN);
    await presenter.goto(local(await ticket('alice')));
    await presenter.locator('#meeting').waitFor();
    assert.doesNotMatch(presenter.url(), /ticket=/, 'the ticket leaves the address bar');
    await presenter.locator('#end').waitFor();
    await presenter.locator('#share').click();
    const viewer = await browser.context.newPage();
    await viewer.goto(local(await ticket('bob')));
    await viewer.locator('#meeting').waitFor();
    // A second viewer outside the browser, for the server's counters.
    const probe = await meetingConnect(srv, m.id, { token: tok.bob });
    open.push(probe);
    // Keep a copy of the last lossy picture the viewer painted, to hold it
    // against the lossless one at rest.
    await viewer.evaluate(() => {
      const c = document.getElementById('screen');
      new MutationObserver(() => {
        if (c.dataset.tier === 'lossless') return;
        window.lastLossy = { format: c.dataset.format, data: Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data) };
      }).observe(c, { attributes: true, attributeFilter: ['data-seq'] });
    });
    await viewer.waitForFunction(() => Number(document.getElementById('screen').dataset.frames) >= 20, null, { timeout: 20000 });
    const tier = await viewer.locator('#screen').getAttribute('data-tier');
    // Full size on loopback (a new viewer starts at low and moves up with its first acknowledgements).
    assert.ok(['high', 'medium', 'lossless'].includes(tier), tier);
    const size = await viewer.locator('#screen').evaluate((c) => [c.width, c.height]);
    assert.deepEqual(size, [640, 360]);
    // The painted picture is the text, not black.
    const ink = await viewer.locator('#screen').evaluate((c) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let light = 0, dark = 0;
      for (let i = 0; i < d.length; i += 4) { if (d[i] > 200) light++; else if (d[i] < 80) dark++; }
      return { light, dark };
    });
    assert.ok(ink.light > 100000 && ink.dark > 1000, JSON.stringify(ink));
    probe.send({ type: 'stats' });
    const stats = await probe.type('stats', 5000);
    assert.ok(stats.frames >= 20, JSON.stringify(stats));
    assert.ok(stats.encodes.high <= stats.frames);
    // The scroll went as copies from the presenter and as deltas to the
    // viewer, all of which it could paint.
    const copies = Number(await presenter.locator('#share').getAttribute('data-copies'));
    assert.ok(copies > 0, `the presenter sent ${copies} copies`);
    await viewer.waitForFunction(() => Number(document.getElementById('screen').dataset.deltas) >= 10, null, { timeout: 20000 })
      .catch(async (e) => { throw new Error(`${e.message}: ${JSON.stringify(await viewer.locator('#screen').evaluate((c) => ({ ...c.dataset })))}`); });
    assert.equal(await viewer.locator('#screen').getAttribute('data-bad-deltas'), null);
    // The picture stops moving: the lossless refresh is painted.
    await presenter.evaluate(() => { window.atriumStill = true; });
    await viewer.waitForFunction(() => document.getElementById('screen').dataset.tier === 'lossless', null, { timeout: 10000 });
    // The last picture built from deltas is the same picture as the lossless
    // one, as near as JPEG gets; one a few rows off is far from it.
    const cmp = await viewer.evaluate(() => {
      const c = document.getElementById('screen');
      const now = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, was = window.lastLossy.data;
      const diff = (shift) => {
        let sum = 0, n = 0;
        for (let y = 0; y + shift < c.height; y++) {
          for (let x = 0; x < c.width * 4; x++) {
            if (x % 4 === 3) continue;
            sum += Math.abs(was[y * c.width * 4 + x] - now[(y + shift) * c.width * 4 + x]); n++;
          }
        }
        return sum / n;
      };
      return { format: window.lastLossy.format, same: diff(0), off: diff(4) };
    });
    assert.equal(cmp.format, '3', JSON.stringify(cmp));
    assert.ok(cmp.same < 6 && cmp.off > cmp.same * 4, JSON.stringify(cmp));
    assert.deepEqual(browser.errors, []);
    await presenter.close();
    await viewer.close();
  });

  test('the web client creates a meeting, invites a user and opens it as the host', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${srv.url}/app/`);
    await page.locator('#login-user').fill('alice');
    await page.locator('#login-password').fill(PW);
    await page.locator('#login-submit').click();
    await page.locator('#conn[data-state="open"]').waitFor();
    await page.locator('#nav-meetings').click();
    await page.locator('#meeting-title').fill('Planning');
    await page.locator('#meeting-invitees').fill('nobody');
    await page.locator('#meeting-create').click();
    await page.locator('#meetings-status', { hasText: 'invitees[0]' }).waitFor();
    await page.locator('#meeting-invitees').fill('bob');
    await page.locator('#meeting-create').click();
    await page.locator('#meeting-link').waitFor();
    const link = await page.locator('#meeting-link').getAttribute('href');
    assert.match(link, /\/webmeeting\/\?meeting=[A-Za-z0-9_-]{22}$/);
    await page.locator('#meetings-list li', { hasText: 'Planning' }).waitFor();
    const [hostPage] = await Promise.all([browser.context.waitForEvent('page'), page.locator('#meeting-open').click()]);
    await hostPage.locator('#meeting').waitFor();
    await hostPage.waitForFunction(() => document.body.dataset.role === 'host', null, { timeout: WAIT_MS });
    assert.equal(await hostPage.locator('#meeting-title').textContent(), 'Planning');
    await hostPage.close();
    await page.close();
  });
});
