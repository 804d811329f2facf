// Several nodes on one PostgreSQL: a throwaway server started here (Unix
// socket only), three atriumd nodes on 127.0.17.1-3 and a real nginx in
// front on 127.0.17.10, configured with the upstream block atriumd
// generates. Settings live everywhere, shared sessions and tokens, one
// meeting host with a failover, a database restart, chat across nodes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { apiCall, ctl, freePort, nginxMainConf, show, sleep, startServer, wsOpen } from './harness.mjs';
import { havePostgres, startPostgres } from './postgres.mjs';
import { clientLogin, rtConnect } from './rt-client.mjs';

const NGINX = process.env.NGINX || '/usr/sbin/nginx';
const ready = havePostgres() && fs.existsSync(NGINX);
const skip = !ready && 'needs PostgreSQL 15 server binaries and nginx';

let pg, db, nodes = {}, token, nginx, nginxUrl, dir, keyFile;
const NAMES = ['a', 'b', 'c'];
const ADDR = { a: '127.0.17.1', b: '127.0.17.2', c: '127.0.17.3' };

function atlasFor(name) {
  return `<Store backend="postgresql" conninfo="${pg.conninfo(db)}"/>`
    + `<Node name="${name}"/><TrustedProxies>127.0.17.10</TrustedProxies>`;
}

/** Starts node `name` on its address with the cluster's shared secret key. */
async function startNode(name, port) {
  const dataDir = path.join(dir, `data-${name}`);
  await fsp.mkdir(dataDir, { recursive: true });
  if (keyFile) await fsp.copyFile(keyFile, path.join(dataDir, 'secret.key'));
  const srv = await startServer({ address: ADDR[name], port, dataDir, atlas: atlasFor(name),
    startTimeoutMs: 20000 });
  if (!keyFile) keyFile = path.join(dataDir, 'secret.key');
  nodes[name] = srv;
  return srv;
}

const health = async (srv) => (await apiCall(srv.url, 'GET', '/healthz', { timeoutMs: 2000 })).json;

/** Resolves when pred(node health) holds on every named node; bounded. */
async function untilEvery(names, pred, ms = 5000, stepMs = 2) {
  const until = Date.now() + ms;
  for (;;) {
    const hs = await Promise.all(names.map((n) => health(nodes[n]).catch(() => null)));
    if (hs.every((h) => h && pred(h))) return hs;
    if (Date.now() > until) throw new Error(`not every node got there within ${ms} ms: ${JSON.stringify(hs)}`);
    await sleep(stepMs);
  }
}

/** The admin API, balanced over every node (as the generated block does for
 * the published URLs). */
function nginxConf(d, include, listen) {
  return nginxMainConf(d, include, `  server {
    listen ${listen};
    location / {
      proxy_pass http://atrium_nodes;
      proxy_http_version 1.1;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
`, 256);
}

