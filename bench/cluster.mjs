// The measuring half of bench/cluster.sh: settings propagation and meeting
// host failover over nodes that script started. Prints one JSON object.
//
//   node bench/cluster.mjs propagate NODES.json TOKEN COUNT
//   node bench/cluster.mjs failover  NODES.json ROUNDS ATRIUMD PIDS_FILE
//
// NODES.json: [{name, url, atlas, log, pid}]. failover kills the host with
// SIGKILL, restarts it the way the script started it (same atlas.xml and
// port) and appends every pid it starts to PIDS_FILE, so that the script's
// clean-up stops them whatever ends this process.
import fs from 'node:fs';
import http from 'node:http';
import { spawn } from 'node:child_process';

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function call(url, method, path, { token, body, timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (data) { headers['content-type'] = 'application/json'; headers['content-length'] = data.length; }
    const req = http.request(`${url}${path}`, { method, headers, agent, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, json, text });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}${path}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

const health = (n) => call(n.url, 'GET', '/healthz', { timeoutMs: 2000 }).then((r) => r.json).catch(() => null);

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, p50_ms: q(0.5), p99_ms: q(0.99), max_ms: s[s.length - 1], mean_ms: s.reduce((a, b) => a + b, 0) / s.length };
}

/* COUNT changes, each through the next node in turn. For each: the time
 * from sending the PATCH (before the commit) and from its answer (after the
 * commit) until every node's /healthz shows the new version. The commit lies
 * between the two; the first is the bound the goals are judged by. */
async function counters(nodes, token) {
  const out = {};
  for (const n of nodes) {
    const r = await call(n.url, 'GET', '/metrics', { token });
    const get = (name) => Number((r.text.match(new RegExp(`^${name}\\{[^}]*\\} (\\d+)`, 'm')) || [])[1] ?? NaN);
    out[n.name] = { notifications: get('atrium_settings_notifications_total'), polls_behind: get('atrium_settings_polls_behind_total') };
  }
  return out;
}

async function propagate(nodes, token, count) {
  const c0 = await counters(nodes, token);
  const fromSend = [], fromAnswer = [], patch = [], perNode = Object.fromEntries(nodes.map((n) => [n.name, []]));
  const deadline = Date.now() + 600000;
  for (let i = 0; i < count; i++) {
    if (Date.now() > deadline) throw new Error(`propagation: only ${i} changes within 10 minutes`);
    const via = nodes[i % nodes.length];
    const t0 = now();
    const r = await call(via.url, 'PATCH', '/api/v1/settings', { token, body: { 'proxy.port': 2000 + (i % 60000) } });
    const t1 = now();
    if (r.status !== 200) throw new Error(`PATCH through ${via.name}: ${r.status} ${r.text}`);
    const v = r.json.version;
    const seen = new Map();
    const until = t1 + 5000;
    while (seen.size < nodes.length) {
      if (now() > until) throw new Error(`version ${v} not on every node within 5 s: ${[...seen.keys()]}`);
      const hs = await Promise.all(nodes.filter((n) => !seen.has(n.name)).map(async (n) => [n, await health(n), now()]));
      for (const [n, h, t] of hs) if (h && h.settings_version >= v) seen.set(n.name, t);
    }
    const last = Math.max(...seen.values());
    fromSend.push(last - t0);
    fromAnswer.push(last - t1);
    patch.push(t1 - t0);
    for (const [name, t] of seen) perNode[name].push(t - t0);
  }
  const hs = await Promise.all(nodes.map(health));
  const c1 = await counters(nodes, token);
  const over = (ms) => fromSend.filter((x) => x >= ms).length;
  return {
    changes: count,
    over_ms: { 50: over(50), 100: over(100), 250: over(250), 500: over(500) },
    /* Per node: notifications heard, and heartbeats that found a version
     * the notification had not brought yet. */
    counters: Object.fromEntries(nodes.map((n) => [n.name, {
      notifications: c1[n.name].notifications - c0[n.name].notifications,
      polls_behind: c1[n.name].polls_behind - c0[n.name].polls_behind }])),
    from_send: stats(fromSend),
    from_answer: stats(fromAnswer),
    patch: stats(patch),
    per_node_from_send: Object.fromEntries(Object.entries(perNode).map(([k, v]) => [k, stats(v)])),
    same_hash: new Set(hs.map((h) => h?.settings_hash)).size === 1,
  };
}

async function untilHealthy(n, ms) {
  const until = Date.now() + ms;
  for (;;) {
    const h = await health(n);
    if (h) return h;
    if (Date.now() > until) throw new Error(`node ${n.name} did not answer /healthz within ${ms} ms (see ${n.log})`);
    await sleep(20);
  }
}

/* ROUNDS times: find the one host, SIGKILL it, poll the other nodes'
 * /healthz until one says it hosts; then restart the killed node. */
async function failover(nodes, rounds, atriumd, pidsFile) {
  const took = [], epochSteps = [];
  let twoHosts = 0;
  const deadline = Date.now() + 900000;
  for (let i = 0; i < rounds; i++) {
    if (Date.now() > deadline) throw new Error(`failover: only ${i} rounds within 15 minutes`);
    let hs, hosts;
    const until = Date.now() + 10000;
    for (;;) {
      hs = await Promise.all(nodes.map(health));
      hosts = nodes.filter((n, k) => hs[k]?.meeting_host);
      if (hosts.length === 1 && hs.every(Boolean)) break;
      if (Date.now() > until) throw new Error(`round ${i}: not one host within 10 s: ${JSON.stringify(hs)}`);
      await sleep(20);
    }
    const old = hosts[0];
    const epoch = hs[nodes.indexOf(old)].meeting_epoch;
    const rest = nodes.filter((n) => n !== old);
    const t0 = now();
    process.kill(old.pid, 'SIGKILL');
    let host = null, h2 = null;
    while (!host) {
      if (now() - t0 > 10000) throw new Error(`round ${i}: no new host within 10 s after killing ${old.name}`);
      const rs = await Promise.all(rest.map(health));
      const k = rs.findIndex((h) => h?.meeting_host);
      if (k >= 0) { host = rest[k]; h2 = rs[k]; }
      if (rs.filter((h) => h?.meeting_host).length > 1) twoHosts++;
    }
    took.push(now() - t0);
    epochSteps.push(h2.meeting_epoch - epoch);
    // The killed node comes back as a standby, on the same port.
    await sleep(50);
    const log = fs.openSync(old.log, 'a');
    const child = spawn(atriumd, ['-c', old.atlas], { stdio: ['ignore', log, log], detached: false });
    fs.closeSync(log);
    old.pid = child.pid;
    fs.appendFileSync(pidsFile, `${child.pid}\n`);
    child.unref();
    await untilHealthy(old, 20000);
  }
  return { rounds, failover: stats(took), epoch_steps: [...new Set(epochSteps)], rounds_with_two_hosts: twoHosts, pids: nodes.map((n) => n.pid) };
}

const [cmd, nodesFile, ...rest] = process.argv.slice(2);
const nodes = JSON.parse(fs.readFileSync(nodesFile, 'utf8'));
let out;
if (cmd === 'propagate') out = await propagate(nodes, rest[0], Number(rest[1]));
else if (cmd === 'failover') out = await failover(nodes, Number(rest[0]), rest[1], rest[2]);
else throw new Error(`unknown command ${cmd}`);
console.log(JSON.stringify(out));
agent.destroy();
