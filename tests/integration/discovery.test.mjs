// UDP discovery against a real atriumd (docs/protocols/discovery.md): real
// sockets, unicast to loopback only; broadcast and multicast only inside
// network namespaces this file creates (skipped with a reason when not run
// as root). Every wait is bounded.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { startServer, ctl, sleep, freeUdpPort, ATRIUMD, ATRIUMCTL } from './harness.mjs';

const QUERY_MIN = 512;
const NO_ANSWER_MS = 400; // "no answer" means none within this bounded wait

let srv;
let token;
let port;

function buildQuery({ nonce = crypto.randomBytes(16), size = QUERY_MIN, version = 1, type = 1 } = {}) {
  const b = Buffer.alloc(size);
  b.write('ATRD', 0, 'latin1');
  b[4] = version;
  b[5] = type;
  nonce.copy(b, 8);
  return { buf: b, nonce };
}

function parseAnswer(b) {
  assert.ok(b.length >= 24, 'answer shorter than its header');
  assert.equal(b.toString('latin1', 0, 4), 'ATRD');
  assert.equal(b[4], 1);
  assert.equal(b[5], 2);
  const out = { nonce: b.subarray(8, 24), fields: {} };
  let pos = 24;
  while (pos < b.length) {
    const t = b[pos];
    const n = b.readUInt16BE(pos + 1);
    pos += 3;
    out.fields[t] = b.toString('utf8', pos, pos + n);
    pos += n;
  }
  assert.equal(pos, b.length, 'fields must end exactly at the end of the datagram');
  return { nonce: out.nonce, domain: out.fields[1], url: out.fields[2], version: out.fields[3], len: b.length };
}

/** Sends datagrams from a socket bound to `source` and collects what comes back within ms. */
async function exchange(datagrams, { to = '127.0.0.1', source, family = 4, ms = NO_ANSWER_MS, p = port } = {}) {
  const s = dgram.createSocket(family === 6 ? { type: 'udp6', ipv6Only: true } : 'udp4');
  const got = [];
  s.on('message', (m) => got.push(m));
  await new Promise((res, rej) => { s.once('error', rej); s.bind(0, source ?? (family === 6 ? '::1' : '127.0.0.1'), res); });
  for (const d of datagrams) await new Promise((res, rej) => s.send(d, p, to, (e) => (e ? rej(e) : res())));
  await sleep(ms);
  s.close();
  return got;
}

/** One query; resolves the parsed answer or null when none came within ms. */
async function ask(opts = {}) {
  const q = buildQuery(opts);
  const deadline = Date.now() + (opts.ms ?? 1500);
  const s = dgram.createSocket(opts.family === 6 ? { type: 'udp6', ipv6Only: true } : 'udp4');
  try {
    await new Promise((res, rej) => {
      s.once('error', rej);
      s.bind(0, opts.source ?? (opts.family === 6 ? '::1' : '127.0.0.1'), res);
    });
    const msg = new Promise((res) => s.once('message', (m) => res(m)));
    await new Promise((res, rej) => s.send(q.buf, opts.port ?? port, opts.to ?? '127.0.0.1', (e) => (e ? rej(e) : res())));
    const m = await Promise.race([msg, sleep(Math.max(0, deadline - Date.now())).then(() => null)]);
    return m ? { ...parseAnswer(m), sentNonce: q.nonce, queryLen: q.buf.length } : null;
  } finally {
    s.close();
  }
}

async function patch(body) {
  return srv.api('PATCH', '/api/v1/settings', { body, token });
}

async function metric(name, labels = '') {
  const r = await srv.api('GET', '/metrics', { token });
  assert.equal(r.status, 200, r.text);
  const re = new RegExp(`^${name}${labels.replace(/[{}"]/g, (c) => `\\${c}`)} (\\d+)$`, 'm');
  const m = r.text.match(re);
  return m ? Number(m[1]) : null;
}

before(async () => {
  srv = await startServer();
  token = await srv.login();
  port = await freeUdpPort();
  const r = await patch({ 'login.discovery_port': port, 'login.publish_address': true });
  assert.equal(r.status, 200, r.text);
});
after(async () => {
  if (srv) await srv.stop();
});