async function startNginx() {
  const port = await freePort();
  const listen = `127.0.17.10:${port}`;
  const conf = await apiCall(nodes.a.url, 'GET', `/api/v1/reverse-proxy/nginx?listen=127.0.17.10:${port + 0}&tls=off`, { token });
  assert.equal(conf.status, 200, conf.text);
  assert.match(conf.text, /upstream atrium_nodes \{/);
  assert.match(conf.text, /upstream atrium_meeting \{/);
  assert.match(conf.text, /proxy_next_upstream error timeout http_503;/);
  for (const n of NAMES) assert.ok(conf.text.includes(`server ${ADDR[n]}:${nodes[n].port}`), conf.text);
  // The published server blocks answer by Host; the admin API gets its own
  // server on another port.
  const apiPort = await freePort();
  await fsp.writeFile(path.join(dir, 'atrium.conf'), conf.text);
  await fsp.writeFile(path.join(dir, 'nginx.conf'), nginxConf(dir, path.join(dir, 'atrium.conf'), `127.0.17.10:${apiPort}`));
  const check = spawnSync(NGINX, ['-t', '-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log')],
    { encoding: 'utf8', timeout: 10000 });
  assert.equal(check.status, 0, `nginx -t: ${check.stderr}\n${conf.text}`);
  nginx = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log')], { stdio: 'ignore' });
  nginxUrl = `http://127.0.17.10:${apiPort}`;
  const meetingListen = listen;
  const until = Date.now() + 10000;
  for (;;) {
    try { if ((await apiCall(nginxUrl, 'GET', '/healthz', { timeoutMs: 1000 })).status === 200) break; } catch { /* not yet */ }
    if (Date.now() > until) throw new Error('nginx did not start');
    await sleep(50);
  }
  return meetingListen;
}

let meetingListen;

before(async () => {
  if (!ready) return;
  pg = await startPostgres();
  db = pg.createDb('atrium_cluster');
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'atrium-cluster-'));
  // The first node creates the schema, the admin and the secret key the
  // others get a copy of.
  await startNode('a', await freePort());
  token = await nodes.a.login();
  await Promise.all(['b', 'c'].map(async (n) => startNode(n, await freePort())));
  let r = await apiCall(nodes.a.url, 'PATCH', '/api/v1/settings?wait=all', { token,
    body: { 'meeting.enabled': true, 'server.public_url': 'http://atrium.test' } });
  assert.equal(r.status, 200, r.text);
  await untilEvery(NAMES, (h) => h.settings_version === r.json.version);
  // Every node has a heartbeat row before the nginx block is generated.
  const until = Date.now() + 5000;
  do {
    r = await apiCall(nodes.a.url, 'GET', '/api/v1/cluster', { token });
  } while (r.json?.live_nodes !== 3 && Date.now() < until && await sleep(50) === undefined);
  assert.equal(r.json.live_nodes, 3, r.text);
  meetingListen = await startNginx();
});

