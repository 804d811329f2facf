// The real-time core end to end against a real atriumd: presence, chat with
// delivered/read marks over several connections per user, offline delivery,
// durability across kill -9, the domain change, users disabled and signed
// out, a client that does not read, and every kind of bad frame.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

import { STORE_TOOL, ctl, show, sleep, startServer, wsOpen } from './harness.mjs';
import { clientLogin, rtConnect } from './rt-client.mjs';

const PW = 'rt-test-pass-1';
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan'];

async function seed(server) {
  const admin = await server.login();
  const r = await server.api('POST', '/api/v1/users/import', {
    token: admin, body: USERS.map((name) => ({ name, password: PW, display_name: name[0].toUpperCase() + name.slice(1) })),
  });
  assert.equal(r.status, 200, r.text);
  const tokens = {};
  for (const n of USERS) tokens[n] = await clientLogin(server, n, PW);
  return { admin, tokens };
}

describe('real-time core', () => {
  let srv, admin, tok, domain;
  const addr = (n) => `${n}@${domain}`;
  const open = [];
  const connect = async (name, o) => { const c = await rtConnect(srv, tok[name], o); open.push(c); return c; };

  before(async () => {
    srv = await startServer({ atlas: '<Domain>rt.example</Domain>' });
    ({ admin, tokens: tok } = await seed(srv));
    domain = 'rt.example';
  });
  after(async () => {
    for (const c of open) c.close();
    if (srv) await srv.stop();
  });

  test('hello names the user, the address and the session; a ticket works once', async () => {
    const t = await srv.api('POST', '/client/v1/ws-ticket', { token: tok.alice });
    assert.equal(t.status, 200, t.text);
    assert.match(t.json.ticket, /^[A-Za-z0-9_-]{32}$/);
    const expires = Date.parse(t.json.expires);
    assert.ok(expires > Date.now() + 20000 && expires <= Date.now() + 31000, t.json.expires);
    const ws = await wsOpen(srv.port, `/client/v1/ws?ticket=${t.json.ticket}`);
    const hello = JSON.parse(await ws.next());
    assert.equal(hello.type, 'hello');
    assert.equal(hello.user, 'alice');
    assert.equal(hello.address, 'alice@rt.example');
    assert.match(hello.session, /^c\d+$/);
    assert.ok(Math.abs(Date.parse(hello.server_time) - Date.now()) < 5000);
    ws.close();
    await assert.rejects(wsOpen(srv.port, `/client/v1/ws?ticket=${t.json.ticket}`), (e) => e.status === 401 && /used already/.test(e.body));
    await assert.rejects(wsOpen(srv.port, '/client/v1/ws?ticket=nope'), (e) => e.status === 401);
    await assert.rejects(wsOpen(srv.port, '/client/v1/ws'), (e) => e.status === 401);
    await assert.rejects(wsOpen(srv.port, '/client/v1/ws', { headers: { Authorization: 'Bearer wrong' } }), (e) => e.status === 401);
    const nt = await srv.api('POST', '/client/v1/ws-ticket', { token: 'wrong' });
    assert.equal(nt.status, 401);
    const bad = await srv.api('POST', '/client/v1/ws-ticket', { token: tok.alice, body: { client: 'Web Browser!' } });
    assert.equal(bad.status, 422);
    assert.equal(bad.json.errors[0].key, 'client');
  });

  test('a page of another site cannot open the socket; the server\'s own origin can', async () => {
    const t = await srv.api('POST', '/client/v1/ws-ticket', { token: tok.alice });
    await assert.rejects(wsOpen(srv.port, `/client/v1/ws?ticket=${t.json.ticket}`, { headers: { Origin: 'https://evil.example' } }),
      (e) => e.status === 403);
    const t2 = await srv.api('POST', '/client/v1/ws-ticket', { token: tok.alice });
    const ws = await wsOpen(srv.port, `/client/v1/ws?ticket=${t2.json.ticket}`, { headers: { Origin: `http://127.0.0.1:${srv.port}` } });
    assert.equal(JSON.parse(await ws.next()).type, 'hello');
    ws.close();
  });

  test('presence is the most available state over a user\'s connections', async () => {
    const watcher = await connect('carol');
    const d1 = await connect('dave');
    const d2 = await connect('dave', { ticket: false });
    let ok = await watcher.request({ type: 'presence.watch', addresses: [addr('dave')] });
    assert.equal(ok.type, 'ok');
    let p = await watcher.type('presence');
    assert.equal(p.address, addr('dave'));
    assert.equal(p.state, 'available');
    assert.equal((await d1.request({ type: 'presence.set', state: 'dnd', note: 'focus' })).type, 'ok');
    // d2 is still available: no change in the aggregate, only the note.
    p = await watcher.type('presence');
    assert.equal(p.state, 'available');
    assert.equal(p.note, 'focus');
    await d2.request({ type: 'presence.set', state: 'away' });
    p = await watcher.type('presence');
    assert.equal(p.state, 'dnd');
    assert.ok(Date.parse(p.since) > Date.now() - 5000);
    d1.close();
    p = await watcher.type('presence');
    assert.equal(p.state, 'away');
    d2.close();
    p = await watcher.type('presence');
    assert.equal(p.state, 'offline');
    assert.equal(p.note, undefined, 'an offline user shows no note');
    // unwatch: no more frames
    await watcher.request({ type: 'presence.unwatch', addresses: [addr('dave')] });
    const d3 = await connect('dave');
    const late = await watcher.drain(300);
    assert.deepEqual(late.filter((f) => f.type === 'presence'), []);
    d3.close();
    watcher.close();
  });

  test('chat reaches every connection; delivered and read marks reach every device', async () => {
    const a1 = await connect('alice');
    const a2 = await connect('alice', { ticket: false });
    const b = [await connect('bob'), await connect('bob'), await connect('bob', { ticket: false })];
    const ok = await a1.request({ type: 'chat.send', to: addr('bob'), text: 'Lunch? 🍜' });
    assert.equal(ok.type, 'ok', JSON.stringify(ok));
    assert.match(ok.message_id, /^\d+$/);
    for (const c of [...b, a2]) {
      const m = await c.type('chat', 5000, (f) => f.message_id === ok.message_id);
      assert.deepEqual({ ...m, time: undefined }, { type: 'chat', message_id: ok.message_id, from: addr('alice'), to: addr('bob'), text: 'Lunch? 🍜', time: undefined });
      assert.equal(m.time, ok.time);
    }
    assert.deepEqual((await a1.drain(150)).filter((f) => f.type === 'chat'), [], 'the sending connection gets no copy');
    // received on one of bob's devices: alice's devices hear it once
    assert.equal((await b[1].request({ type: 'chat.received', message_id: ok.message_id })).type, 'ok');
    for (const c of [a1, a2]) {
      const d = await c.type('chat.delivered');
      assert.equal(d.message_id, ok.message_id);
      assert.equal(d.by, addr('bob'));
    }
    await b[2].request({ type: 'chat.received', message_id: ok.message_id });
    assert.deepEqual((await a1.drain(200)).filter((f) => f.type === 'chat.delivered'), [], 'delivered is said once');
    // read on another device: read everywhere
    await b[0].request({ type: 'chat.read', message_id: ok.message_id });
    for (const c of [a1, a2, ...b]) {
      const r = await c.type('chat.read');
      assert.equal(r.message_id, ok.message_id);
      assert.equal(r.by, addr('bob'));
    }
    // typing goes to the other side
    b[0].send({ type: 'typing', to: addr('alice') });
    assert.equal((await a1.type('typing')).from, addr('bob'));
    // history has it, delivered and read
    const h = await srv.api('GET', `/client/v1/messages?with=${addr('bob')}`, { token: tok.alice });
    assert.equal(h.status, 200, h.text);
    assert.deepEqual(h.json.messages[0], { message_id: ok.message_id, from: addr('alice'), to: addr('bob'), text: 'Lunch? 🍜', time: ok.time, delivered: true, read: true });
    const hb = await srv.api('GET', `/client/v1/messages?with=${addr('alice')}`, { token: tok.bob });
    assert.equal(hb.json.messages[0].message_id, ok.message_id, 'the same conversation from the other side');
    // the journal counts the day's conversation on both sides
    const ja = await srv.api('GET', '/client/v1/journal', { token: tok.alice });
    const jb = await srv.api('GET', '/client/v1/journal', { token: tok.bob });
    const ea = ja.json.entries.find((e) => e.kind === 'chat' && e.peer === addr('bob'));
    const eb = jb.json.entries.find((e) => e.kind === 'chat' && e.peer === addr('alice'));
    assert.equal(ea.direction, 'out');
    assert.equal(eb.direction, 'in');
    assert.ok(ea.messages >= 1 && eb.messages >= 1);
    for (const c of [a1, a2, ...b]) c.close();
  });

  test('read marks the message and every earlier one of that conversation', async () => {
    const e = await connect('erin');
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push((await e.request({ type: 'chat.send', to: addr('frank'), text: `m${i}` })).message_id);
    const f = await connect('frank');
    for (const id of ids) await f.type('chat', 5000, (m) => m.message_id === id);
    await f.request({ type: 'chat.read', message_id: ids[2] });
    const r = await e.type('chat.read');
    assert.equal(r.message_id, ids[2], 'the newest one marked');
    const h = await srv.api('GET', `/client/v1/messages?with=${addr('erin')}`, { token: tok.frank });
    const read = Object.fromEntries(h.json.messages.map((m) => [m.message_id, m.read]));
    assert.deepEqual(ids.map((id) => read[id]), [true, true, true, false]);
    e.close();
    f.close();
  });

  test('offline messages arrive in order at the next connection, until received', async () => {
    const g = await connect('grace');
    const ids = [];
    for (let i = 0; i < 25; i++) {
      const ok = await g.request({ type: 'chat.send', to: addr('heidi'), text: `offline ${i}` });
      assert.equal(ok.type, 'ok');
      ids.push(ok.message_id);
    }
    let h = await connect('heidi');
    let got = [];
    for (let i = 0; i < 25; i++) got.push(await h.type('chat'));
    assert.deepEqual(got.map((m) => m.message_id), ids, 'all, in order, oldest first');
    assert.deepEqual(got.map((m) => m.text), ids.map((_, i) => `offline ${i}`));
    h.close();
    await h.closed();
    // not received: they come again
    h = await connect('heidi');
    got = [];
    for (let i = 0; i < 25; i++) got.push((await h.type('chat')).message_id);
    assert.deepEqual(got, ids);
    await h.request({ type: 'chat.received', message_id: ids[19] });
    h.close();
    await h.closed();
    h = await connect('heidi');
    got = [];
    for (let i = 0; i < 5; i++) got.push((await h.type('chat')).message_id);
    assert.deepEqual(got, ids.slice(20), 'only the ones not received');
    // a live message after the offline ones, and nothing twice
    const live = await g.request({ type: 'chat.send', to: addr('heidi'), text: 'live' });
    assert.equal((await h.type('chat')).message_id, live.message_id);
    assert.deepEqual((await h.drain(300)).filter((f) => f.type === 'chat'), []);
    g.close();
    h.close();
  });

  test('a long absence: 16 MB of offline messages arrive in order, paced to the client', async () => {
    const run = promisify(execFile);
    const big = 'z'.repeat(16 * 1024 - 8);
    await run(STORE_TOOL, [srv.storeTarget, 'message', 'erin', 'grace', '0', '0', big, '1000']);
    const c = await connect('grace');
    // The client reads nothing for a while: unpaced, 16 MB would overflow
    // the kernel's buffers and its 1 MiB queue and cut it off.
    c.ws.sock.pause();
    await sleep(2000);
    c.ws.sock.resume();
    const ids = [];
    for (let i = 0; i < 1000; i++) {
      const m = await c.type('chat', 20000);
      assert.equal(m.from, addr('erin'));
      ids.push(Number(m.message_id));
    }
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'oldest first');
    assert.equal(new Set(ids).size, 1000);
    assert.equal((await c.request({ type: 'ping' })).type, 'ok', 'still connected');
    await c.request({ type: 'chat.received', message_id: String(ids[999]) });
    c.close();
  });

  test('refusals: unknown and disabled users, addresses, sizes, types', async () => {
    const c = await connect('ivan');
    const cases = [
      [{ type: 'chat.send', to: addr('nobody'), text: 'x' }, 404, /no user/],
      [{ type: 'chat.send', to: 'not an address', text: 'x' }, 400, /to/],
      [{ type: 'chat.send', to: addr('bob') }, 400, /text/],
      [{ type: 'chat.send', to: addr('bob'), text: '' }, 400, /text/],
      [{ type: 'chat.send', to: addr('bob'), text: 'x'.repeat(16 * 1024 + 1) }, 413, /16 KiB|16,384|bytes/],
      [{ type: 'chat.send', to: 'someone@partner.example', text: 'x' }, 503, /Federation is not running/],
      [{ type: 'presence.set', state: 'sleeping' }, 400, /state/],
      [{ type: 'presence.set' }, 400, /state/],
      [{ type: 'presence.set', state: 'busy', note: 'n'.repeat(300) }, 400, /note/],
      [{ type: 'presence.watch', addresses: 'bob' }, 400, /addresses/],
      [{ type: 'presence.watch', addresses: ['fine@rt.example', 5] }, 400, /addresses/],
      [{ type: 'chat.read' }, 400, /message_id/],
      [{ type: 'chat.received', message_id: 'abc' }, 400, /message_id/],
      [{ type: 'teleport' }, 400, /type/],
      [{ id: 'no type' }, 400, /type/],
    ];
    for (const [frame, status, re] of cases) {
      const e = await c.request(frame);
      assert.equal(e.type, 'error', JSON.stringify(frame).slice(0, 80));
      assert.equal(e.status, status, `${JSON.stringify(frame).slice(0, 80)}: ${e.detail}`);
      assert.match(e.detail, re);
    }
    for (const text of ['nonsense', '[1,2]', '{"type":', '"just a string"']) {
      c.send(text);
      const e = await c.type('error');
      assert.equal(e.status, 400, text);
      assert.equal(e.id, undefined);
    }
    // a disabled user cannot be written to
    let r = await srv.api('PATCH', '/api/v1/users/frank', { token: admin, body: { enabled: false } });
    assert.equal(r.status, 200, r.text);
    const e = await c.request({ type: 'chat.send', to: addr('frank'), text: 'hello?' });
    assert.equal(e.status, 409);
    r = await srv.api('PATCH', '/api/v1/users/frank', { token: admin, body: { enabled: true } });
    assert.equal(r.status, 200, r.text);
    tok.frank = await clientLogin(srv, 'frank', PW); // disabling revoked frank's tokens
    assert.equal((await c.request({ type: 'chat.send', to: addr('frank'), text: 'back' })).type, 'ok',
      'enabling takes effect at once');
    // the connection still works after all that
    assert.equal((await c.request({ type: 'ping' })).type, 'ok');
    c.close();
  });

  test('a binary frame closes with 1003; a frame over 64 KiB with 1009', async () => {
    const c = await connect('ivan');
    c.ws.sendBinary([1, 2, 3]);
    assert.equal((await c.closed()).close, 1003);
    const d = await connect('ivan');
    d.send(JSON.stringify({ type: 'ping', pad: 'x'.repeat(70 * 1024) }));
    assert.equal((await d.closed()).close, 1009);
  });

  test('a flood is refused with 429, then cut off; others are not slowed', async () => {
    const flooder = await connect('carol');
    const other = await connect('dave');
    for (let i = 0; i < 500; i++) flooder.send({ type: 'ping', id: `f${i}` });
    const frames = await flooder.drain(1500);
    const refused = frames.filter((f) => f.type === 'error' && f.status === 429);
    assert.ok(refused.length >= 1, 'told to slow down');
    assert.match(refused[0].detail, /Too many/);
    const close = frames.find((f) => f.type === '#close');
    assert.ok(close, `cut off; got ${frames.length} frames`);
    assert.equal(close.code, 1008);
    const t0 = Date.now();
    assert.equal((await other.request({ type: 'ping' })).type, 'ok');
    assert.ok(Date.now() - t0 < 1000);
    // chat has its own, lower limit
    const c2 = await connect('carol');
    const answers = [];
    for (let i = 0; i < 40; i++) c2.send({ type: 'chat.send', id: `c${i}`, to: addr('dave'), text: `burst ${i}` });
    for (let i = 0; i < 40; i++) answers.push(await c2.waitFor((f) => f.id === `c${i}`));
    const limited = answers.filter((a) => a.status === 429);
    assert.ok(limited.length >= 5, `${limited.length} of 40 refused`);
    assert.ok(answers.filter((a) => a.type === 'ok').length >= 25);
    c2.close();
    other.close();
  });

  test('a client that does not read is cut off, and nobody else waits for it', async () => {
    const slow = await connect('bob');
    slow.ws.sock.pause(); // reads nothing from now on
    const fast = await connect('alice');
    const senders = [];
    for (const n of ['carol', 'dave', 'erin', 'frank', 'grace']) senders.push(await connect(n), await connect(n));
    const text = 'y'.repeat(16 * 1024);
    let sent = 0;
    const latencies = [];
    const until = Date.now() + 20000;
    // Sends at the chat rate limits until the slow client's queue overflows
    // (1 MiB beyond what the kernel buffers); meanwhile alice's pings keep
    // their round trip short.
    let closedSlow = false;
    const watch = (async () => {
      const r = await srv.api('GET', '/api/v1/presence', { token: admin });
      return r;
    });
    while (Date.now() < until && !closedSlow) {
      await Promise.all(senders.map((s) => s.request({ type: 'chat.send', to: addr('bob'), text }).then((a) => { if (a.type === 'ok') sent++; })));
      const t0 = Date.now();
      await fast.request({ type: 'ping' });
      latencies.push(Date.now() - t0);
      const p = await watch();
      closedSlow = !p.json.users.some((u) => u.user === 'bob');
      await sleep(100);
    }
    assert.ok(closedSlow, `the slow client is still connected after ${sent} messages`);
    latencies.sort((a, b) => a - b);
    assert.ok(latencies[Math.floor(latencies.length * 0.9)] < 250, `ping p90 ${latencies[Math.floor(latencies.length * 0.9)]} ms`);
    // what it missed waits for its next connection
    const again = await connect('bob');
    const first = await again.type('chat', 5000);
    assert.equal(first.text.length, 16 * 1024);
    slow.ws.sock.destroy();
    for (const s of [fast, again, ...senders]) s.close();
  });

  test('contacts: keep, list with presence, search, forget', async () => {
    let r = await srv.api('PUT', `/client/v1/contacts/${addr('bob')}`, { token: tok.carol });
    assert.equal(r.status, 204, r.text);
    r = await srv.api('PUT', '/client/v1/contacts/zed@partner.example', { token: tok.carol });
    assert.equal(r.status, 204, r.text);
    r = await srv.api('PUT', `/client/v1/contacts/${addr('nobody')}`, { token: tok.carol });
    assert.equal(r.status, 404);
    r = await srv.api('PUT', '/client/v1/contacts/not-an-address', { token: tok.carol });
    assert.equal(r.status, 422);
    const b = await connect('bob');
    await b.request({ type: 'presence.set', state: 'busy', note: 'in a call' });
    r = await srv.api('GET', '/client/v1/contacts', { token: tok.carol });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.contacts.map((c) => [c.address, c.state, c.local]), [[addr('bob'), 'busy', true], ['zed@partner.example', 'offline', false]]);
    assert.equal(r.json.contacts[0].display_name, 'Bob');
    assert.equal(r.json.contacts[0].note, 'in a call');
    r = await srv.api('GET', '/client/v1/contacts?q=ali', { token: tok.carol });
    assert.deepEqual(r.json.results.map((x) => x.address), [addr('alice')]);
    r = await srv.api('GET', '/client/v1/contacts?q=a&limit=500', { token: tok.carol });
    assert.equal(r.status, 400);
    r = await srv.api('DELETE', `/client/v1/contacts/${addr('bob')}`, { token: tok.carol });
    assert.equal(r.status, 204);
    r = await srv.api('DELETE', `/client/v1/contacts/${addr('bob')}`, { token: tok.carol });
    assert.equal(r.status, 404);
    r = await srv.api('GET', '/client/v1/contacts', { token: tok.carol });
    assert.deepEqual(r.json.contacts.map((c) => c.address), ['zed@partner.example']);
    r = await srv.api('GET', '/client/v1/contacts');
    assert.equal(r.status, 401);
    b.close();
  });

  test('the journal takes calls from telephony clients, and refuses bad ones', async () => {
    const call = { direction: 'in', peer: '+49 89 1234', started: '2026-11-30T09:15:00+01:00', duration_s: 125, answered: true };
    let r = await srv.api('POST', '/client/v1/journal', { token: tok.dave, body: call });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.kind, 'call');
    assert.equal(r.json.started, '2026-11-30T08:15:00.000Z');
    assert.equal(r.json.duration_s, 125);
    assert.equal(r.json.answered, true);
    const bad = [
      [{ ...call, direction: 'sideways' }, 'direction'],
      [{ ...call, peer: '' }, 'peer'],
      [{ ...call, started: 'yesterday' }, 'started'],
      [{ ...call, started: '2026-02-31T10:00:00Z' }, 'started'],
      [{ ...call, started: '2099-01-01T00:00:00Z' }, 'started'],
      [{ ...call, duration_s: -1 }, 'duration_s'],
      [{ ...call, duration_s: 1.5 }, 'duration_s'],
      [{ ...call, answered: 'yes' }, 'answered'],
      [{ ...call, colour: 'red' }, 'colour'],
    ];
    for (const [body, key] of bad) {
      r = await srv.api('POST', '/client/v1/journal', { token: tok.dave, body });
      assert.equal(r.status, 422, `${key}: ${r.text}`);
      assert.equal(r.json.errors[0].key, key);
    }
    r = await srv.api('GET', '/client/v1/journal?limit=1', { token: tok.dave });
    assert.equal(r.json.entries.length, 1);
    assert.equal(r.json.entries[0].peer, '+49 89 1234');
    r = await srv.api('GET', '/client/v1/journal?limit=0', { token: tok.dave });
    assert.equal(r.status, 400);
  });

  test('admin presence: who is connected, per user and client', async () => {
    const a = await connect('alice', { client: 'web' });
    const a2 = await connect('alice', { ticket: false });
    await a2.request({ type: 'presence.set', state: 'away' });
    const r = await srv.api('GET', '/api/v1/presence', { token: admin });
    assert.equal(r.status, 200, r.text);
    const alice = r.json.users.find((u) => u.user === 'alice');
    assert.equal(alice.address, addr('alice'));
    assert.equal(alice.state, 'available');
    assert.deepEqual(alice.connections.map((c) => c.client).sort(), ['desktop', 'web']);
    assert.ok(r.json.connections >= 2);
    assert.equal((await srv.api('GET', '/api/v1/presence')).status, 401);
    assert.equal((await srv.api('GET', '/api/v1/presence', { token: tok.alice })).status, 401);
    a.close();
    a2.close();
  });

  test('atriumctl presence, retention, retention run and users sign-out', async () => {
    const a = await connect('alice', { client: 'web' });
    await a.request({ type: 'presence.set', state: 'busy', note: 'standup' });
    let c = await ctl(srv, ['presence'], { token: admin });
    assert.equal(c.code, 0, show(c));
    assert.match(c.stdout, /alice@rt\.example {2}busy \("standup"\)/);
    assert.match(c.stdout, /web +from 127\.0\.0\.1/);
    c = await ctl(srv, ['--json', 'presence'], { token: admin });
    assert.equal(c.code, 0, show(c));
    assert.ok(JSON.parse(c.stdout).users.some((u) => u.user === 'alice'));
    c = await ctl(srv, ['presence', 'extra'], { token: admin });
    assert.equal(c.code, 2, show(c));
    c = await ctl(srv, ['retention'], { token: admin });
    assert.equal(c.code, 0, show(c));
    assert.match(c.stdout, /chats +deleted after 90 day\(s\)/);
    assert.match(c.stdout, /journal +deleted after 365 day\(s\)/);
    c = await ctl(srv, ['retention', 'run'], { token: admin });
    assert.equal(c.code, 0, show(c));
    assert.match(c.stdout, /last sweep 20\d\d-/);
    c = await ctl(srv, ['retention', 'sweep'], { token: admin });
    assert.equal(c.code, 2, show(c));
    c = await ctl(srv, ['retention']);
    assert.equal(c.code, 4, show(c));
    c = await ctl(srv, ['users', 'sign-out', 'alice'], { token: admin });
    assert.equal(c.code, 0, show(c));
    assert.match(c.stdout, /signed alice out everywhere: \d+ login\(s\) revoked/);
    assert.equal((await a.type('bye')).reason, 'signed_out');
    c = await ctl(srv, ['users', 'sign-out', 'nobody'], { token: admin });
    assert.equal(c.code, 1, show(c));
    tok.alice = await clientLogin(srv, 'alice', PW);
  });

  test('disabling a user and "sign out everywhere" close that user\'s connections', async () => {
    const g1 = await connect('grace');
    const g2 = await connect('grace', { ticket: false });
    const other = await connect('heidi');
    let r = await srv.api('PATCH', '/api/v1/users/grace', { token: admin, body: { enabled: false } });
    assert.equal(r.status, 200);
    for (const c of [g1, g2]) {
      assert.deepEqual(await c.type('bye'), { type: 'bye', reason: 'disabled' });
      await c.closed();
    }
    await assert.rejects(rtConnect(srv, tok.grace), (e) => e.status === 401);
    r = await srv.api('PATCH', '/api/v1/users/grace', { token: admin, body: { enabled: true } });
    // Disabling revoked the tokens: enabling again needs a new login.
    await assert.rejects(rtConnect(srv, tok.grace), (e) => e.status === 401);
    tok.grace = await clientLogin(srv, 'grace', PW);
    const g3 = await connect('grace', { ticket: false });
    r = await srv.api('POST', '/api/v1/users/grace/sign-out', { token: admin });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.json.revoked_tokens >= 1);
    assert.equal((await g3.type('bye')).reason, 'signed_out');
    await assert.rejects(rtConnect(srv, tok.grace), (e) => e.status === 401, 'the token is revoked');
    assert.equal((await other.request({ type: 'ping' })).type, 'ok', 'others stay');
    r = await srv.api('POST', '/api/v1/users/nobody/sign-out', { token: admin });
    assert.equal(r.status, 404);
    tok.grace = await clientLogin(srv, 'grace', PW);
    other.close();
  });

  test('a client logs out: its token stops; "everywhere" closes every connection', async () => {
    const one = await clientLogin(srv, 'heidi', PW);
    const two = await clientLogin(srv, 'heidi', PW);
    let r = await srv.api('DELETE', '/client/v1/login', { token: one });
    assert.equal(r.status, 204, r.text);
    assert.equal((await srv.api('GET', '/client/v1/me', { token: one })).status, 401);
    assert.equal((await srv.api('GET', '/client/v1/me', { token: two })).status, 200, 'the other login stays');
    r = await srv.api('DELETE', '/client/v1/login?everywhere=yes', { token: two });
    assert.equal(r.status, 400);
    const c = await rtConnect(srv, two, { ticket: false });
    r = await srv.api('DELETE', '/client/v1/login?everywhere=1', { token: two });
    assert.equal(r.status, 204, r.text);
    assert.equal((await c.type('bye')).reason, 'signed_out');
    assert.equal((await srv.api('GET', '/client/v1/me', { token: two })).status, 401);
    assert.equal((await srv.api('GET', '/client/v1/me', { token: tok.heidi })).status, 401, 'every token of the user');
    tok.heidi = await clientLogin(srv, 'heidi', PW);
  });
});

