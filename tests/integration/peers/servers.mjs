// Small peers for the proxy tests, all on 127.0.0.1: an HTTPS "license
// server" answering a fixed status, a TCP server that accepts and never
// answers, and a port that is certainly closed.
import https from 'node:https';
import net from 'node:net';

/** Resolves {port, url(path), requests: [{method, url}], close()}. */
export function startLicenseServer({ cert, key, status = 200 }) {
  const requests = [];
  const server = https.createServer({ cert, key }, (req, res) => {
    requests.push({ method: req.method, url: req.url, headers: req.headers });
    const body = JSON.stringify(status < 400 ? { licensed: true } : { error: 'unavailable' });
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  });
  // A client that never finishes its handshake must not keep close() waiting.
  const sockets = new Set();
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  server.on('tlsClientError', () => {});
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({
        port,
        requests,
        url: (p = '/v1/status') => `https://localhost:${port}${p}`,
        close: () => new Promise((r) => {
          for (const s of sockets) s.destroy();
          server.close(() => r());
        }),
      });
    });
  });
}

/** A server that accepts connections and never says a word. */
export function startSilentServer() {
  const sockets = new Set();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: server.address().port,
        connections: () => sockets.size,
        close: () => new Promise((r) => {
          for (const s of sockets) s.destroy();
          server.close(() => r());
        }),
      });
    });
  });
}

/** A port on 127.0.0.1 that was bound and closed again: connecting is refused. */
export function closedPort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}
