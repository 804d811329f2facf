// SIP federation end to end: atriumd's SIP-over-TLS listener on 127.0.15.1
// against a partner domain (partner.test) whose server is a scripted TLS
// endpoint on 127.0.15.2 (peers/sip.mjs), its SRV records in dnsmasq on
// 127.0.15.3, every certificate from one test CA. Presence both ways
// (SUBSCRIBE/NOTIFY with PIDF), consent, chat both ways (MESSAGE), the
// certificate-name binding (RFC 5922), the switch, and bad input.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { ctl, freeUdpPort, show, startServer } from './harness.mjs';
import { makePki, pidf, startDnsmasq, startSipPeer } from './peers/sip.mjs';
import { clientLogin, rtConnect } from './rt-client.mjs';

const OURS = '127.0.15.1';
const PARTNER = '127.0.15.2';
const DNS = '127.0.15.3';
const PW = 'fed-test-pass-1';

// What the partner's server answers on its own: NOTIFYs and OPTIONS pings.
const partnerReplies = (m) => (m.method === 'NOTIFY' || m.method === 'OPTIONS' ? [200, 'OK'] : null);

describe('SIP federation', () => {
  let pki, peer, dns, srv, admin, tok, sipPort, sock;
  const open = [];
  const connect = async (name) => { const c = await rtConnect(srv, tok[name]); open.push(c); return c; };
  const settings = (body) => srv.api('PATCH', '/api/v1/settings', { token: admin, body });
  const subscribe = (s, user, o = {}) => peer.request(s ?? sock, 'SUBSCRIBE', `sip:${user}@atrium.test`, {
    from: o.from ?? 'bob@partner.test', to: `${user}@atrium.test`, callId: o.callId, cseq: o.cseq ?? 1,
    fromTag: o.fromTag, toTag: o.toTag,
    headers: {
      Event: o.event ?? 'presence', Expires: String(o.expires ?? 600),
      Contact: `<sip:bob@${PARTNER}:${peer.port};transport=tls>`, Accept: 'application/pidf+xml',
    },
  });
  const notifyFor = (user, pred = () => true, ms = 5000) => peer.waitRequest(
    (m) => m.method === 'NOTIFY' && m.h('from')?.includes(`${user}@atrium.test`) && pred(m), ms, `NOTIFY for ${user}`);

  before(async () => {
    pki = await makePki({
      ours: ['DNS:sip.atrium.test', 'DNS:atrium.test', `IP:${OURS}`],
      partner: ['DNS:partner.test', 'DNS:sip.partner.test', `IP:${PARTNER}`],
      evil: ['DNS:evil.test', `IP:${PARTNER}`],
    });
    peer = await startSipPeer({ host: PARTNER, cert: pki.partner.cert, key: pki.partner.key, ca: pki.ca });
    const dnsPort = await freeUdpPort();
    sipPort = await freeUdpPort(); // free for TCP too in practice; the server says if not
    dns = await startDnsmasq(DNS, dnsPort, {
      srv: [
        ['_sipfederationtls._tcp.partner.test', 'sip.partner.test', peer.port],
        ['_sipfederationtls._tcp.evil.test', 'sip.partner.test', peer.port], // a server that is not evil.test's
        ['_sipfederationtls._tcp.atrium.test', 'sip.atrium.test', sipPort],
      ],
      a: [['sip.partner.test', PARTNER], ['sip.atrium.test', OURS]],
    });
    srv = await startServer({
      atlas: '<Domain>atrium.test</Domain>'
        + `<Federation address="${OURS}" port="${sipPort}" certificate="${pki.ours.certPath}" key="${pki.ours.keyPath}" ca="${pki.caPath}" resolver="${DNS}:${dnsPort}"/>`,
    });
    await srv.waitOutput(/SIP over TLS listening/);
    admin = await srv.login();
    const r = await srv.api('POST', '/api/v1/users/import', {
      token: admin, body: ['alice', 'carol', 'dave', 'heidi'].map((name) => ({ name, password: PW })),
    });
    assert.equal(r.status, 200, r.text);
    tok = {};
    for (const n of ['alice', 'carol', 'dave', 'heidi']) tok[n] = await clientLogin(srv, n, PW);
    sock = await peer.connect(OURS, sipPort);
    // NOTIFYs are answered 200 as a partner does; the tests look at them.
    peer.setAutoReply(partnerReplies);
  });

  after(async () => {
    for (const c of open) c.close();
    if (srv) await srv.stop();
    if (peer) await peer.close();
    if (dns) await dns.stop();
    if (pki) await pki.remove();
  });

  test('TLS: no client certificate, or TLS 1.1, is refused', async () => {
    // TLS 1.3 reports a missing certificate after the client's handshake:
    // the connection is closed before any SIP is answered.
    const bare = await peer.connect(OURS, sipPort, { cert: null, key: null }).catch(() => null);
    if (bare) {
      await assert.rejects(peer.request(bare, 'OPTIONS', 'sip:atrium.test', { from: 'bob@partner.test', to: 'atrium.test' }, 2000));
      assert.ok(bare.destroyed || bare.readyState !== 'open');
    }
    await assert.rejects(peer.connect(OURS, sipPort, { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1' }));
    // With our CA's certificate, OPTIONS is answered (the federation ping).
    const r = await peer.request(sock, 'OPTIONS', 'sip:atrium.test', { from: 'bob@partner.test', to: 'atrium.test' });
    assert.equal(r.status, 200);
    assert.match(r.h('allow'), /MESSAGE/);
  });

  test('federation off: a new SUBSCRIBE is 403 with a Warning', async () => {
    const r = await subscribe(sock, 'alice');
    assert.equal(r.status, 403);
    assert.match(r.h('warning'), /^399 \S+ "Federation is switched off/);
    const st = await srv.api('GET', '/api/v1/federation/status', { token: admin });
    assert.equal(st.status, 200, st.text);
    assert.equal(st.json.enabled, false);
    assert.equal(st.json.running, true);
    assert.ok(st.json.counters && st.json.refused.switched_off >= 1, st.text);
  });

  test('switched on: SUBSCRIBE gets 202 and a pending NOTIFY until the user allows', async () => {
    assert.equal((await settings({ 'federation.enabled': true })).status, 200);
    const r = await subscribe(sock, 'alice');
    assert.equal(r.status, 202, r.start);
    assert.match(r.h('expires'), /^\d+$/);
    const n = await notifyFor('alice');
    assert.match(n.h('subscription-state'), /^pending;expires=\d+/);
    assert.equal(n.body, '');
    assert.equal(n.h('event'), 'presence');
    // The user sees who asked, and allows.
    const w = await srv.api('GET', '/client/v1/federation/watchers', { token: tok.alice });
    assert.equal(w.status, 200, w.text);
    assert.deepEqual(w.json.watchers.map((x) => [x.address, x.state]), [['bob@partner.test', 'pending']]);
    const bad = await srv.api('PUT', '/client/v1/federation/watchers/bob@partner.test', { token: tok.alice, body: { allow: 'yes' } });
    assert.equal(bad.status, 422);
    assert.equal(bad.json.errors[0].key, 'allow');
    const ok = await srv.api('PUT', '/client/v1/federation/watchers/bob@partner.test', { token: tok.alice, body: { allow: true } });
    assert.equal(ok.status, 200, ok.text);
    const a = await notifyFor('alice', (m) => /^active/.test(m.h('subscription-state')));
    assert.equal(a.h('content-type'), 'application/pidf+xml');
    assert.match(a.body, /entity="pres:alice@atrium.test"/);
    assert.match(a.body, /<basic>closed<\/basic>/); // alice has no client connected
  });

  test('a local presence change reaches the remote watcher within a second', async () => {
    const c = await connect('alice');
    const t0 = Date.now();
    assert.equal((await c.request({ type: 'presence.set', state: 'busy', note: 'in a <meeting> & more' })).type, 'ok');
    const n = await notifyFor('alice', (m) => /rpid:busy/.test(m.body), 1000);
    assert.ok(Date.now() - t0 < 1000);
    assert.match(n.body, /<basic>open<\/basic>/);
    assert.match(n.body, /<note>in a &lt;meeting&gt; &amp; more<\/note>/);
  });

  test('the From domain must be a name of the peer certificate (RFC 5922)', async () => {
    // partner.test's certificate, a From of evil.test
    let r = await subscribe(sock, 'carol', { from: 'mallory@evil.test' });
    assert.equal(r.status, 403);
    assert.match(r.h('warning'), /certificate/);
    // evil.test's certificate (same CA), a From of partner.test
    const evil = await peer.connect(OURS, sipPort, { cert: pki.evil.cert, key: pki.evil.key });
    r = await subscribe(evil, 'carol');
    assert.equal(r.status, 403);
    assert.match(r.h('warning'), /certificate/);
    evil.destroy();
  });

  test('bad requests: unknown user 404, other event 489, too short 423', async () => {
    assert.equal((await subscribe(sock, 'nobody')).status, 404);
    assert.equal((await subscribe(sock, 'carol', { event: 'dialog' })).status, 489);
    const r = await subscribe(sock, 'carol', { expires: 5 });
    assert.equal(r.status, 423);
    assert.equal(r.h('min-expires'), '60');
  });

  test('a local watch of a federated address becomes a SUBSCRIBE found by SRV; its NOTIFY is a presence frame', async () => {
    const c = await connect('carol');
    await c.request({ type: 'presence.watch', addresses: ['erin@partner.test'] });
    const s = await peer.waitRequest((m) => m.method === 'SUBSCRIBE' && m.uri === 'sip:erin@partner.test', 8000, 'SUBSCRIBE from atriumd');
    assert.equal(s.h('event'), 'presence');
    assert.match(s.h('from'), /@atrium\.test>/);
    const fromTag = 'ptag' + Date.now();
    peer.reply(s, 200, 'OK', { Expires: '600', Contact: `<sip:erin@${PARTNER}:${peer.port};transport=tls>` }, '', undefined, fromTag);
    // The partner's NOTIFY, on a connection of its own (as partners do).
    const back = await peer.connect(OURS, sipPort);
    const toTag = /tag=([^;>]+)/.exec(s.h('from'))[1];
    const body = pidf('erin@partner.test', { activity: 'away', note: 'lunch' });
    const r = await peer.request(back, 'NOTIFY', /<([^>]+)>/.exec(s.h('contact'))[1], {
      from: 'erin@partner.test', to: /<sip:([^>]+)>/.exec(s.h('from'))[1], callId: s.h('call-id'), fromTag, toTag,
      headers: { Event: 'presence', 'Subscription-State': 'active;expires=600' },
      body, contentType: 'application/pidf+xml',
    });
    assert.equal(r.status, 200, r.start);
    const f = await c.type('presence', 3000, (x) => x.address === 'erin@partner.test' && x.state === 'away');
    assert.equal(f.note, 'lunch');
    // A DOCTYPE (entity expansion) is refused and changes nothing.
    const evil = '<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x "busy">]>' + pidf('erin@partner.test').replace('<?xml version="1.0" encoding="UTF-8"?>\n', '');
    const r2 = await peer.request(back, 'NOTIFY', /<([^>]+)>/.exec(s.h('contact'))[1], {
      from: 'erin@partner.test', to: /<sip:([^>]+)>/.exec(s.h('from'))[1], callId: s.h('call-id'), fromTag, toTag, cseq: 2,
      headers: { Event: 'presence', 'Subscription-State': 'active;expires=600' }, body: evil, contentType: 'application/pidf+xml',
    });
    assert.equal(r2.status, 400);
    assert.match(r2.h('warning'), /DOCTYPE/);
    // Another entity is refused.
    const r3 = await peer.request(back, 'NOTIFY', /<([^>]+)>/.exec(s.h('contact'))[1], {
      from: 'erin@partner.test', to: /<sip:([^>]+)>/.exec(s.h('from'))[1], callId: s.h('call-id'), fromTag, toTag, cseq: 3,
      headers: { Event: 'presence', 'Subscription-State': 'active;expires=600' }, body: pidf('boss@partner.test'), contentType: 'application/pidf+xml',
    });
    assert.equal(r3.status, 400);
    assert.match(r3.h('warning'), /speaks for/);
    back.destroy();
  });

  test('chat out: the sender hears ok only after the partner answered 2xx', async () => {
    const c = await connect('dave');
    const id = 'm' + Date.now();
    c.send({ type: 'chat.send', id, to: 'frank@partner.test', text: 'hello partner' });
    const m = await peer.waitRequest((x) => x.method === 'MESSAGE' && x.uri === 'sip:frank@partner.test', 8000, 'MESSAGE');
    assert.equal(m.body, 'hello partner');
    assert.match(m.h('from'), /<sip:dave@atrium\.test>/);
    assert.match(m.h('content-type'), /^text\/plain/);
    // nothing yet
    await assert.rejects(c.waitFor((f) => f.id === id, 300));
    peer.reply(m, 200);
    const ok = await c.waitFor((f) => f.id === id, 3000);
    assert.equal(ok.type, 'ok');
    assert.match(ok.message_id, /^\d+$/);
  });

  test('chat out: a partner that keeps failing makes the send fail after bounded retries', async () => {
    const c = await connect('heidi');
    const id = 'f' + Date.now();
    let tries = 0;
    peer.setAutoReply((x) => (x.method === 'NOTIFY' || x.method === 'OPTIONS' ? [200, 'OK'] : x.method === 'MESSAGE' && x.uri === 'sip:gina@partner.test' ? (tries++, [503, 'Service Unavailable']) : null));
    c.send({ type: 'chat.send', id, to: 'gina@partner.test', text: 'anyone?' });
    const err = await c.waitFor((f) => f.id === id, 10000);
    peer.setAutoReply(partnerReplies);
    assert.equal(err.type, 'error');
    assert.equal(err.status, 502);
    assert.equal(tries, 3);
  });

  test('chat out: a partner that refuses makes the send fail at once', async () => {
    const c = await connect('heidi');
    const id = 'r' + Date.now();
    peer.setAutoReply((x) => (x.method === 'NOTIFY' || x.method === 'OPTIONS' ? [200, 'OK'] : x.method === 'MESSAGE' && x.uri === 'sip:ivan@partner.test' ? [404, 'Not Found'] : null));
    c.send({ type: 'chat.send', id, to: 'ivan@partner.test', text: 'hello?' });
    const err = await c.waitFor((f) => f.id === id, 5000);
    peer.setAutoReply(partnerReplies);
    assert.equal(err.type, 'error');
    assert.equal(err.status, 404);
  });

  test('chat in: a MESSAGE is stored and delivered, then answered 200', async () => {
    const c = await connect('carol');
    const r = await peer.request(sock, 'MESSAGE', 'sip:carol@atrium.test', {
      from: 'bob@partner.test', to: 'carol@atrium.test', body: 'hi carol',
    });
    assert.equal(r.status, 200, r.start);
    const f = await c.type('chat', 3000, (x) => x.from === 'bob@partner.test');
    assert.equal(f.text, 'hi carol');
    assert.equal(f.to, 'carol@atrium.test');
    const big = await peer.request(sock, 'MESSAGE', 'sip:carol@atrium.test', {
      from: 'bob@partner.test', to: 'carol@atrium.test', body: 'x'.repeat(17000),
    });
    assert.equal(big.status, 413);
    const html = await peer.request(sock, 'MESSAGE', 'sip:carol@atrium.test', {
      from: 'bob@partner.test', to: 'carol@atrium.test', body: '<b>x</b>', contentType: 'text/html',
    });
    assert.equal(html.status, 415);
  });

  test('federation off ends every subscription (deactivated); on, new ones work again', async () => {
    assert.equal((await settings({ 'federation.enabled': false })).status, 200);
    const n = await notifyFor('alice', (m) => /^terminated/.test(m.h('subscription-state')));
    assert.equal(n.h('subscription-state'), 'terminated;reason=deactivated');
    assert.equal((await subscribe(sock, 'alice')).status, 403);
    assert.equal((await settings({ 'federation.enabled': true })).status, 200);
    const r = await subscribe(sock, 'alice');
    assert.equal(r.status, 202);
    const a = await notifyFor('alice', (m) => m.h('call-id') === r.h('call-id') && /^active/.test(m.h('subscription-state')));
    assert.match(a.body, /rpid:busy/);
  });

  test('self-test: every step passes with a partner set up right, one sentence per failing step', async () => {
    assert.equal((await settings({ 'federation.fqdn': 'sip.atrium.test' })).status, 200);
    let r = await srv.api('POST', '/api/v1/federation/test', { token: admin, body: { domain: 'partner.test' } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.steps.map((x) => [x.step, x.ok]),
      [['our_dns', true], ['certificate', true], ['partner_dns', true], ['tls', true], ['options', true]], r.text);
    assert.equal(r.json.ok, true);
    // A domain with no records: said, and the network steps not tried.
    r = await srv.api('POST', '/api/v1/federation/test', { token: admin, body: { domain: 'nowhere.test' } });
    assert.equal(r.json.ok, false);
    const dnsStep = r.json.steps.find((x) => x.step === 'partner_dns');
    assert.equal(dnsStep.ok, false);
    assert.match(dnsStep.sentence, /nowhere\.test has no _sipfederationtls\._tcp or _sips\._tcp SRV record/);
    assert.equal(r.json.steps.find((x) => x.step === 'tls').ok, null);
    // A server whose certificate does not name the domain.
    r = await srv.api('POST', '/api/v1/federation/test', { token: admin, body: { domain: 'evil.test' } });
    const tls = r.json.steps.find((x) => x.step === 'tls');
    assert.equal(tls.ok, false, r.text);
    assert.match(tls.sentence, /not accepted for evil\.test/);
    // Our certificate against another FQDN.
    assert.equal((await settings({ 'federation.fqdn': 'atrium.test' })).status, 200);
    r = await srv.api('POST', '/api/v1/federation/test', { token: admin, body: { domain: 'partner.test' } });
    const ours = r.json.steps.find((x) => x.step === 'our_dns');
    assert.equal(ours.ok, false);
    assert.match(ours.sentence, /points at sip\.atrium\.test, not at the federation FQDN atrium\.test/);
    assert.equal((await settings({ 'federation.fqdn': 'sip.atrium.test' })).status, 200);
    // Bad input changes nothing.
    r = await srv.api('POST', '/api/v1/federation/test', { token: admin, body: { domain: 'not a domain' } });
    assert.equal(r.status, 422);
    assert.equal(r.json.errors[0].key, 'domain');
    r = await srv.api('POST', '/api/v1/federation/test', { token: admin, body: { domain: 'partner.test', port: 1 } });
    assert.equal(r.status, 422);
    assert.equal(r.json.errors[0].key, 'port');
    // The CLI: one line per step, exit 0 / 1.
    let c = await ctl(srv, ['federation', 'test', 'partner.test'], { token: admin });
    assert.equal(c.code, 0, show(c));
    assert.match(c.stdout, /^options\s+ok\s+partner\.test answered OPTIONS with 200/m);
    c = await ctl(srv, ['federation', 'test', 'nowhere.test'], { token: admin });
    assert.equal(c.code, 1, show(c));
    assert.match(c.stdout, /^partner_dns\s+FAILED\s+nowhere\.test has no/m);
    assert.match(c.stdout, /^tls\s+skipped/m);
    c = await ctl(srv, ['federation', 'status'], { token: admin });
    assert.equal(c.code, 0, show(c));
    assert.match(c.stdout, /^enabled:\s+yes/m);
    assert.match(c.stdout, /partners seen:.*partner\.test/);
  });

  test('partner lists: a blocked or not allowed domain gets 403 and nothing is sent to it', async () => {
    let r = await settings({ 'federation.blocked_domains': ['Partner.TEST'] });
    assert.equal(r.status, 200, r.text);
    let a = await subscribe(sock, 'carol');
    assert.equal(a.status, 403);
    assert.match(a.h('warning'), /does not federate with your domain/);
    const c = await connect('heidi');
    const id = 'b' + Date.now();
    c.send({ type: 'chat.send', id, to: 'kim@partner.test', text: 'blocked?' });
    const err = await c.waitFor((f) => f.id === id, 5000);
    assert.equal(err.type, 'error');
    assert.equal(err.status, 403);
    // An allow list that does not name the domain is the same; one that does lets it in.
    r = await settings({ 'federation.blocked_domains': [], 'federation.allowed_domains': ['other.test'] });
    assert.equal(r.status, 200, r.text);
    assert.equal((await subscribe(sock, 'carol')).status, 403);
    r = await settings({ 'federation.allowed_domains': ['other.test', 'partner.test'] });
    assert.equal(r.status, 200, r.text);
    a = await subscribe(sock, 'carol', { expires: 0 }); // a fetch: 202 and a final NOTIFY
    assert.equal(a.status, 202);
    // Bad lists are refused and change nothing.
    r = await settings({ 'federation.allowed_domains': ['not a domain'] });
    assert.equal(r.status, 422);
    r = await settings({ 'federation.blocked_domains': 'partner.test' });
    assert.equal(r.status, 422);
    r = await settings({ 'federation.allowed_domains': [] });
    assert.equal(r.status, 200);
    const st = await srv.api('GET', '/api/v1/federation/status', { token: admin });
    assert.ok(st.json.refused.policy >= 2, st.text);
  });

  test('the domain change, then federation on: subscriptions re-created from the new addresses, 301 for the old', async () => {
    assert.equal((await settings({ 'federation.enabled': false })).status, 200);
    await notifyFor('alice', (m) => m.h('subscription-state') === 'terminated;reason=deactivated');
    const preview = await srv.api('POST', '/api/v1/domain/change', { token: admin, body: { domain: 'newco.test', dry_run: true } });
    assert.equal(preview.status, 200, preview.text);
    // bob@partner.test watches alice (allowed) and asked about carol (pending)
    const expected = preview.json.subscriptions;
    assert.equal(expected, 2, preview.text);
    const done = await srv.api('POST', '/api/v1/domain/change', { token: admin, body: { domain: 'newco.test', dry_run: false } });
    assert.equal(done.status, 200, done.text);
    assert.equal((await settings({ 'federation.enabled': true })).status, 200);
    // The partner hears the new addresses: a SUBSCRIBE from each to the watcher.
    const froms = [];
    for (let i = 0; i < expected; i++) {
      const s = await peer.waitRequest((m) => m.method === 'SUBSCRIBE' && m.uri === 'sip:bob@partner.test', 8000, 're-created SUBSCRIBE');
      froms.push(/<sip:([^>]+)>/.exec(s.h('from'))[1]);
      peer.reply(s, 200, 'OK', { Expires: '600' });
    }
    assert.deepEqual(froms.sort(), ['alice@newco.test', 'carol@newco.test']);
    // as many as the preview said, and no more
    await assert.rejects(peer.waitRequest((m) => m.method === 'SUBSCRIBE' && m.uri === 'sip:bob@partner.test', 1500));
    // A watch made again after the clients reconnected goes out from the new domain.
    const c = await connect('carol');
    assert.equal(c.hello.address, 'carol@newco.test');
    await c.request({ type: 'presence.watch', addresses: ['erin@partner.test'] });
    const w = await peer.waitRequest((m) => m.method === 'SUBSCRIBE' && m.uri === 'sip:erin@partner.test' && /newco\.test/.test(m.h('from')), 8000, 'SUBSCRIBE from newco.test');
    peer.reply(w, 200, 'OK', { Expires: '600' });
    // The old address is redirected during the grace period.
    const r = await subscribe(sock, 'alice');
    assert.equal(r.status, 301, r.start);
    assert.equal(r.h('contact'), '<sip:alice@newco.test>');
    const m = await peer.request(sock, 'MESSAGE', 'sip:carol@atrium.test', { from: 'bob@partner.test', to: 'carol@atrium.test', body: 'still there?' });
    assert.equal(m.status, 301);
    // The new address works.
    const n = await peer.request(sock, 'SUBSCRIBE', 'sip:alice@newco.test', {
      from: 'bob@partner.test', to: 'alice@newco.test',
      headers: { Event: 'presence', Expires: '600', Contact: `<sip:bob@${PARTNER}:${peer.port};transport=tls>` },
    });
    assert.equal(n.status, 202);
    const a = await peer.waitRequest((x) => x.method === 'NOTIFY' && x.h('call-id') === n.h('call-id') && /^active/.test(x.h('subscription-state')), 5000, 'NOTIFY for the new address');
    assert.match(a.body, /entity="pres:alice@newco.test"/);
    const st = await srv.api('GET', '/api/v1/federation/status', { token: admin });
    assert.equal(st.json.counters.recreated, expected, st.text);
    assert.ok(st.json.counters.redirected >= 2, st.text);
  });

  test('status and metrics say what runs', async () => {
    const st = await srv.api('GET', '/api/v1/federation/status', { token: admin });
    assert.equal(st.status, 200);
    assert.equal(st.json.enabled, true);
    assert.ok(st.json.peers.includes('partner.test'), st.text);
    assert.ok(st.json.counters.notify_sent >= 4, st.text);
    assert.ok(st.json.refused.certificate >= 2, st.text);
    const m = await srv.api('GET', '/metrics', { token: admin });
    assert.match(m.text, /atrium_federation_refused_total\{reason="certificate"\} [1-9]/);
    assert.match(m.text, /atrium_federation_messages_total\{direction="in"\} [1-9]/);
  });
});