describe('answers on loopback', () => {
  test('IPv4: nonce echoed, domain, client URL and version; never larger than the query', async () => {
    const a = await ask({ source: '127.0.0.2' });
    assert.ok(a, 'no answer from the responder');
    assert.deepEqual(Buffer.from(a.nonce), a.sentNonce);
    const s = (await srv.api('GET', '/api/v1/settings', { token })).json.settings;
    assert.equal(a.domain, s['domain.name'].value);
    assert.equal(a.url, s['server.public_url'].effective ?? s['server.public_url'].value);
    assert.match(a.version, /^\d+\.\d+\.\d+/);
    assert.ok(a.len <= a.queryLen, `answer ${a.len} bytes > query ${a.queryLen}`);
  });

  test('IPv6: ::1 answers too', async () => {
    const a = await ask({ family: 6, to: '::1', source: '::1' });
    assert.ok(a, 'no answer on ::1');
    assert.deepEqual(Buffer.from(a.nonce), a.sentNonce);
  });

  test('a larger (padded) query is answered, the answer still fits in it', async () => {
    const a = await ask({ size: 1024, source: '127.0.0.3' });
    assert.ok(a);
    assert.ok(a.len <= 1024);
  });

  test('the answer follows server.public_url at once', async () => {
    let r = await patch({ 'server.public_url': 'https://connect.example.com:8443' });
    assert.equal(r.status, 200, r.text);
    const a = await ask({ source: '127.0.0.4' });
    assert.equal(a?.url, 'https://connect.example.com:8443');
  });

  test('an answer that would not fit in the query is not sent (amplification guard)', async () => {
    const long = `https://${'a'.repeat(60)}.example.com/${'p'.repeat(480)}`;
    let r = await patch({ 'server.public_url': long });
    assert.equal(r.status, 200, r.text);
    const before0 = (await metric('atrium_discovery_dropped_total', '{reason="answer_too_large"}')) ?? 0;
    const small = await ask({ source: '127.0.0.5', ms: NO_ANSWER_MS });
    assert.equal(small, null, 'a 512-byte query must not get a longer answer');
    assert.equal(await metric('atrium_discovery_dropped_total', '{reason="answer_too_large"}'), before0 + 1);
    const big = await ask({ source: '127.0.0.5', size: 1024 });
    assert.equal(big?.url, long);
    assert.ok(big.len <= 1024);
    r = await patch({ 'server.public_url': 'https://connect.example.com:8443' });
    assert.equal(r.status, 200, r.text);
  });
});

describe('bad datagrams are dropped and counted', () => {
  const cases = [
    ['oversized', () => buildQuery({ size: 1500 }).buf],
    ['truncated', () => buildQuery().buf.subarray(0, 100)],
    ['truncated', () => Buffer.from('ATR')],
    ['garbage', () => crypto.randomBytes(QUERY_MIN).fill(0x41, 0, 1)],
    ['version', () => buildQuery({ version: 9 }).buf],
    ['type', () => buildQuery({ type: 2 }).buf],
    ['padding', () => { const b = buildQuery().buf; b[300] = 1; return b; }],
  ];
  for (const [reason, make] of cases) {
    test(`${reason}: no answer, atrium_discovery_dropped_total{reason="${reason}"} + 1`, async () => {
      const label = `{reason="${reason}"}`;
      const n0 = await metric('atrium_discovery_dropped_total', label);
      assert.notEqual(n0, null, 'the counter is exported from the start');
      const got = await exchange([make()], { source: '127.0.0.6' });
      assert.equal(got.length, 0, 'a bad datagram got an answer');
      assert.equal(await metric('atrium_discovery_dropped_total', label), n0 + 1);
    });
  }
  test('the responder still answers after all that', async () => {
    assert.ok(await ask({ source: '127.0.0.7' }));
  });
});

describe('rate limit per source', () => {
  test('a burst from one address gets 5 answers; the rest is dropped; tokens come back', async () => {
    const r0 = await metric('atrium_discovery_dropped_total', '{reason="rate_limited"}');
    const qs = Array.from({ length: 20 }, () => buildQuery().buf);
    const got = await exchange(qs, { source: '127.0.0.8', ms: 500 });
    assert.ok(got.length >= 5 && got.length <= 6, `${got.length} answers to a burst of 20`);
    const r1 = await metric('atrium_discovery_dropped_total', '{reason="rate_limited"}');
    assert.ok(r1 - r0 >= 14, `rate_limited grew by ${r1 - r0}`);
    // Another address has its own bucket.
    assert.ok(await ask({ source: '127.0.0.9' }), 'another source was limited too');
    await sleep(1100); // 2 tokens a second
    assert.ok(await ask({ source: '127.0.0.8' }), 'no answer after the bucket refilled');
  });
});

