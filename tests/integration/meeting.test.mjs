// Web meetings end to end against a real atriumd: creating one with the
// client API (and every bad field), the invitation as chat, guests in the
// lobby until the host admits them, chat, the host's controls, every kind
// of bad frame, meeting.enabled off ending a running meeting, the journal.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { startServer } from './harness.mjs';
import { clientLogin, rtConnect } from './rt-client.mjs';
import { encodePng, meetingConnect, region } from './meeting-client.mjs';

const PW = 'meeting-pass-1';
const USERS = ['alice', 'bob', 'carol'];

describe('web meetings', () => {
  let srv, admin, tok;
  const open = [];
  const join = async (id, o) => { const c = await meetingConnect(srv, id, o); open.push(c); return c; };
  const create = (body, token = tok.alice) => srv.api('POST', '/client/v1/meetings', { token, body });

  before(async () => {
    srv = await startServer({ atlas: '<Domain>meet.example</Domain>' });
    admin = await srv.login();
    let r = await srv.api('PATCH', '/api/v1/settings', { token: admin, body: { 'meeting.enabled': true } });
    assert.equal(r.status, 200, r.text);
    r = await srv.api('POST', '/api/v1/users/import', {
      token: admin, body: USERS.map((name) => ({ name, password: PW, display_name: name[0].toUpperCase() + name.slice(1) })),
    });
    assert.equal(r.status, 200, r.text);
    tok = {};
    for (const n of USERS) tok[n] = await clientLogin(srv, n, PW);
  });
  after(async () => {
    for (const c of open) c.close();
    if (srv) await srv.stop();
  });

  test('a user creates a meeting; the invitee gets the link as chat from the host', async () => {
    const bob = await rtConnect(srv, tok.bob);
    // The link is under the effective meeting URL, as the reverse proxy publishes it.
    let p = await srv.api('PATCH', '/api/v1/settings', { token: admin, body: { 'meeting.url': 'https://meet.example.test/atrium/webmeeting/' } });
    assert.equal(p.status, 200, p.text);
    const r = await create({ title: 'Quarterly review', start: '2026-12-03T10:00:00+01:00', invitees: ['bob@meet.example'] });
    assert.equal(r.status, 201, r.text);
    assert.match(r.json.id, /^[A-Za-z0-9_-]{22}$/);
    assert.equal(r.json.join_url, `https://meet.example.test/atrium/webmeeting/?meeting=${r.json.id}`);
    // https: no banner on the page or for the host.
    assert.doesNotMatch((await srv.api('GET', `/webmeeting/?meeting=${r.json.id}`)).text, /unencrypted/);
    const h = await meetingConnect(srv, r.json.id, { token: tok.alice });
    assert.equal(h.welcome.encrypted, true);
    assert.equal(h.welcome.banner, undefined);
    h.close();
    p = await srv.api('PATCH', '/api/v1/settings', { token: admin, body: { 'meeting.url': '' } });
    assert.equal(p.status, 200, p.text);
    assert.equal(r.json.start, '2026-12-03T09:00:00.000Z');
    assert.equal(r.json.host, 'alice@meet.example');
    assert.deepEqual(r.json.invited, [{ name: 'bob', sent: true }]);
    assert.equal(r.headers.get('location'), `/client/v1/meetings/${r.json.id}`);
    const chat = await bob.type('chat', 5000);
    assert.equal(chat.from, 'alice@meet.example');
    assert.ok(chat.text.includes(r.json.join_url), chat.text);
    assert.match(chat.text, /Quarterly review/);
    bob.close();
    const got = await srv.api('GET', `/client/v1/meetings/${r.json.id}`, { token: tok.carol });
    assert.equal(got.status, 200);
    assert.equal(got.json.title, 'Quarterly review');
    const list = await srv.api('GET', '/client/v1/meetings', { token: tok.alice });
    assert.ok(list.json.meetings.some((m) => m.id === r.json.id));
    assert.equal((await srv.api('GET', '/client/v1/meetings', { token: tok.bob })).json.meetings.length, 0);
  });

  test('bad requests name the field and create nothing', async () => {
    const before_ = (await srv.api('GET', '/client/v1/meetings', { token: tok.carol })).json.meetings.length;
    const cases = [
      [{}, 'title'], [{ title: '' }, 'title'], [{ title: ' padded' }, 'title'], [{ title: 'x'.repeat(201) }, 'title'],
      [{ title: 'tab\there' }, 'title'], [{ title: 'ok', start: 'tomorrow' }, 'start'], [{ title: 'ok', start: 5 }, 'start'],
      [{ title: 'ok', invitees: 'bob' }, 'invitees'], [{ title: 'ok', invitees: ['nobody'] }, 'invitees[0]'],
      [{ title: 'ok', invitees: ['bob', 'bob@other.example'] }, 'invitees[1]'], [{ title: 'ok', invitees: ['carol'] }, 'invitees[0]'],
      [{ title: 'ok', colour: 'red' }, 'colour'],
    ];
    for (const [body, key] of cases) {
      const r = await create(body, tok.carol);
      assert.equal(r.status, 422, `${JSON.stringify(body)}: ${r.text}`);
      assert.equal(r.json.errors[0].key, key, JSON.stringify(body));
    }
    assert.equal((await srv.api('POST', '/client/v1/meetings', { body: { title: 'x' } })).status, 401);
    assert.equal((await srv.api('GET', '/client/v1/meetings/nope', { token: tok.carol })).status, 404);
    assert.equal((await srv.api('POST', '/client/v1/meetings/nope/ticket', { token: tok.carol })).status, 404);
    assert.equal((await srv.api('GET', '/client/v1/meetings', { token: tok.carol })).json.meetings.length, before_);
  });

  test('guests: name and consent, the lobby, admitted by the host; chat; host controls; bad frames', async () => {
    const m = (await create({ title: 'Lobby test' })).json;
    // The page: an http meeting URL shows the banner before anyone types a name.
    const page = await srv.api('GET', `/webmeeting/?meeting=${m.id}`);
    assert.equal(page.status, 200);
    assert.match(page.text, /id="unencrypted"[^>]*>This meeting is not encrypted/);

    const host = await join(m.id, { token: tok.alice });
    assert.equal(host.welcome.role, 'host');
    assert.equal(host.welcome.state, 'in');
    assert.equal(host.welcome.encrypted, false);
    assert.match(host.welcome.banner, /not encrypted/);
    assert.equal(host.welcome.meeting.title, 'Lobby test');
    await host.type('participants', 5000, (f) => f.participants.length === 1 && f.presenter === host.welcome.you);

    const guest = await join(m.id);
    assert.equal(guest.welcome.role, 'guest');
    assert.equal(guest.welcome.state, 'joining');
    assert.match(guest.welcome.banner, /not encrypted/);
    // Nothing before joining; a join without consent or a name is refused.
    guest.send({ type: 'chat', text: 'hello?' });
    assert.match((await guest.error('not_admitted')).detail, /privacy policy/);
    guest.send({ type: 'join', name: 'Gina Guest' });
    assert.match((await guest.error('bad_frame')).detail, /consent/);
    guest.send({ type: 'join', name: '', consent: true });
    assert.match((await guest.error('bad_frame')).detail, /name/);
    guest.send({ type: 'join', name: 'Gina Guest', consent: true });
    assert.equal((await guest.type('lobby')).state, 'waiting');
    const lobby = await host.type('lobby', 5000, (f) => f.waiting.length === 1);
    assert.equal(lobby.waiting[0].name, 'Gina Guest');
    const gid = lobby.waiting[0].id;
    // Waiting: still nothing, and not on the participant list.
    guest.send({ type: 'chat', text: 'let me in' });
    assert.match((await guest.error('not_admitted')).detail, /lobby/);
    guest.sendBinary(region({ fbW: 64, fbH: 64, w: 64, h: 64, image: [1, 2, 3] }));
    await guest.error('not_admitted');
    guest.send({ type: 'join', name: 'Again', consent: true });
    await guest.error('joined');

    const bob = await join(m.id, { token: tok.bob });
    assert.equal(bob.welcome.role, 'user');
    assert.equal(bob.welcome.state, 'in');
    // Only the host admits.
    bob.send({ type: 'admit', participant: gid });
    await bob.error('not_host');
    host.send({ type: 'admit', participant: 'p999' });
    await host.error('no_participant');
    host.send({ type: 'admit', participant: gid });
    await guest.type('admitted');
    const people = await guest.type('participants', 5000, (f) => f.participants.length === 3);
    assert.deepEqual(people.participants.map((p) => [p.name, p.role]), [['Alice', 'host'], ['Gina Guest', 'guest'], ['Bob', 'user']]);
    await host.type('lobby', 5000, (f) => f.waiting.length === 0);
    host.send({ type: 'admit', participant: gid });
    await host.error('not_waiting');

    // Chat reaches everyone in, with the sender's name.
    guest.send({ type: 'chat', text: 'Hi all 👋' });
    for (const c of [host, bob, guest]) {
      const f = await c.type('chat', 5000, (x) => x.text === 'Hi all 👋');
      assert.equal(f.name, 'Gina Guest');
      assert.equal(f.from, gid);
    }
    // A flood: the burst passes, the rest is refused with 429, others unaffected.
    for (let i = 0; i < 30; i++) bob.send({ type: 'chat', text: `flood ${i}` });
    const bobFrames = await bob.drain(600);
    const refused = bobFrames.filter((f) => f.type === 'error' && f.status === 429).length;
    const passed = bobFrames.filter((f) => f.type === 'chat' && /^flood/.test(f.text)).length;
    assert.ok(refused >= 15 && passed >= 10 && passed + refused === 30, `${passed} passed, ${refused} refused`);
    host.send({ type: 'chat', text: 'still here' });
    await guest.type('chat', 5000, (x) => x.text === 'still here');

    // Bad frames: each an error naming the rule, nothing else changes.
    for (const [frame, code, re] of [
      ['not json', 'bad_frame', /JSON object/], [{ type: 'dance' }, 'bad_frame', /type must be/],
      [{ type: 'chat' }, 'bad_frame', /text/], [{ type: 'chat', text: 'x'.repeat(2001) }, 'bad_frame', /2000/],
      [{ type: 'ack', frame: 'one' }, 'bad_frame', /frame/], [{ type: 'ack', frame: 7 }, 'bad_ack', /not sent/],
      [{ type: 'remove', participant: 'bob' }, 'bad_frame', /participant/],
    ]) {
      bob.send(frame);
      assert.match((await bob.error(code)).detail, re, JSON.stringify(frame));
    }
    // Only the presenter sends screen frames.
    bob.sendBinary(region({ fbW: 64, fbH: 64, w: 64, h: 64, image: [1, 2, 3] }));
    assert.match((await bob.error('not_presenter')).detail, /Only the presenter/);

    // Handing over presenting; then bob's regions are checked, not refused.
    host.send({ type: 'present', participant: bob.welcome.you });
    await guest.type('participants', 5000, (f) => f.presenter === bob.welcome.you);
    bob.sendBinary(region({ fbW: 64, fbH: 64, x: 60, w: 64, h: 64, image: [1, 2, 3] }));
    assert.match((await bob.error('bad_region')).detail, /outside the screen/);
    // A valid PNG bigger than 64 KiB (noise does not compress): taken, not refused.
    const noise = crypto.randomBytes(256 * 256 * 3);
    const bigPng = encodePng(256, 256, noise);
    assert.ok(bigPng.length > 64 * 1024, String(bigPng.length));
    bob.sendBinary(region({ format: 2, fbW: 256, fbH: 256, w: 256, h: 256, image: bigPng }));
    await assert.rejects(bob.error('bad_image', 1500), /no "error" frame/, 'a valid PNG of more than 64 KiB was refused');
    bob.sendBinary(region({ fbW: 64, fbH: 64, w: 64, h: 64, image: [0xff, 0xd8, 1, 2, 3] }));
    assert.match((await bob.error('bad_image')).detail, /JPEG image is corrupt/);
    bob.sendBinary(region({ format: 2, fbW: 64, fbH: 64, w: 64, h: 64, image: Buffer.from('not a png') }));
    assert.match((await bob.error('bad_image')).detail, /PNG/);
    bob.sendBinary(region({ format: 9, fbW: 64, fbH: 64, w: 64, h: 64, image: [1] }));
    assert.match((await bob.error('bad_region')).detail, /format/);
    bob.sendBinary(region({ fbW: 8000, fbH: 64, w: 64, h: 64, image: [1] }));
    assert.match((await bob.error('bad_region')).detail, /screen must be/);

    // Remove: the guest is told and goes; the others see the list change.
    host.send({ type: 'remove', participant: gid });
    assert.match((await guest.type('removed')).reason, /removed you/);
    await guest.type('#close');
    await host.type('participants', 5000, (f) => f.participants.length === 2);
    host.send({ type: 'remove', participant: host.welcome.you });
    await host.error('host');

    // End: everyone gets the sentence; the meeting cannot be joined again.
    host.send({ type: 'end' });
    for (const c of [host, bob]) {
      assert.equal((await c.type('ended')).reason, 'The host ended the meeting.');
      await c.type('#close');
    }
    const until = Date.now() + 5000;
    let got;
    while (Date.now() < until) {
      got = await srv.api('GET', `/client/v1/meetings/${m.id}`, { token: tok.alice });
      if (got.json.ended) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(got.json.ended, true);
    assert.equal(got.json.end_reason, 'The host ended the meeting.');
    assert.equal((await srv.api('POST', `/client/v1/meetings/${m.id}/ticket`, { token: tok.bob })).status, 410);
    await assert.rejects(meetingConnect(srv, m.id), (e) => e.status === 410);
    // The journal: the host's entry points at the meeting, bob's at the host.
    const ja = await srv.api('GET', '/client/v1/journal', { token: tok.alice });
    const ea = ja.json.entries.find((e) => e.kind === 'meeting');
    assert.ok(ea, ja.text);
    assert.equal(ea.direction, 'out');
    assert.equal(ea.peer, m.join_url);
    assert.ok(ea.duration_s >= 0);
    const jb = await srv.api('GET', '/client/v1/journal', { token: tok.bob });
    const eb = jb.json.entries.find((e) => e.kind === 'meeting');
    assert.equal(eb.direction, 'in');
    assert.equal(eb.peer, 'alice@meet.example');
  });

  test('a guest with no meeting, a used ticket, or a ticket for another meeting is refused', async () => {
    const a = (await create({ title: 'A' })).json, b = (await create({ title: 'B' })).json;
    await assert.rejects(meetingConnect(srv, 'does-not-exist'), (e) => e.status === 404);
    const t = await srv.api('POST', `/client/v1/meetings/${a.id}/ticket`, { token: tok.bob });
    assert.equal(t.status, 200);
    assert.ok(t.json.page_url.startsWith(a.join_url + '&ticket='));
    const { wsOpen } = await import('./harness.mjs');
    await assert.rejects(wsOpen(srv.port, `/webmeeting/ws?meeting=${b.id}&ticket=${t.json.ticket}`), (e) => e.status === 401);
    await assert.rejects(wsOpen(srv.port, `/webmeeting/ws?meeting=${a.id}&ticket=${t.json.ticket}`), (e) => e.status === 401, 'single use');
    await assert.rejects(wsOpen(srv.port, '/webmeeting/ws'), (e) => e.status === 400);
  });

  test('meeting.enabled off ends running meetings with a sentence', async () => {
    const m = (await create({ title: 'Switched off' })).json;
    const host = await join(m.id, { token: tok.alice });
    const guest = await join(m.id);
    const r = await srv.api('PATCH', '/api/v1/settings', { token: admin, body: { 'meeting.enabled': false } });
    assert.equal(r.status, 200, r.text);
    for (const c of [host, guest]) {
      assert.match((await c.type('ended')).reason, /switched off/);
      await c.type('#close');
    }
    assert.equal((await create({ title: 'While off' })).status, 404);
    await assert.rejects(meetingConnect(srv, m.id), (e) => e.status === 404);
    assert.equal((await srv.api('PATCH', '/api/v1/settings', { token: admin, body: { 'meeting.enabled': true } })).status, 200);
  });
});
