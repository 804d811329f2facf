// SIP federation against real peers from Debian: baresip as a user of the
// partner domain (partner.test) on 127.0.15.2, over mutual TLS with a
// certificate of the test CA, finding atriumd (127.0.15.1) by SRV in
// dnsmasq (127.0.15.3), as atriumd finds it. baresip subscribes to a local
// user with ;presence=p2p, and receives and sends MESSAGE. kamailio on
// 127.0.15.4 is the presence server of a second partner (kam.test): a local
// user's watch goes to it, and what its users PUBLISH (sipsak, over UDP)
// comes back as NOTIFYs.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { freePort, freeUdpPort, sleep, startServer } from './harness.mjs';
import { startKamailio } from './peers/kamailio.mjs';
import { makePki, pidf, startDnsmasq } from './peers/sip.mjs';
import { clientLogin, rtConnect } from './rt-client.mjs';

const OURS = '127.0.15.1';
const PARTNER = '127.0.15.2';
const DNS = '127.0.15.3';
const KAM = '127.0.15.4';
const PW = 'fed-peers-pass-1';

/** baresip with a config directory of its own; resolves {output, waitOutput, command, stop}. */
async function startBaresip(dir, { sipPort, ctrlPort, certBoth, ca, dns, contacts }) {
  await fsp.mkdir(dir, { recursive: true });
  await fsp.writeFile(path.join(dir, 'config'), [
    `sip_listen ${PARTNER}:${sipPort}`, `sip_certificate ${certBoth}`, `sip_cafile ${ca}`,
    `dns_server ${dns}`, 'module_path /usr/lib/baresip/modules',
    'module account.so', 'module contact.so', 'module presence.so', 'module menu.so',
    'module ctrl_tcp.so', `ctrl_tcp_listen ${PARTNER}:${ctrlPort}`,
    'audio_player none', 'audio_source none', '',
  ].join('\n'));
  // No registrar: the partner's user talks to us directly (presence=p2p).
  await fsp.writeFile(path.join(dir, 'accounts'), '<sip:bob@partner.test;transport=tls>;regint=0;pubint=0\n');
  await fsp.writeFile(path.join(dir, 'contacts'), contacts.join('\n') + '\n');
  const proc = spawn('baresip', ['-f', dir], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  // Colours off: the tests read what it says.
  const plain = (d) => String(d).replace(/\x1b\[[0-9;]*m/g, '');
  proc.stdout.on('data', (d) => { out += plain(d); });
  proc.stderr.on('data', (d) => { out += plain(d); });
  const b = {
    output: () => out,
    async waitOutput(re, ms = 5000) {
      const until = Date.now() + ms;
      while (!re.test(out) && Date.now() < until && proc.exitCode === null) await sleep(20);
      if (!re.test(out)) throw new Error(`baresip did not print ${re} within ${ms} ms:\n${out.slice(-3000)}`);
      return out;
    },
    /** A command through ctrl_tcp (a netstring of JSON). */
    async command(command, params) {
      const s = net.connect(ctrlPort, PARTNER);
      await new Promise((res, rej) => { s.once('connect', res); s.once('error', rej); });
      const body = JSON.stringify({ command, params, token: 't1' });
      s.write(`${Buffer.byteLength(body)}:${body},`);
      let reply = '';
      s.on('data', (d) => { reply += d; });
      const until = Date.now() + 3000;
      while (!/"response"/.test(reply) && Date.now() < until) await sleep(20);
      s.destroy();
      return reply;
    },
    async stop() {
      if (proc.exitCode !== null) return;
      proc.kill('SIGTERM');
      await new Promise((r) => { const t = setTimeout(() => { proc.kill('SIGKILL'); r(); }, 3000); proc.once('exit', () => { clearTimeout(t); r(); }); });
    },
  };
  await b.waitOutput(/baresip is ready/);
  return b;
}

describe('SIP federation with baresip and kamailio', () => {
  let pki, dns, srv, admin, tok, baresip, kam, kamUdp;
  const open = [];

  before(async () => {
    pki = await makePki({
      ours: ['DNS:sip.atrium.test', 'DNS:atrium.test', `IP:${OURS}`],
      partner: ['DNS:partner.test', 'DNS:sip.partner.test', `IP:${PARTNER}`],
      kam: ['DNS:kam.test', 'DNS:sip.kam.test', `IP:${KAM}`],
    });
    const both = path.join(pki.dir, 'partner-both.pem');
    await fsp.writeFile(both, Buffer.concat([pki.partner.cert, pki.partner.key]));
    const sipPort = await freePort();
    const bsPort = await freePort();
    const ctrlPort = await freePort();
    const dnsPort = await freeUdpPort();
    const kamTls = await freePort();
    kamUdp = await freeUdpPort();
    dns = await startDnsmasq(DNS, dnsPort, {
      srv: [
        ['_sips._tcp.atrium.test', 'sip.atrium.test', sipPort],
        // baresip takes TLS on the port after sip_listen's
        ['_sipfederationtls._tcp.partner.test', 'sip.partner.test', bsPort + 1],
        ['_sipfederationtls._tcp.kam.test', 'sip.kam.test', kamTls],
      ],
      a: [['sip.atrium.test', OURS], ['sip.partner.test', PARTNER], ['sip.kam.test', KAM]],
    });
    srv = await startServer({
      atlas: '<Domain>atrium.test</Domain>'
        + `<Federation address="${OURS}" port="${sipPort}" certificate="${pki.ours.certPath}" key="${pki.ours.keyPath}" ca="${pki.caPath}" resolver="${DNS}:${dnsPort}"/>`,
    });
    await srv.waitOutput(/SIP over TLS listening/);
    admin = await srv.login();
    assert.equal((await srv.api('POST', '/api/v1/users/import', { token: admin, body: [{ name: 'alice', password: PW }] })).status, 200);
    assert.equal((await srv.api('PATCH', '/api/v1/settings', { token: admin, body: { 'federation.enabled': true } })).status, 200);
    tok = { alice: await clientLogin(srv, 'alice', PW) };
    // alice lets bob see her presence before he asks.
    const ok = await srv.api('PUT', '/client/v1/federation/watchers/bob@partner.test', { token: tok.alice, body: { allow: true } });
    assert.equal(ok.status, 200, ok.text);
    kam = await startKamailio({
      dir: path.join(pki.dir, 'kamailio'), address: KAM, udpPort: kamUdp, tlsPort: kamTls,
      domain: 'kam.test', cert: pki.kam.certPath, key: pki.kam.keyPath, ca: pki.caPath,
    });
    baresip = await startBaresip(path.join(pki.dir, 'baresip'), {
      sipPort: bsPort, ctrlPort, certBoth: both, ca: pki.caPath, dns: `${DNS}:${dnsPort}`,
      contacts: ['"Alice" <sip:alice@atrium.test;transport=tls>;presence=p2p'],
    });
  });

  after(async () => {
    for (const c of open) c.close();
    if (baresip) await baresip.stop();
    if (kam) await kam.stop();
    if (srv) await srv.stop();
    if (dns) await dns.stop();
    if (pki) await pki.remove();
  });

  test('baresip subscribes by SRV over mutual TLS and sees alice come online and turn busy within a second', async () => {
    // the subscription arrives and is active
    const until = Date.now() + 8000;
    let st;
    while (Date.now() < until) {
      st = await srv.api('GET', '/api/v1/federation/status', { token: admin });
      if (st.json.inbound.active >= 1) break;
      await sleep(100);
    }
    assert.ok(st.json.inbound.active >= 1, st.text);
    const c = await rtConnect(srv, tok.alice);
    open.push(c);
    await baresip.waitOutput(/<sip:alice@atrium\.test[^>]*> changed status from Offline to Online/, 3000);
    const t0 = Date.now();
    assert.equal((await c.request({ type: 'presence.set', state: 'busy' })).type, 'ok');
    await baresip.waitOutput(/<sip:alice@atrium\.test[^>]*> changed status from Online to Busy/, 1000);
    assert.ok(Date.now() - t0 < 1000);
  });

  test('chat to baresip: the sender hears ok once baresip answered', async () => {
    const c = await rtConnect(srv, tok.alice);
    open.push(c);
    const r = await c.request({ type: 'chat.send', to: 'bob@partner.test', text: 'hello baresip' }, 10000).catch((e) => {
      throw new Error(`${e.message}\natriumd:\n${srv.output().slice(-8000)}\nbaresip:\n${baresip.output().slice(-2000)}`);
    });
    assert.equal(r.type, 'ok', JSON.stringify(r));
    // baresip 1.0 answers 200 without printing the text; the ok is that answer.
    const st = await srv.api('GET', '/api/v1/federation/status', { token: admin });
    assert.equal(st.json.counters.messages_out, 1, st.text);
  });

  test('chat from baresip arrives as a chat frame', async () => {
    const c = await rtConnect(srv, tok.alice);
    open.push(c);
    const reply = await baresip.command('message', 'hello atrium');
    const f = await c.type('chat', 5000, (x) => x.from === 'bob@partner.test').catch((e) => {
      throw new Error(`${e.message}\nctrl_tcp: ${reply}\nbaresip:\n${baresip.output().slice(-2000)}`);
    });
    assert.equal(f.text, 'hello atrium');
  });

  test('kamailio as the partner\'s presence server: a watch becomes its subscription, a PUBLISH there a presence frame here', async () => {
    const c = await rtConnect(srv, tok.alice);
    open.push(c);
    await c.request({ type: 'presence.watch', addresses: ['erin@kam.test'] });
    await kam.waitOutput(/kamailio: SUBSCRIBE sip:erin@kam\.test from sip:presence@atrium\.test via tls/, 8000);
    const until = Date.now() + 8000;
    let st;
    while (Date.now() < until) {
      st = await srv.api('GET', '/api/v1/federation/status', { token: admin });
      if (st.json.outbound.active >= 1) break;
      await sleep(100);
    }
    assert.ok(st.json.outbound.active >= 1, st.text);
    // erin's client publishes to her own server (sipsak over UDP, as a user there would).
    const body = pidf('erin@kam.test', { activity: 'away', note: 'at lunch' });
    const file = path.join(pki.dir, 'publish.sip');
    await fsp.writeFile(file, [
      'PUBLISH sip:erin@kam.test SIP/2.0', 'From: <sip:erin@kam.test>;tag=pub1', 'To: <sip:erin@kam.test>',
      'Call-ID: publish-erin@kam.test', 'CSeq: 1 PUBLISH', 'Max-Forwards: 70', 'Event: presence',
      'Expires: 600', 'Content-Type: application/pidf+xml', `Content-Length: ${Buffer.byteLength(body)}`, '', body,
    ].join('\r\n'));
    const t0 = Date.now();
    const sent = await new Promise((res) => execFile('sipsak', ['-f', file, '-s', `sip:erin@${KAM}:${kamUdp}`, '-vv'],
      { timeout: 10000 }, (err, stdout, stderr) => res({ err, out: stdout + stderr })));
    assert.match(sent.out, /200 OK/, sent.out);
    const f = await c.type('presence', 3000, (x) => x.address === 'erin@kam.test' && x.state === 'away');
    assert.equal(f.note, 'at lunch');
    assert.ok(Date.now() - t0 < 1500, `${Date.now() - t0} ms`);
  });

  test('federation off: baresip hears the subscription end', async () => {
    assert.equal((await srv.api('PATCH', '/api/v1/settings', { token: admin, body: { 'federation.enabled': false } })).status, 200);
    await baresip.waitOutput(/subscriber closed <sip:alice@atrium\.test[^>]*>: deactivated/, 5000);
  });
});