describe('durability', () => {
  test('kill -9 during a burst: every acknowledged message is there after the restart, none twice', async () => {
    let srv = await startServer({ atlas: '<Domain>rt.example</Domain>', keep: true });
    const { tokens } = await seed(srv);
    const senders = [];
    for (const n of ['alice', 'bob', 'carol', 'dave']) senders.push([n, await rtConnect(srv, tokens[n]), await rtConnect(srv, tokens[n])]);
    const acked = new Map(); // text -> message_id
    let killed = false;
    const bursts = senders.flatMap(([n, c1, c2]) => [c1, c2].map(async (c, k) => {
      for (let i = 0; i < 25 && !killed; i++) {
        const text = `${n}-${k}-${i}`;
        c.send({ type: 'chat.send', id: text, to: 'ivan@rt.example', text });
      }
      for (;;) {
        let f;
        try { f = await c.waitFor((x) => x.type === 'ok' || x.type === '#close', 10000); } catch { break; }
        if (f.type !== 'ok') break;
        acked.set(f.id, f.message_id);
      }
    }));
    while (acked.size < 40) await sleep(2);
    killed = true;
    await srv.kill();
    await Promise.all(bursts);
    assert.ok(acked.size >= 40);
    srv = await startServer({ dataDir: srv.dataDir, atlas: '<Domain>rt.example</Domain>' });
    try {
      const ivan = await clientLogin(srv, 'ivan', PW);
      const seen = new Map();
      for (const n of ['alice', 'bob', 'carol', 'dave']) {
        const r = await srv.api('GET', `/client/v1/messages?with=${n}@rt.example&limit=200`, { token: ivan });
        assert.equal(r.status, 200, r.text);
        for (const m of r.json.messages) {
          assert.ok(!seen.has(m.text), `${m.text} stored twice`);
          seen.set(m.text, m.message_id);
        }
      }
      for (const [text, id] of acked) assert.equal(seen.get(text), id, `acknowledged ${text} (${id}) lost`);
      // and ivan gets them all offline, each once, in order per conversation
      const c = await rtConnect(srv, ivan);
      const got = [];
      for (let i = 0; i < seen.size; i++) got.push(await c.type('chat'));
      assert.equal(new Set(got.map((m) => m.message_id)).size, got.length);
      const ids = got.map((m) => Number(m.message_id));
      assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
      c.close();
    } finally {
      await srv.stop();
      await fsp.rm(srv.dir, { recursive: true, force: true });
    }
  });
});

