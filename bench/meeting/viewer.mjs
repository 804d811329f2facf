// Screen-sharing viewers for bench/meeting.sh, as a process of their own
// (so that one can run in a network namespace behind its link): each
// connection acknowledges every frame as soon as its last byte arrived and
// prints one JSON line per frame, {v, seq, tier, fmt, bytes, at, delay};
// fmt is the header's format (1 JPEG, 2 PNG, 3 delta), delay is receipt
// minus the presenter's capture time (one clock: namespaces share it). No decode or paint: the acknowledgement says decode_ms 0.
// The welcome's line has the time the connection was begun.
// usage: node viewer.mjs HOST PORT MEETING SECONDS NAME=TICKET...
import { wsConnect } from './ws.mjs';

const TIERS = ['high', 'medium', 'low', 'lossless'];
const [host, port, meeting, seconds, ...named] = process.argv.slice(2);
const out = [];
const flush = () => { if (out.length) process.stdout.write(out.splice(0).join('')); };
const conns = [];
for (const nt of named) {
  const [name, ticket] = nt.split('=');
  const onBinary = (h, len, at, ws) => {
    if (h.length < 16 || h[0] !== 0x46) return;
    const seq = h.readUInt32BE(4), capture = h.readUInt32BE(8);
    ws.send(`{"type":"ack","frame":${seq},"decode_ms":0}`);
    out.push(`{"v":"${name}","seq":${seq},"tier":"${TIERS[h[1]]}","fmt":${h[2]},"bytes":${len},"at":${at},"delay":${((at % 0x100000000) - capture + 0x100000000) % 0x100000000}}\n`);
  };
  const onText = (s) => {
    const f = JSON.parse(s);
    if (f.type === 'welcome') out.push(`${JSON.stringify({ v: name, welcome: f.you, at: joined })}\n`);
    else if (f.type === 'error') out.push(`${JSON.stringify({ v: name, error: f })}\n`);
  };
  const joined = Date.now();
  const ws = await wsConnect({ host, port: Number(port), path: `/webmeeting/ws?meeting=${meeting}&ticket=${ticket}`, onBinary, onText });
  conns.push(ws);
}
const tick = setInterval(flush, 200);
const end = () => {
  clearInterval(tick);
  flush();
  for (const c of conns) c.close();
  setTimeout(() => process.exit(0), 200);
};
setTimeout(end, Number(seconds) * 1000);
process.on('SIGTERM', end);
