// GET /api/v1/users on a large directory: the requests the admin page's
// Users page sends (a page of 50 by offset, a substring search). Imports
// BENCH_USERS users (1,000,000) through the real import API (CSV, chunks of
// 200,000, no passwords), then times each request BENCH_RUNS times (7) and
// prints the median, min and max. Not part of `make test`; bounded: one
// server, a fixed number of requests, each with a 60 s timeout.
//
//   ATRIUMD=build-opt/atriumd node bench/users_list.mjs
import { startServer } from '../tests/integration/harness.mjs';

const N = Number(process.env.BENCH_USERS || 1000000);
const RUNS = Number(process.env.BENCH_RUNS || 7);
const CHUNK = 200000;
const name = (i) => `u${String(i).padStart(7, '0')}`;

const srv = await startServer({ atlas: '<Domain>bench.example</Domain>' });
try {
  const token = await srv.login();
  const t0 = performance.now();
  for (let s = 0; s < N; s += CHUNK) {
    let csv = 'name,display_name\n';
    for (let i = s; i < Math.min(N, s + CHUNK); i++) csv += `${name(i)},User ${i}\n`;
    const r = await srv.api('POST', '/api/v1/users/import', { token, body: csv, headers: { 'content-type': 'text/csv' }, timeoutMs: 300000 });
    if (r.status !== 200) throw new Error(`import: ${r.status} ${r.text}`);
  }
  console.log(`imported ${N} users in ${Math.round(performance.now() - t0)} ms`);
  const q = (s) => encodeURIComponent(s);
  const cases = [
    ['first page', 'offset=0'],
    ['page 10', 'offset=450'],
    [`middle page (offset ${N / 2})`, `offset=${N / 2}`],
    [`last page (offset ${N - 50})`, `offset=${N - 50}`],
    ['search by name part, 100 hits', `q=${q(name(Math.floor(N / 2)).slice(0, 6))}`],
    ['search by display name part', `q=${q('User 99999')}`],
    ['search without a hit', 'q=nobody'],
    ['search by login name', `q=${q(`${name(123456)}@bench.example`)}`],
  ];
  for (const [what, params] of cases) {
    const ms = [];
    let total;
    for (let k = 0; k < RUNS; k++) {
      const a = performance.now();
      const r = await srv.api('GET', `/api/v1/users?${params}&limit=50`, { token, timeoutMs: 60000 });
      ms.push(performance.now() - a);
      if (r.status !== 200) throw new Error(`${what}: ${r.status} ${r.text}`);
      total = r.json.total;
    }
    ms.sort((x, y) => x - y);
    console.log(`${what}: median ${ms[RUNS >> 1].toFixed(1)} ms, min ${ms[0].toFixed(1)}, max ${ms[RUNS - 1].toFixed(1)} (total ${total})`);
  }
} finally {
  await srv.stop();
}