describe('lifecycle with the settings', () => {
  test('the domain change closes every connection; clients reconnect under the new address', async () => {
    const srv = await startServer({ atlas: '<Domain>old.example</Domain>' });
    try {
      const { admin, tokens } = await seed(srv);
      const mobile = await clientLogin(srv, 'bob@old.example', PW, { id: 'phone-b', platform: 'ios' });
      const a = await rtConnect(srv, tokens.alice, { ticket: false });
      const b = await rtConnect(srv, mobile, { ticket: false });
      const w = await rtConnect(srv, tokens.carol);
      await w.request({ type: 'presence.watch', addresses: ['alice@old.example'] });
      assert.equal((await w.type('presence')).state, 'available');
      const r = await srv.api('POST', '/api/v1/domain/change', { token: admin, body: { domain: 'new.example', dry_run: false } });
      assert.equal(r.status, 200, r.text);
      for (const c of [a, b, w]) {
        assert.deepEqual(await c.type('bye'), { type: 'bye', reason: 'domain_changed' });
        assert.equal((await c.closed()).close, 1012);
      }
      const a2 = await rtConnect(srv, tokens.alice, { ticket: false });
      assert.equal(a2.hello.address, 'alice@new.example', 'a desktop token keeps working');
      await assert.rejects(rtConnect(srv, mobile, { ticket: false }), (e) => e.status === 401 && /set up the login again/i.test(e.body));
      const w2 = await rtConnect(srv, tokens.carol);
      await w2.request({ type: 'presence.watch', addresses: ['alice@new.example'] });
      assert.equal((await w2.type('presence')).state, 'available');
      const ok = await w2.request({ type: 'chat.send', to: 'alice@new.example', text: 'new domain' });
      assert.equal(ok.type, 'ok');
      assert.equal((await a2.type('chat')).from, 'carol@new.example');
      const old = await w2.request({ type: 'chat.send', to: 'alice@old.example', text: 'old domain' });
      assert.equal(old.status, 503, 'the old domain is not ours any more: it would need federation');
      a2.close();
      w2.close();
    } finally {
      await srv.stop();
    }
  });

  test('shutdown says bye and closes with 1001', async () => {
    const srv = await startServer();
    const { tokens } = await seed(srv);
    const c = await rtConnect(srv, tokens.alice);
    const stopping = srv.stop();
    assert.deepEqual(await c.type('bye'), { type: 'bye', reason: 'shutdown' });
    assert.equal((await c.closed()).close, 1001);
    assert.equal(await stopping, 0);
  });
});
