// A participant of the web meeting's WebSocket for the tests
// (docs/protocols/meeting.md): JSON frames as objects, screen frames as
// {type: '#frame', tier, seq, ...}; waits by predicate (frames that do not
// match stay queued for the next wait).
import zlib from 'node:zlib';

import { frameQueue } from './frame-queue.mjs';
import { wsOpen } from './harness.mjs';

export const TIERS = ['high', 'medium', 'low', 'lossless'];

/** Parses a viewer frame (16-byte header, then the image). */
export function parseFrame(buf) {
  if (buf.length < 16 || buf[0] !== 0x46) return { type: '#binary', data: buf };
  return {
    type: '#frame', tier: TIERS[buf[1]], format: buf[2], seq: buf.readUInt32BE(4),
    capture: buf.readUInt32BE(8), width: buf.readUInt16BE(12), height: buf.readUInt16BE(14),
    image: buf.subarray(16), bytes: buf.length, at: Date.now(),
  };
}

/** A region message: header (24 bytes) then the image. */
export function region({ format = 1, last = true, seq = 0, capture = 0, fbW, fbH, x = 0, y = 0, w, h, image }) {
  const head = Buffer.alloc(24);
  head[0] = 0x52; head[1] = format; head[2] = last ? 1 : 0;
  head.writeUInt32BE(seq >>> 0, 4); head.writeUInt32BE(capture >>> 0, 8);
  head.writeUInt16BE(fbW, 12); head.writeUInt16BE(fbH, 14);
  head.writeUInt16BE(x, 16); head.writeUInt16BE(y, 18); head.writeUInt16BE(w, 20); head.writeUInt16BE(h, 22);
  return Buffer.concat([head, Buffer.from(image)]);
}

/** Opens the meeting socket: a user with a ticket, or a guest. */
export async function meetingConnect(server, meetingId, { token, sock = {} } = {}) {
  let path = `/webmeeting/ws?meeting=${encodeURIComponent(meetingId)}`;
  if (token) {
    const t = await server.api('POST', `/client/v1/meetings/${meetingId}/ticket`, { token });
    if (t.status !== 200) throw Object.assign(new Error(`ticket: ${t.status} ${t.text}`), { status: t.status });
    path += `&ticket=${encodeURIComponent(t.json.ticket)}`;
  }
  const ws = await wsOpen(server.port, path, sock);
  const pull = async (ms) => {
    const m = await ws.next(ms);
    if (typeof m === 'string') return JSON.parse(m);
    if (m && m.close !== undefined) return { type: '#close', code: m.close, reason: m.reason };
    return parseFrame(m);
  };
  const q = frameQueue(pull, short);
  const c = {
    ws,
    waitFor: q.waitFor,
    type: q.type,
    drain: q.drain,
    error(code, ms) { return q.type('error', ms, (f) => f.code === code); },
    send(frame) { ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame)); },
    sendBinary(b) { ws.sendBinary(b); },
    close() { ws.close(); },
  };
  c.welcome = await c.type('welcome', 5000);
  return c;
}

function short(f) { return f.type === '#frame' ? { type: f.type, tier: f.tier, seq: f.seq } : f; }

/** A meeting to open sockets on: web meetings on, a host user, one meeting.
 * Returns {id, join_url, token (the host's)}. */
export async function openMeeting(server, { admin, title = 'Test meeting' } = {}) {
  admin = admin ?? await server.login();
  let r = await server.api('PATCH', '/api/v1/settings', { token: admin, body: { 'meeting.enabled': true } });
  // 409: set by ATRIUM_MEETING_ENABLED, which the caller chose.
  if (r.status !== 200 && r.status !== 409) throw new Error(`meeting.enabled: ${r.status} ${r.text}`);
  const name = `host${Math.floor(Math.random() * 1e9)}`;
  r = await server.api('POST', '/api/v1/users', { token: admin, body: { name, password: 'meeting-host-1' } });
  if (r.status !== 201) throw new Error(`host user: ${r.status} ${r.text}`);
  r = await server.api('POST', '/client/v1/login', { body: { login: name, password: 'meeting-host-1' } });
  const token = r.json.token;
  r = await server.api('POST', '/client/v1/meetings', { token, body: { title } });
  if (r.status !== 201) throw new Error(`meeting: ${r.status} ${r.text}`);
  return { ...r.json, token };
}

/** A ping with data, answered by a pong with the same data. */
export async function wsPing(ws, data, ms = 10000) {
  ws.send(JSON.stringify({ type: 'ping', data }));
  for (;;) {
    const m = await ws.next(ms);
    if (typeof m !== 'string') throw new Error(`not a text frame: ${JSON.stringify(m)}`);
    const f = JSON.parse(m);
    if (f.type === 'pong') return f.data;
  }
}

// ---- a presenter's screen without a browser: PNG regions of a scrolling page ----


const CRC = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
/** An RGB image (3 bytes a pixel) as PNG. */
export function encodePng(w, h, rgb) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) rgb.copy(raw, y * (w * 3 + 1) + 1, y * w * 3, (y + 1) * w * 3);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 2; // 8 bits, truecolour
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw, { level: 1 })), chunk('IEND', Buffer.alloc(0))]);
}

/** A page of text-like glyphs, taller than the screen, to scroll through. */
export function textPage(w, h, seed = 1) {
  let s = seed;
  const rnd = () => { s = (s * 1103515245 + 12345) & 0x7fffffff; return s / 0x7fffffff; };
  const page = Buffer.alloc(w * h * 3, 255);
  for (let cy = 0; cy + 12 <= h; cy += 14) {
    for (let cx = 4; cx + 8 <= w - 4; cx += 9) {
      if (rnd() < 0.25) continue; // spaces
      for (let y = 0; y < 10; y++) for (let x = 0; x < 7; x++) {
        if (rnd() < 0.45) {
          const o = ((cy + y) * w + cx + x) * 3;
          page[o] = 20; page[o + 1] = 20; page[o + 2] = 60;
        }
      }
    }
  }
  return page;
}

/** The screen at scroll offset `top` of the page, as one full-screen PNG
 * region. `pan` also moves it `pan` pixels to the left (each row wraps
 * around): panned diagonally, no row of a frame is a row of the frame
 * before, so the server has nothing to reuse and sends whole pictures. */
export function screenRegion(page, w, pageH, h, top, seq, { pan = 0 } = {}) {
  const rgb = Buffer.alloc(w * h * 3);
  const off = top % (pageH - h);
  page.copy(rgb, 0, off * w * 3, (off + h) * w * 3);
  const px = ((pan % w) + w) % w;
  if (px) {
    for (let y = 0; y < h; y++) {
      const row = Buffer.from(rgb.subarray(y * w * 3, (y + 1) * w * 3));
      row.copy(rgb, y * w * 3, px * 3);
      row.copy(rgb, y * w * 3 + (w - px) * 3, 0, px * 3);
    }
  }
  return region({ format: 2, seq, capture: Date.now() % 0x100000000, fbW: w, fbH: h, w, h, image: encodePng(w, h, rgb) });
}
