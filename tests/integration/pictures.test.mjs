// Profile pictures end to end: a user uploads their own (JPEG or PNG), the
// server stores a re-encoded square JPEG and never the upload; garbage,
// oversize and too-large dimensions are refused with a sentence; the admin
// sets and removes any user's; other users fetch it with their client
// token; and in a web meeting a guest sees picture URLs (and the URLs
// answer) only while directory.users_permissions holds Authenticated.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { startServer } from './harness.mjs';
import { clientLogin } from './rt-client.mjs';
import { encodePng, meetingConnect } from './meeting-client.mjs';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const FACE_JPG = fs.readFileSync(path.join(FIXTURES, 'face.jpg')); // 320 x 240
const WIDE_JPG = fs.readFileSync(path.join(FIXTURES, 'wide.jpg')); // 5000 x 40
const PW = 'picture-pass-1';

/** Width and height from a JPEG's SOF marker. */
function jpegSize(buf) {
  assert.equal(buf[0], 0xff);
  assert.equal(buf[1], 0xd8);
  let i = 2;
  while (i < buf.length) {
    if (buf[i] !== 0xff) throw new Error(`no marker at ${i}`);
    const m = buf[i + 1];
    const len = buf.readUInt16BE(i + 2);
    if (m >= 0xc0 && m <= 0xc3) return { h: buf.readUInt16BE(i + 5), w: buf.readUInt16BE(i + 7) };
    i += 2 + len;
  }
  throw new Error('no SOF');
}

function gradientPng(w, h) {
  const rgb = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const o = (y * w + x) * 3;
    rgb[o] = (x * 255 / w) | 0; rgb[o + 1] = (y * 255 / h) | 0; rgb[o + 2] = 128;
  }
  return encodePng(w, h, rgb);
}

function solidPng(w, h) { return encodePng(w, h, Buffer.alloc(w * h * 3, 0x80)); }

async function bytes(res) { return Buffer.from(await res.arrayBuffer()); }