describe('on/off and the port, live', () => {
  test('publish_address off: no answer at once; on: answers again', async () => {
    let r = await patch({ 'login.publish_address': false });
    assert.equal(r.status, 200, r.text);
    assert.equal(await ask({ source: '127.0.0.10', ms: NO_ANSWER_MS }), null, 'answered while off');
    const st = await srv.api('GET', '/api/v1/publishing/status', { token });
    assert.equal(st.status, 200, st.text);
    assert.equal(st.json.discovery.running, false);
    r = await patch({ 'login.publish_address': true });
    assert.equal(r.status, 200, r.text);
    assert.ok(await ask({ source: '127.0.0.10' }), 'no answer after switching on');
  });

  test('a new discovery_port rebinds: the old port is silent, the new one answers', async () => {
    const p2 = await freeUdpPort();
    const r = await patch({ 'login.discovery_port': p2 });
    assert.equal(r.status, 200, r.text);
    assert.equal(await ask({ source: '127.0.0.11', ms: NO_ANSWER_MS }), null, 'old port still answers');
    assert.ok(await ask({ source: '127.0.0.11', port: p2 }), 'new port does not answer');
    const st = await srv.api('GET', '/api/v1/publishing/status', { token });
    assert.equal(st.json.discovery.port, p2);
    assert.equal(st.json.discovery.running, true);
    port = p2;
  });

  test('a port held by another program: the change is refused with a sentence, nothing changes', async () => {
    const holder = dgram.createSocket('udp4');
    await new Promise((res) => holder.bind(0, '0.0.0.0', res));
    const busy = holder.address().port;
    try {
      const r = await patch({ 'login.discovery_port': busy });
      assert.equal(r.status, 422, r.text);
      assert.match(r.json.detail, /already in use/);
      assert.equal(r.json.errors[0].key, 'login.discovery_port');
      const s = (await srv.api('GET', '/api/v1/settings', { token })).json.settings;
      assert.equal(s['login.discovery_port'].value, port);
      assert.ok(await ask({ source: '127.0.0.12' }), 'the responder stopped after a refused change');
    } finally {
      holder.close();
    }
  });
});

describe('atriumctl discover', () => {
  test('--address 127.0.0.1 --port lists the server', async () => {
    const r = await ctl(srv, ['discover', '--address', '127.0.0.1', '--port', String(port), '--timeout', '800']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /https:\/\/connect\.example\.com:8443 {2}\(version \d+\.\d+\.\d+, from 127\.0\.0\.1\)/);
  });

  test('--json and IPv6 --address ::1', async () => {
    const r = await ctl(srv, ['discover', '--json', '--address', '::1', '--port', String(port), '--timeout', '800']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const list = JSON.parse(r.stdout);
    assert.equal(list.length, 1);
    assert.equal(list[0].url, 'https://connect.example.com:8443');
    assert.equal(list[0].from, '::1');
  });

  test('nobody answering: exit 3 with a sentence, within the timeout', async () => {
    const silent = await freeUdpPort();
    const t0 = Date.now();
    const r = await ctl(srv, ['discover', '--address', '127.0.0.1', '--port', String(silent), '--timeout', '300']);
    assert.equal(r.code, 3, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /no server answered within 300 ms/);
    assert.ok(Date.now() - t0 < 5000);
  });

  test('bad arguments: exit 2', async () => {
    for (const args of [['--port', '0'], ['--port', 'x'], ['--timeout', '999999'], ['extra']]) {
      const r = await ctl(srv, ['discover', ...args]);
      assert.equal(r.code, 2, `${args}: ${r.stdout}\n${r.stderr}`);
    }
  });
});

// ---- broadcast and multicast inside network namespaces made here -------------------------------

function sh(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10000 });
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