after(async () => {
  if (nginx && nginx.exitCode === null) nginx.kill('SIGKILL');
  await Promise.all(Object.values(nodes).map((s) => s.stop()));
  pg?.stop();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

const quantile = (xs, q) => { const s = [...xs].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };

describe('several nodes on PostgreSQL', { skip }, () => {
  test('an admin session from node a works on b and ends everywhere when c logs it out', async () => {
    const t = await nodes.a.login();
    assert.equal((await apiCall(nodes.b.url, 'GET', '/api/v1/session', { token: t })).status, 200);
    assert.equal((await apiCall(nodes.c.url, 'DELETE', '/api/v1/session', { token: t })).status, 204);
    for (const n of NAMES) {
      const until = Date.now() + 2000;
      let s;
      do { s = (await apiCall(nodes[n].url, 'GET', '/api/v1/session', { token: t })).status; }
      while (s !== 401 && Date.now() < until && await sleep(10) === undefined);
      assert.equal(s, 401, `node ${n} still accepts the ended session`);
    }
  });

  test('a client token issued on a works on b and is revoked on c', async () => {
    let r = await apiCall(nodes.a.url, 'POST', '/api/v1/users', { token, body: { name: 'tokyo', password: 'tokyo-pass-1' } });
    assert.equal(r.status, 201, r.text);
    const login = r.json.im_address;
    r = await apiCall(nodes.a.url, 'POST', '/client/v1/login', { body: { login, password: 'tokyo-pass-1' } });
    assert.equal(r.status, 200, r.text);
    const ct = r.json.token;
    assert.equal((await apiCall(nodes.b.url, 'GET', '/client/v1/me', { token: ct })).status, 200);
    r = await apiCall(nodes.c.url, 'DELETE', '/client/v1/login', { token: ct });
    assert.ok(r.status === 204 || r.status === 200, r.text);
    for (const n of NAMES) assert.equal((await apiCall(nodes[n].url, 'GET', '/client/v1/me', { token: ct })).status, 401, n);
  });

  test('settings changes through nginx reach every node with the same version and hash', async () => {
    const COUNT = Number(process.env.CLUSTER_CHANGES || 200);
    const lat = [];
    let version = 0;
    for (let i = 0; i < COUNT; i++) {
      const r = await apiCall(nginxUrl, 'PATCH', '/api/v1/settings', { token, body: { 'proxy.port': 2000 + i } });
      assert.equal(r.status, 200, r.text);
      version = r.json.version;
      const t0 = performance.now();
      await untilEvery(NAMES, (h) => h.settings_version >= version, 5000, 1);
      lat.push(performance.now() - t0);
    }
    const hs = await untilEvery(NAMES, (h) => h.settings_version === version);
    assert.equal(new Set(hs.map((h) => h.settings_hash)).size, 1, JSON.stringify(hs));
    // Every change went through a different node in turn: nginx balanced.
    const p50 = quantile(lat, 0.5), p99 = quantile(lat, 0.99), max = Math.max(...lat);
    console.log(`# propagation after the PATCH answered, ${COUNT} changes: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${max.toFixed(1)} ms`);
    assert.ok(p99 < 250, `p99 ${p99} ms`);
  });

  test('?wait=all answers once every live node has the change, and lists a lagging one', async () => {
    let r = await apiCall(nodes.b.url, 'PATCH', '/api/v1/settings?wait=all', { token, body: { 'proxy.port': 4001 } });
    assert.equal(r.status, 200, r.text);
    const v = r.json.version;
    // Right after the answer, not eventually: every node already has it.
    for (const n of NAMES) assert.ok((await health(nodes[n])).settings_version >= v, n);
    r = await apiCall(nodes.b.url, 'PATCH', '/api/v1/settings?wait=some', { token, body: { 'proxy.port': 4002 } });
    assert.equal(r.status, 400, r.text);
    assert.deepEqual(r.json.errors.map((e) => e.key), ['wait']);
    // A node that stops answering (SIGSTOP) but whose heartbeat is fresh.
    nodes.c.proc.kill('SIGSTOP');
    try {
      r = await apiCall(nodes.b.url, 'PATCH', '/api/v1/settings?wait=all', { token, body: { 'proxy.port': 4003 }, timeoutMs: 15000 });
      assert.equal(r.status, 202, r.text);
      assert.equal(r.json.status, 'committed');
      assert.deepEqual(r.json.pending.map((p) => p.node), ['c']);
    } finally {
      nodes.c.proc.kill('SIGCONT');
    }
    await untilEvery(NAMES, (h) => h.settings_version >= r.json.version);
  });

  test('three writers with If-Match: 200s = versions gained = audit rows', async () => {
    const before = (await apiCall(nodes.a.url, 'GET', '/api/v1/settings', { token })).json.version;
    const auditBefore = (await apiCall(nodes.a.url, 'GET', '/api/v1/audit?offset=0&limit=1', { token })).json.total;
    let ok = 0, stale = 0, other = [];
    let value = 10000;
    await Promise.all(NAMES.map(async (n) => {
      for (let i = 0; i < 25; i++) {
        const g = await apiCall(nodes[n].url, 'GET', '/api/v1/settings', { token });
        const r = await apiCall(nodes[n].url, 'PATCH', '/api/v1/settings', { token, headers: { 'if-match': `"${g.json.version}"` },
          body: { 'proxy.port': value++ } });
        if (r.status === 200) ok++;
        else if (r.status === 412) stale++;
        else other.push(`${r.status} ${r.text}`);
      }
    }));
    assert.deepEqual(other, []);
    const hs = await untilEvery(NAMES, (h) => h.settings_version === before + ok);
    const after2 = (await apiCall(nodes.a.url, 'GET', '/api/v1/settings', { token })).json.version;
    const auditAfter = (await apiCall(nodes.a.url, 'GET', '/api/v1/audit?offset=0&limit=1', { token })).json.total;
    assert.ok(ok > 0 && stale > 0, `ok ${ok}, 412 ${stale}: the writers should have collided`);
    assert.equal(after2 - before, ok);
    assert.equal(auditAfter - auditBefore, ok);
    assert.equal(new Set(hs.map((h) => h.settings_hash)).size, 1);
  });

  test('one meeting host: the others answer 503 with Retry-After, nginx reaches the host', async () => {
    const hs = await untilEvery(NAMES, () => true);
    const hosts = NAMES.filter((n, i) => hs[i].meeting_host);
    assert.equal(hosts.length, 1, JSON.stringify(hs));
    for (const n of NAMES.filter((x) => x !== hosts[0])) {
      const r = await apiCall(nodes[n].url, 'GET', '/webmeeting/');
      assert.equal(r.status, 503, r.text);
      assert.equal(r.headers.get('retry-after'), '1');
      assert.equal(r.headers.get('atrium-meeting-host'), hosts[0]);
    }
    assert.equal((await apiCall(nodes[hosts[0]].url, 'GET', '/webmeeting/')).status, 200);
    const c = await apiCall(nodes.a.url, 'GET', '/api/v1/cluster', { token });
    assert.equal(c.json.meeting_host.node, hosts[0]);
    // Through nginx, whichever node the round robin picks first.
    for (let i = 0; i < 6; i++) {
      const r = await new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.17.10', port: Number(meetingListen.split(':')[1]), path: '/webmeeting/',
          headers: { host: 'atrium.test' }, timeout: 5000 }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
        req.on('error', reject);
        req.end();
      });
      assert.equal(r, 200);
    }
  });

  test('kill -9 of the meeting host: a new host within 2 s, the epoch up by exactly one', async () => {
    const c0 = (await apiCall(nodes.a.url, 'GET', '/api/v1/cluster', { token })).json;
    const old = c0.meeting_host.node;
    const epoch = c0.meeting_host.epoch;
    const t0 = performance.now();
    await nodes[old].kill();
    const rest = NAMES.filter((n) => n !== old);
    const until = Date.now() + 5000;
    let hosts = [];
    while (Date.now() < until) {
      const hs = await Promise.all(rest.map((n) => health(nodes[n]).catch(() => null)));
      hosts = rest.filter((n, i) => hs[i]?.meeting_host);
      if (hosts.length) break;
      await sleep(5);
    }
    const took = performance.now() - t0;
    console.log(`# meeting host failover after kill -9: ${took.toFixed(0)} ms`);
    assert.equal(hosts.length, 1);
    assert.ok(took < 2000, `${took} ms`);
    const c1 = (await apiCall(nodes[rest[0]].url, 'GET', '/api/v1/cluster', { token })).json;
    assert.equal(c1.meeting_host.node, hosts[0]);
    assert.equal(c1.meeting_host.epoch, epoch + 1);
    // The killed node comes back as a standby, with the same port.
    const port = nodes[old].port;
    await nodes[old].stop();
    await startNode(old, port);
    const h = await health(nodes[old]);
    assert.equal(h.meeting_host, false);
  });

  test('SIGSTOP of the meeting host: the database ends its idle session, another node takes over, the old one steps down on SIGCONT', async () => {
    const c0 = (await apiCall(nodes.a.url, 'GET', '/api/v1/cluster', { token })).json;
    const old = c0.meeting_host.node;
    const rest = NAMES.filter((n) => n !== old);
    const t0 = performance.now();
    nodes[old].proc.kill('SIGSTOP');
    let hosts = [], hs = [];
    try {
      const until = Date.now() + 10000;
      while (Date.now() < until) {
        hs = await Promise.all(rest.map((n) => health(nodes[n]).catch(() => null)));
        hosts = rest.filter((n, i) => hs[i]?.meeting_host);
        if (hosts.length) break;
        await sleep(20);
      }
    } finally {
      nodes[old].proc.kill('SIGCONT');
    }
    const took = performance.now() - t0;
    console.log(`# meeting host failover after SIGSTOP (idle_session_timeout 4 s): ${took.toFixed(0)} ms`);
    assert.equal(hosts.length, 1);
    const epoch = hs[rest.indexOf(hosts[0])].meeting_epoch;
    assert.equal(epoch, c0.meeting_host.epoch + 1);
    // Resumed, the old host finds its lock connection gone and stops
    // hosting; only the new host ever claims the current epoch.
    const until = Date.now() + 3000;
    let h;
    do { h = await health(nodes[old]); } while (h.meeting_host && Date.now() < until && await sleep(20) === undefined);
    assert.equal(h.meeting_host, false, JSON.stringify(h));
    const all = await Promise.all(NAMES.map((n) => health(nodes[n])));
    assert.deepEqual(all.filter((x) => x.meeting_host && x.meeting_epoch === epoch).map((x) => x.node), hosts);
  });

  test('the database crashes (pg_ctl stop -m immediate) and comes back: writes 503 meanwhile, every node converges within 1 s after, also a change by hand', async () => {
    const v0 = (await health(nodes.a)).settings_version;
    assert.equal(pg.stopServer(), 0);
    try {
      const r = await apiCall(nodes.b.url, 'PATCH', '/api/v1/settings', { token, body: { 'proxy.port': 5001 } });
      assert.equal(r.status, 503, r.text);
      assert.ok(r.headers.get('retry-after'));
    } finally {
      assert.equal(pg.startServer(), 0);
    }
    // A change by hand, right as the server is back.
    const tHand = performance.now();
    await pg.psqlAsync(`UPDATE settings SET value = '5002' WHERE key = 'proxy.port'`, db);
    const want = v0 + 1;
    assert.equal(Number(pg.psql('SELECT version FROM settings_state', db)), want);
    const hs = await untilEvery(NAMES, (h) => h.settings_version === want, 3000, 5);
    const took = performance.now() - tHand;
    console.log(`# after the restart, a change by hand reached every node in ${took.toFixed(0)} ms`);
    assert.ok(took < 1000, `${took} ms`);
    assert.equal(new Set(hs.map((h) => h.settings_hash)).size, 1);
    const s = await apiCall(nodes.c.url, 'GET', '/api/v1/settings', { token });
    assert.equal(s.json.settings['proxy.port'].value, 5002);
    const audit = await apiCall(nodes.c.url, 'GET', '/api/v1/audit?offset=0&limit=1', { token });
    assert.match(audit.json.entries[0].actor, /^database:/);
    // Writes work again, through any node; one host again.
    const w = await apiCall(nodes.b.url, 'PATCH', '/api/v1/settings', { token, body: { 'proxy.port': 5003 } });
    assert.equal(w.status, 200, w.text);
    const until = Date.now() + 3000;
    let n = 0;
    while (Date.now() < until) {
      const all = await Promise.all(NAMES.map((x) => health(nodes[x])));
      n = all.filter((h) => h.meeting_host).length;
      if (n === 1) break;
      await sleep(20);
    }
    assert.equal(n, 1);
  });

  test('chat and presence between users connected to different nodes', async () => {
    for (const name of ['anna', 'bert']) {
      const r = await apiCall(nodes.a.url, 'POST', '/api/v1/users', { token, body: { name, password: `${name}-pass-1` } });
      assert.equal(r.status, 201, r.text);
    }
    const domain = (await apiCall(nodes.a.url, 'GET', '/api/v1/settings', { token })).json.settings['domain.name'].value;
    const anna = await rtConnect(nodes.a, await clientLogin(nodes.a, `anna@${domain}`, 'anna-pass-1'));
    const bert = await rtConnect(nodes.b, await clientLogin(nodes.b, `bert@${domain}`, 'bert-pass-1'));
    // Presence: anna on a watches bert on b.
    assert.equal((await anna.request({ type: 'presence.watch', addresses: [`bert@${domain}`] })).type, 'ok');
    await bert.request({ type: 'presence.set', state: 'busy', note: 'in a call' });
    const p = await anna.type('presence', 3000, (f) => f.address === `bert@${domain}` && f.state === 'busy');
    assert.equal(p.note, 'in a call');
    // Chat both ways, with delivered and read marks across nodes.
    const sent = await anna.request({ type: 'chat.send', to: `bert@${domain}`, text: 'hello from a' });
    assert.equal(sent.type, 'ok', JSON.stringify(sent));
    const got = await bert.type('chat', 3000);
    assert.equal(got.text, 'hello from a');
    assert.equal(got.from, `anna@${domain}`);
    bert.send({ type: 'chat.read', message_id: got.message_id });
    const read = await anna.type('chat.read', 3000);
    assert.equal(read.message_id, got.message_id);
    const back = await bert.request({ type: 'chat.send', to: `anna@${domain}`, text: 'hello from b' });
    assert.equal(back.type, 'ok');
    assert.equal((await anna.type('chat', 3000)).text, 'hello from b');
    // Several messages in a row arrive in order.
    for (let i = 0; i < 20; i++) anna.send({ type: 'chat.send', to: `bert@${domain}`, text: `n${i}` });
    const texts = [];
    while (texts.length < 20) texts.push((await bert.type('chat', 3000)).text);
    assert.deepEqual(texts, Array.from({ length: 20 }, (_, i) => `n${i}`));
    // A WebSocket ticket from one node opens the WebSocket on another
    // (the load balancer picks), once.
    const bt = await clientLogin(nodes.a, `bert@${domain}`, 'bert-pass-1');
    const tk = await apiCall(nodes.a.url, 'POST', '/client/v1/ws-ticket', { token: bt });
    assert.equal(tk.status, 200, tk.text);
    const path = `/client/v1/ws?ticket=${encodeURIComponent(tk.json.ticket)}`;
    const ws = await wsOpen(nodes.c.port, path, { host: ADDR.c });
    assert.equal(JSON.parse(await ws.next()).type, 'hello');
    ws.close();
    await assert.rejects(wsOpen(nodes.b.port, path, { host: ADDR.b }), (e) => e.status === 401 || e.status === 403);
    // bert leaves: anna sees him offline.
    bert.close();
    await anna.type('presence', 3000, (f) => f.address === `bert@${domain}` && f.state === 'offline');
    anna.close();
  });

  test('the cluster status lists every node, its version and the host; atriumctl shows it', async () => {
    // Each node writes its row a moment after it applies the last change.
    let r;
    const until = Date.now() + 3000;
    do { r = await apiCall(nodes.c.url, 'GET', '/api/v1/cluster', { token }); }
    while (r.json?.nodes?.some((n) => n.settings_behind) && Date.now() < until && await sleep(20) === undefined);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.nodes.map((n) => n.name), NAMES);
    assert.equal(r.json.store, 'postgresql');
    assert.equal(r.json.nodes.filter((n) => n.meeting_host).length, 1);
    for (const n of r.json.nodes) assert.ok(n.live && n.settings_behind === 0, JSON.stringify(n));
    const out = await ctl(nodes.b, ['cluster', 'status'], { token });
    assert.equal(out.code, 0, show(out));
    assert.match(out.stdout, /store postgresql/);
    const host = r.json.meeting_host.node;
    assert.match(out.stdout, new RegExp(`web meetings hosted by ${host} \\(epoch ${r.json.meeting_host.epoch}\\)`));
    for (const n of NAMES) assert.match(out.stdout, new RegExp(`^${n} +up +${r.json.settings.stored_version} +0 `, 'm'), out.stdout);
    assert.equal((await ctl(nodes.b, ['cluster', 'nodes'], { token })).code, 2);
    const m = await apiCall(nodes.c.url, 'GET', '/metrics', { token });
    assert.match(m.text, /atrium_node_info\{node="c",store="postgresql"/);
  });
});