describe('profile pictures', () => {
  let srv, admin, tok;
  const open = [];
  const put = (p, body, token, type = 'image/jpeg') =>
    srv.api('PUT', p, { token, raw: body, headers: { 'content-type': type } });
  const get = (p, { token, headers = {} } = {}) =>
    fetch(srv.url + p, { headers: { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) } });
  const setPerm = async (list) => {
    const r = await srv.api('PATCH', '/api/v1/settings', { token: admin, body: { 'directory.users_permissions': list } });
    assert.equal(r.status, 200, r.text);
  };

  before(async () => {
    srv = await startServer({ atlas: '<Domain>pic.example</Domain>' });
    admin = await srv.login();
    let r = await srv.api('PATCH', '/api/v1/settings', { token: admin, body: { 'meeting.enabled': true } });
    assert.equal(r.status, 200, r.text);
    r = await srv.api('POST', '/api/v1/users/import', {
      token: admin, body: ['alice', 'bob', 'carol'].map((name) => ({ name, password: PW, display_name: `${name[0].toUpperCase()}${name.slice(1)} Example` })),
    });
    assert.equal(r.status, 200, r.text);
    tok = {};
    for (const n of ['alice', 'bob', 'carol']) tok[n] = await clientLogin(srv, n, PW);
  });
  after(async () => {
    for (const c of open) c.close();
    if (srv) await srv.stop();
  });

  test('the setting: default Users, no Authenticated; only known principals, spelled canonically', async () => {
    const s = await srv.api('GET', '/api/v1/settings', { token: admin });
    assert.deepEqual(s.json.settings['directory.users_permissions'].value, ['Users']);
    let r = await srv.api('PATCH', '/api/v1/settings', { token: admin, body: { 'directory.users_permissions': ['users', 'AUTHENTICATED', 'Users'] } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.settings['directory.users_permissions'].value, ['Users', 'Authenticated']);
    r = await srv.api('PATCH', '/api/v1/settings', { token: admin, body: { 'directory.users_permissions': ['Everyone'] } });
    assert.equal(r.status, 422);
    assert.equal(r.json.errors[0].key, 'directory.users_permissions');
    assert.match(r.json.errors[0].message, /Users or Authenticated/);
    await setPerm(['Users']);
  });

  test('a user uploads a JPEG: stored re-encoded as a square JPEG, served with ETag and Cache-Control', async () => {
    let r = await put('/client/v1/me/picture', FACE_JPG, tok.alice);
    assert.equal(r.status, 200, r.text);
    assert.match(r.json.picture, /^[0-9a-f]{32}$/);
    assert.equal(r.json.name, 'alice');
    const me = await srv.api('GET', '/client/v1/me', { token: tok.alice });
    assert.equal(me.json.picture, r.json.picture);

    const res = await get('/client/v1/users/alice/picture', { token: tok.bob });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/jpeg');
    assert.equal(res.headers.get('etag'), `"${r.json.picture}"`);
    assert.match(res.headers.get('cache-control'), /private/);
    const img = await bytes(res);
    // Never the upload as it came: re-encoded, square, the shorter side (240).
    assert.notDeepEqual(img, FACE_JPG);
    assert.deepEqual(jpegSize(img), { w: 240, h: 240 });
    // The centre of the picture is the blue disc of the source.
    const again = await get('/client/v1/users/alice@pic.example/picture', { token: tok.bob, headers: { 'if-none-match': res.headers.get('etag') } });
    assert.equal(again.status, 304);
    // Without a token: 401 with a problem document.
    const anon = await srv.api('GET', '/client/v1/users/alice/picture');
    assert.equal(anon.status, 401);
    assert.match(anon.headers.get('content-type'), /problem\+json/);
  });

  test('a PNG (with a large side) is scaled down to 256 x 256', async () => {
    const r = await put('/client/v1/me/picture', gradientPng(800, 600), tok.bob, 'image/png');
    assert.equal(r.status, 200, r.text);
    const res = await get('/client/v1/users/bob/picture', { token: tok.alice });
    assert.equal(res.status, 200);
    assert.deepEqual(jpegSize(await bytes(res)), { w: 256, h: 256 });
    // A new upload changes the tag.
    const r2 = await put('/client/v1/me/picture', FACE_JPG, tok.bob);
    assert.notEqual(r2.json.picture, r.json.picture);
  });

  test('garbage, an empty body, oversize, too small and too large dimensions are refused and change nothing', async () => {
    const before_ = (await srv.api('GET', '/client/v1/me', { token: tok.carol })).json.picture;
    assert.equal(before_, null);
    const cases = [
      [Buffer.from('GIF89a not really'), /neither a JPEG nor a PNG/],
      [Buffer.alloc(0), /empty/],
      [Buffer.concat([FACE_JPG.subarray(0, 400)]), /JPEG image is corrupt/],
      [Buffer.concat([gradientPng(64, 64).subarray(0, 60)]), /PNG image is corrupt/],
      [WIDE_JPG, /5000 x 40 pixels; at most 4096 x 4096/],
      [gradientPng(4097, 40), /4097 x 40 pixels; at most 4096/],
      [solidPng(3000, 3000), /at most 4194304 pixels/],
      [gradientPng(20, 20), /at least 32 x 32/],
    ];
    for (const [body, re] of cases) {
      const r = await put('/client/v1/me/picture', body, tok.carol, 'application/octet-stream');
      assert.equal(r.status, 422, `${re}: ${r.status} ${r.text}`);
      assert.match(r.headers.get('content-type'), /problem\+json/);
      assert.match(r.json.detail, re);
      assert.equal(r.json.errors[0].key, 'picture');
    }
    const big = await put('/client/v1/me/picture', Buffer.alloc(600 * 1024, 0xff), tok.carol);
    assert.equal(big.status, 413);
    assert.equal((await srv.api('GET', '/client/v1/me', { token: tok.carol })).json.picture, null);
    assert.equal((await get('/client/v1/users/carol/picture', { token: tok.alice })).status, 404);
  });

  test('the admin sets, reads and removes a user\'s picture; the audit log records it', async () => {
    let r = await put('/api/v1/users/carol/picture', gradientPng(100, 100), admin, 'image/png');
    assert.equal(r.status, 200, r.text);
    assert.match(r.json.picture, /^[0-9a-f]{32}$/);
    const res = await get('/api/v1/users/carol/picture', { token: admin });
    assert.equal(res.status, 200);
    assert.deepEqual(jpegSize(await bytes(res)), { w: 100, h: 100 });
    const user = await srv.api('GET', '/api/v1/users/carol', { token: admin });
    assert.equal(user.json.picture, r.json.picture);
    assert.equal((await put('/api/v1/users/nobody/picture', FACE_JPG, admin)).status, 404);
    assert.equal((await put('/api/v1/users/carol/picture', FACE_JPG, tok.alice)).status, 401);
    r = await srv.api('DELETE', '/api/v1/users/carol/picture', { token: admin });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.picture, null);
    assert.equal((await srv.api('GET', '/api/v1/users/carol/picture', { token: admin })).status, 404);
    r = await srv.api('DELETE', '/api/v1/users/carol/picture', { token: admin });
    assert.equal(r.status, 200);
    const audit = await srv.api('GET', '/api/v1/audit?action=user.picture', { token: admin });
    assert.equal(audit.status, 200, audit.text);
    const mine = audit.json.entries.filter((e) => e.key === 'carol');
    assert.deepEqual(mine.map((e) => e.new), ['picture removed', 'picture set (' + mine[1].new.match(/\d+/)[0] + ' bytes)']);
  });

  test('the user removes their own picture', async () => {
    await put('/client/v1/me/picture', FACE_JPG, tok.carol);
    const r = await srv.api('DELETE', '/client/v1/me/picture', { token: tok.carol });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.picture, null);
    assert.equal((await get('/client/v1/users/carol/picture', { token: tok.carol })).status, 404);
  });

  test('a disabled user\'s picture: hidden from users, still shown to the admin; gone with the user', async () => {
    let r = await srv.api('POST', '/api/v1/users', { token: admin, body: { name: 'dave', password: PW } });
    assert.equal(r.status, 201, r.text);
    assert.equal((await put('/api/v1/users/dave/picture', FACE_JPG, admin)).status, 200);
    assert.equal((await get('/client/v1/users/dave/picture', { token: tok.alice })).status, 200);
    r = await srv.api('PATCH', '/api/v1/users/dave', { token: admin, body: { enabled: false } });
    assert.equal(r.status, 200, r.text);
    assert.equal((await get('/client/v1/users/dave/picture', { token: tok.alice })).status, 404);
    assert.equal((await get('/api/v1/users/dave/picture', { token: admin })).status, 200);
    assert.equal((await srv.api('DELETE', '/api/v1/users/dave', { token: admin })).status, 204);
    assert.equal((await get('/api/v1/users/dave/picture', { token: admin })).status, 404);
  });

  test('a meeting guest sees picture URLs only while the permission holds Authenticated; the URLs refuse otherwise', async () => {
    await setPerm(['Users']);
    const m = (await srv.api('POST', '/client/v1/meetings', { token: tok.alice, body: { title: 'Pictures' } })).json;
    const host = await meetingConnect(srv, m.id, { token: tok.alice });
    open.push(host);
    const hostList = await host.type('participants', 5000, (f) => f.participants.length === 1);
    // The host (a user) sees their own picture.
    const hostPic = hostList.participants[0].picture;
    assert.match(hostPic, /^pictures\/alice\?meeting=/);
    let res = await get(`/webmeeting/${hostPic}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/jpeg');

    const guest = await meetingConnect(srv, m.id);
    open.push(guest);
    guest.send({ type: 'join', name: 'Gina Guest', consent: true });
    const lobby = await host.type('lobby', 5000, (f) => f.waiting.length === 1);
    host.send({ type: 'admit', participant: lobby.waiting[0].id });
    await guest.type('admitted');
    let list = await guest.type('participants', 5000, (f) => f.participants.length === 2);
    assert.deepEqual(list.participants.map((p) => [p.name, p.role, p.picture]),
      [['Alice Example', 'host', null], ['Gina Guest', 'guest', null]]);
    // The user's URL is not a guest's: with only Users, a guest cannot use a
    // URL meant for a guest (forged from a user's), nor fetch without a key.
    const guestKeyless = hostPic.replace(/k=[0-9a-f]+/, 'k=' + '0'.repeat(32));
    res = await get(`/webmeeting/${guestKeyless}`);
    assert.equal(res.status, 403);
    assert.match(res.headers.get('content-type'), /problem\+json/);

    // With Authenticated: the next list carries the guest's own URL, which answers.
    await setPerm(['Users', 'Authenticated']);
    const bob = await meetingConnect(srv, m.id, { token: tok.bob });
    open.push(bob);
    list = await guest.type('participants', 5000, (f) => f.participants.length === 3);
    const alicePic = list.participants.find((p) => p.name === 'Alice Example').picture;
    assert.match(alicePic, /^pictures\/alice\?meeting=.*&k=[0-9a-f]{32}/);
    assert.notEqual(alicePic, hostPic);
    assert.match(list.participants.find((p) => p.name === 'Bob Example').picture, /^pictures\/bob\?/);
    assert.equal(list.participants.find((p) => p.role === 'guest').picture, null);
    res = await get(`/webmeeting/${alicePic}`);
    assert.equal(res.status, 200);
    assert.deepEqual(jpegSize(await bytes(res)), { w: 240, h: 240 });
    // The key is for this user of this meeting only.
    assert.equal((await get(`/webmeeting/${alicePic.replace('pictures/alice', 'pictures/bob')}`)).status, 403);

    // Authenticated taken away: the guest's URL refuses at once, and the
    // next list has no pictures for the guest.
    await setPerm(['Users']);
    res = await get(`/webmeeting/${alicePic}`);
    assert.equal(res.status, 403);
    const doc = await res.json();
    assert.match(doc.detail, /Authenticated/);
    // The user's URL still works: users have the Users permission.
    assert.equal((await get(`/webmeeting/${hostPic}`)).status, 200);
    bob.close();
    list = await guest.type('participants', 5000, (f) => f.participants.length === 2);
    assert.ok(list.participants.every((p) => p.picture === null), JSON.stringify(list));
    host.close();
    guest.close();
  });
});