describe('broadcast and multicast (network namespaces)', () => {
  const tag = `${process.pid % 100000}`;
  const ns1 = `atrium-test-${tag}a`;
  const ns2 = `atrium-test-${tag}b`;
  let skip = null;
  let daemon;
  let dir;

  before(async () => {
    // Only an unprivileged run may skip: as root (make test, CI) a namespace
    // that cannot be made is a failure, not a reason to pass.
    if (process.getuid?.() !== 0) {
      skip = 'ip netns add needs root; loopback unicast tests cover the responder';
      return;
    }
    const probe = sh('ip', ['netns', 'add', ns1]);
    if (probe.code !== 0) throw new Error(`ip netns add ${ns1}: ${probe.out.trim()}`);
    // Duplicate address detection is pointless on a private veth pair and
    // can leave link-local addresses "tentative" (unusable) for a long time
    // on a busy machine: switch it off in both namespaces before the pair
    // exists, so the addresses are usable at once.
    const noDad = (ns) => ['netns', 'exec', ns, 'sysctl', '-q', '-w',
      'net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.all.accept_dad=0'];
    const steps = [
      ['netns', 'add', ns2],
      noDad(ns1),
      noDad(ns2),
      ['link', 'add', `veth${tag}a`, 'netns', ns1, 'type', 'veth', 'peer', 'name', `veth${tag}b`, 'netns', ns2],
      ['-n', ns1, 'addr', 'add', '10.77.0.1/24', 'dev', `veth${tag}a`],
      ['-n', ns2, 'addr', 'add', '10.77.0.2/24', 'dev', `veth${tag}b`],
      ['-n', ns1, 'link', 'set', 'lo', 'up'],
      ['-n', ns2, 'link', 'set', 'lo', 'up'],
      ['-n', ns1, 'link', 'set', `veth${tag}a`, 'up'],
      ['-n', ns2, 'link', 'set', `veth${tag}b`, 'up'],
      // Limited broadcast (255.255.255.255) leaves by a route; give it one.
      ['-n', ns2, 'route', 'add', 'default', 'dev', `veth${tag}b`],
    ];
    for (const s of steps) {
      const r = sh('ip', s);
      if (r.code !== 0) throw new Error(`cannot set up the namespaces: ip ${s.join(' ')}: ${r.out.trim()}`);
    }
    for (let i = 0; i < 50; i++) { // at most 5 s
      const a = sh('ip', ['-n', ns1, '-6', 'addr']).out + sh('ip', ['-n', ns2, '-6', 'addr']).out;
      if (a.includes('fe80') && !a.includes('tentative')) break;
      await sleep(100);
    }
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'atrium-netns-'));
    await fsp.mkdir(path.join(dir, 'data'));
    await fsp.writeFile(path.join(dir, 'atlas.xml'), '<?xml version="1.0"?><Atlas>'
      + '<Listen address="127.0.0.1" port="18080"/>'
      + `<DataDirectory>${dir}/data</DataDirectory></Atlas>\n`);
    // The settings come from the environment: the HTTP API inside ns1 is not
    // reachable from here, and need not be.
    daemon = spawn('ip', ['netns', 'exec', ns1, ATRIUMD, '-c', path.join(dir, 'atlas.xml')], {
      env: {
        ...process.env,
        ATRIUM_ADMIN_PASSWORD: 'netns-test-pass-1',
        ATRIUM_LOGIN_PUBLISH_ADDRESS: 'true',
        ATRIUM_LOGIN_DISCOVERY_PORT: '21730',
        ATRIUM_SERVER_PUBLIC_URL: 'https://ns1.example.com',
      },
      stdio: 'ignore',
    });
  });

  after(async () => {
    if (daemon && daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await Promise.race([new Promise((r) => daemon.once('exit', r)), sleep(5000)]);
      if (daemon.exitCode === null) daemon.kill('SIGKILL');
    }
    sh('ip', ['netns', 'del', ns2]);
    sh('ip', ['netns', 'del', ns1]);
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  async function discoverFromNs2(extra = []) {
    const r = spawnSync('ip', ['netns', 'exec', ns2, ATRIUMCTL, 'discover', '--json', '--port', '21730', '--timeout', '700', ...extra],
      { encoding: 'utf8', timeout: 10000 });
    let list = [];
    try { list = JSON.parse(r.stdout || '[]'); } catch { /* exit 3: nothing */ }
    return { code: r.status, list, err: r.stderr };
  }

  test('a broadcast from another host finds the server (IPv4)', async (t) => {
    if (skip) { t.skip(skip); return; }
    let found = [];
    for (let i = 0; i < 20 && !found.some((x) => x.from === '10.77.0.1'); i++) {
      found = (await discoverFromNs2()).list; // waits for the daemon to come up
    }
    const v4 = found.find((x) => x.from === '10.77.0.1');
    assert.ok(v4, `no answer to the broadcast: ${JSON.stringify(found)}`);
    assert.equal(v4.url, 'https://ns1.example.com');
  });

  test('ff02::1 on the link finds the server (IPv6 multicast)', async (t) => {
    if (skip) { t.skip(skip); return; }
    let v6;
    // Link-local addresses need duplicate address detection first (~2 s).
    let last;
    for (let i = 0; i < 20 && !v6; i++) {
      last = await discoverFromNs2(['--address', `ff02::1%veth${tag}b`]);
      v6 = last.list.find((x) => x.from.startsWith('fe80:'));
    }
    assert.ok(v6, `no answer to ff02::1: ${JSON.stringify(last)} ${sh('ip', ['-n', ns2, '-6', 'addr']).out} ${sh('ip', ['-n', ns1, '-6', 'addr']).out} ${sh('ip', ['-n', ns1, '-6', 'route']).out}`);
    assert.equal(v6.url, 'https://ns1.example.com');
  });

  test('the default query (no --address) reaches it on both families', async (t) => {
    if (skip) { t.skip(skip); return; }
    const { code, list } = await discoverFromNs2();
    assert.equal(code, 0);
    assert.ok(list.some((x) => x.from === '10.77.0.1'), JSON.stringify(list));
    assert.ok(list.some((x) => x.from.startsWith('fe80:')), JSON.stringify(list));
  });
});
