// A screen-sharing viewer as a process of its own, for tests that run it in
// a network namespace: connects to the meeting's socket with a ticket,
// acknowledges every frame, and prints one JSON line per frame
// ({seq, tier, bytes, at, delay}) until it has watched for `ms`.
// usage: node meeting-viewer.mjs HOST PORT MEETING TICKET MS
import { wsOpen } from './harness.mjs';
import { parseFrame } from './meeting-client.mjs';

const [host, port, meeting, ticket, ms] = process.argv.slice(2);
const ws = await wsOpen(Number(port), `/webmeeting/ws?meeting=${meeting}&ticket=${ticket}`, { host, timeoutMs: 10000 });
const until = Date.now() + Number(ms);
while (Date.now() < until) {
  let m;
  try { m = await ws.next(Math.max(1, until - Date.now())); } catch { break; }
  if (typeof m === 'string') {
    const f = JSON.parse(m);
    if (f.type === 'welcome') console.log(JSON.stringify({ welcome: f.you }));
    continue;
  }
  if (!Buffer.isBuffer(m)) break;
  const f = parseFrame(m);
  if (f.type !== '#frame') continue;
  ws.send(JSON.stringify({ type: 'ack', frame: f.seq, decode_ms: 0 }));
  console.log(JSON.stringify({ seq: f.seq, tier: f.tier, bytes: f.bytes, at: f.at, delay: (Date.now() % 0x100000000) - f.capture }));
}
ws.close();
process.exit(0);
