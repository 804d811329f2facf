// A DNS server that knows no names: it answers every query at once with
// NXDOMAIN. squid is pointed at it so that a name the proxy cannot resolve
// fails in milliseconds instead of after squid's DNS timeouts. It listens on
// port 53 of a random 127.x.y.z address (squid cannot be given another port),
// which needs root; startNxdomainServer resolves null when it cannot bind.
import dgram from 'node:dgram';

function answer(query) {
  if (query.length < 12) return null;
  // Skip the question's name (labels up to a zero byte), then type and class.
  let i = 12;
  while (i < query.length && query[i] !== 0) {
    if ((query[i] & 0xc0) !== 0) return null; // no compression in a question
    i += query[i] + 1;
  }
  const end = i + 5;
  if (end > query.length) return null;
  const reply = Buffer.alloc(end);
  query.copy(reply, 0, 0, end);
  reply[2] = 0x80 | (query[2] & 0x01); // QR, keep RD
  reply[3] = 0x80 | 3; // RA, RCODE NXDOMAIN
  reply.writeUInt16BE(1, 4); // one question
  reply.writeUInt16BE(0, 6);
  reply.writeUInt16BE(0, 8);
  reply.writeUInt16BE(0, 10);
  return reply;
}

/** Resolves {address, queries(), close()} or null. */
export async function startNxdomainServer() {
  for (let attempt = 0; attempt < 5; attempt++) {
    const address = `127.${1 + Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${
      1 + Math.floor(Math.random() * 250)}`;
    const sock = dgram.createSocket('udp4');
    let count = 0;
    sock.on('message', (msg, rinfo) => {
      count++;
      const r = answer(msg);
      if (r) sock.send(r, rinfo.port, rinfo.address);
    });
    const ok = await new Promise((resolve) => {
      sock.once('error', () => resolve(false));
      sock.bind(53, address, () => resolve(true));
    });
    if (ok) {
      return {
        address,
        queries: () => count,
        close: () => new Promise((r) => sock.close(() => r())),
      };
    }
    sock.close();
    if (process.getuid && process.getuid() !== 0) return null;
  }
  return null;
}
