// A lean WebSocket client for the meeting benchmark: the tests' client
// (tests/integration/harness.mjs) copies every received byte into one
// growing buffer and masks what it sends byte by byte in JavaScript, which
// at tens of MB/s would measure node rather than the server. This one
// parses frames as the chunks come (a binary message's first bytes kept,
// the rest only counted) and masks with the all-zero key, which RFC 6455
// allows and which leaves the payload as it is.
import crypto from 'node:crypto';
import net from 'node:net';

/** Opens ws://host:port/path. onText(string), onBinary(head: Buffer of the
 * first `keep` bytes, length, at: ms when its last byte arrived). Resolves
 * to {send(text), sendBinary(buf), close(), sock} after the 101. */
export function wsConnect({ host, port, path, keep = 16, onText = () => {}, onBinary = () => {}, timeoutMs = 10000 }) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    sock.setNoDelay(true);
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`WebSocket to ${host}:${port} timed out`)); }, timeoutMs);
    let head = Buffer.alloc(0), upgraded = false;
    // The frame parser's state: the header being read, then the payload.
    let inHeader = true, hdr = Buffer.alloc(0), need = 0, opcode = 0, got = 0, first = [], firstLen = 0, text = [];
    const ws = {
      sock,
      send: (s) => sock.write(frame(1, Buffer.from(s))),
      sendBinary: (b) => sock.write(frame(2, b)),
      close: () => { try { sock.end(frame(8, Buffer.from([0x03, 0xe8]))); } catch { /* gone */ } },
    };
    const payload = (chunk) => {
      got += chunk.length;
      if (opcode === 1 || opcode === 8) text.push(chunk);
      else if (firstLen < keep) { const k = chunk.subarray(0, keep - firstLen); first.push(k); firstLen += k.length; }
      if (got < need) return;
      const at = Date.now();
      // ws goes along: frames that came with the upgrade's answer arrive
      // before the caller's await has it.
      if (opcode === 1) onText(Buffer.concat(text).toString(), ws);
      else if (opcode === 2) onBinary(Buffer.concat(first), need, at, ws);
      else if (opcode === 9) sock.write(frame(10, Buffer.alloc(0)));
      text = []; first = []; firstLen = 0; hdr = Buffer.alloc(0); inHeader = true;
    };
    const feed = (d) => {
      let off = 0;
      while (off < d.length) {
        if (inHeader) {
          // At most 10 bytes: copying them is cheap.
          hdr = Buffer.concat([hdr, d.subarray(off, off + 1)]);
          off += 1;
          if (headerDone()) {
            inHeader = false;
            got = 0;
            if (need === 0) payload(Buffer.alloc(0));
          }
          continue;
        }
        const take = Math.min(need - got, d.length - off);
        payload(d.subarray(off, off + take));
        off += take;
      }
    };
    // Whether hdr holds a whole header; sets need and opcode when it does.
    function headerDone() {
      if (hdr.length < 2) return false;
      const l = hdr[1] & 0x7f, n = l === 126 ? 4 : l === 127 ? 10 : 2;
      if (hdr.length < n) return false;
      opcode = hdr[0] & 0x0f;
      need = l === 126 ? hdr.readUInt16BE(2) : l === 127 ? Number(hdr.readBigUInt64BE(2)) : l;
      return true;
    }
    sock.on('error', (e) => { clearTimeout(timer); if (!upgraded) reject(e); });
    sock.on('connect', () => {
      sock.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n`
        + `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n\r\n`);
    });
    sock.on('data', (d) => {
      if (upgraded) { feed(d); return; }
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const status = head.subarray(0, end).toString().split(' ')[1];
      clearTimeout(timer);
      if (status !== '101') { sock.destroy(); reject(new Error(`no upgrade: HTTP ${status}`)); return; }
      upgraded = true;
      resolve(ws);
      if (head.length > end + 4) feed(head.subarray(end + 4));
    });
  });
}

function frame(opcode, payload) {
  const len = payload.length;
  let h;
  if (len < 126) h = Buffer.from([0x80 | opcode, 0x80 | len, 0, 0, 0, 0]);
  else if (len < 65536) h = Buffer.from([0x80 | opcode, 0xfe, len >> 8, len & 0xff, 0, 0, 0, 0]);
  else { h = Buffer.alloc(14); h[0] = 0x80 | opcode; h[1] = 0xff; h.writeBigUInt64BE(BigInt(len), 2); }
  return Buffer.concat([h, payload]);
}
