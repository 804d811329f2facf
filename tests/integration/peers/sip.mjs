// A SIP-over-TLS endpoint of a partner domain for the federation tests: it
// speaks RFC 3261 framing over node:tls with a client certificate (mutual
// TLS, as federation requires), sends requests and answers the requests
// atriumd sends to its listening side. It is the scripted counterpart to
// the real peers (baresip, kamailio, sipsak): precise about what goes on
// the wire, so that a test can forge a From or a PIDF on purpose.
//
// Also here: the test PKI (one CA, a certificate per domain) and dnsmasq
// for the partner's SRV records.
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';

const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA and certificates: names = {file: ['DNS:x', 'IP:y', ...]}. Resolves
 * {dir, ca, file(name) -> {cert, key, certPath, keyPath}, remove()}. */
export async function makePki(names) {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'atrium-sip-pki-'));
  openssl(['req', '-x509', ...ecKey, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2',
    '-subj', '/CN=Federation Test CA', '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  const out = {};
  for (const [name, sans] of Object.entries(names)) {
    const cn = sans[0].replace(/^DNS:/, '');
    openssl(['req', ...ecKey, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
    await fsp.writeFile(path.join(dir, `${name}.ext`),
      `subjectAltName=${sans.join(',')}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n`
      + 'extendedKeyUsage=serverAuth,clientAuth\n');
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key',
      '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`], dir);
    out[name] = {
      certPath: path.join(dir, `${name}.pem`), keyPath: path.join(dir, `${name}.key`),
      cert: await fsp.readFile(path.join(dir, `${name}.pem`)),
      key: await fsp.readFile(path.join(dir, `${name}.key`)),
    };
  }
  return {
    dir, caPath: path.join(dir, 'ca.pem'), ca: await fsp.readFile(path.join(dir, 'ca.pem')),
    ...out, remove: () => fsp.rm(dir, { recursive: true, force: true }),
  };
}

/** Parses SIP messages out of a stream. */
function framer(onMessage) {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      while (buf.length >= 2 && buf[0] === 13 && buf[1] === 10) buf = buf.subarray(2); // keep-alives
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('utf8');
      const lines = head.split('\r\n');
      const headers = {};
      for (const line of lines.slice(1)) {
        const i = line.indexOf(':');
        if (i < 0) continue;
        let name = line.slice(0, i).trim().toLowerCase();
        name = { l: 'content-length', f: 'from', t: 'to', i: 'call-id', v: 'via', m: 'contact', c: 'content-type', o: 'event' }[name] ?? name;
        (headers[name] ??= []).push(line.slice(i + 1).trim());
      }
      const len = Number(headers['content-length']?.[0] ?? 0);
      if (buf.length < end + 4 + len) return;
      const body = buf.subarray(end + 4, end + 4 + len).toString('utf8');
      buf = buf.subarray(end + 4 + len);
      const start = lines[0];
      const m = /^SIP\/2\.0 (\d{3}) ?(.*)$/.exec(start);
      const msg = { start, headers, body, h: (n) => headers[n.toLowerCase()]?.[0] };
      if (m) { msg.status = Number(m[1]); msg.reason = m[2]; } else {
        const [method, uri] = start.split(' ');
        msg.method = method; msg.uri = uri;
      }
      onMessage(msg);
    }
  };
}

const tag = () => crypto.randomBytes(6).toString('hex');

/**
 * A partner endpoint: a TLS server (for what atriumd sends it) and client
 * connections (to send). opts: {host, cert, key, ca}.
 */
export async function startSipPeer(opts) {
  const incoming = [];
  const waiters = [];
  const pending = new Map(); // branch -> {resolve, provisional}
  const sockets = new Set();
  let autoReply = null; // (req) => [status, reason, headers, body] | null

  const deliver = (sock) => (msg) => {
    msg.socket = sock;
    if (msg.status) {
      const branch = /branch=([^;, ]+)/.exec(msg.h('via') ?? '')?.[1];
      const p = pending.get(branch);
      if (p && msg.status >= 200) { pending.delete(branch); p.resolve(msg); }
      return;
    }
    if (autoReply) {
      const a = autoReply(msg);
      if (a) { peer.reply(msg, ...a); }
    }
    const i = waiters.findIndex((w) => w.pred(msg));
    if (i >= 0) { const w = waiters.splice(i, 1)[0]; clearTimeout(w.timer); w.resolve(msg); return; }
    incoming.push(msg);
  };
  const watch = (sock) => {
    sockets.add(sock);
    sock.on('data', framer(deliver(sock)));
    sock.on('error', () => {});
    sock.on('close', () => sockets.delete(sock));
  };

  const server = tls.createServer({
    key: opts.key, cert: opts.cert, ca: opts.ca, requestCert: true, rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
  }, watch);
  server.on('tlsClientError', () => {});
  await new Promise((res, rej) => { server.once('error', rej); server.listen(opts.port ?? 0, opts.host, res); });
  const port = server.address().port;

  const peer = {
    host: opts.host, port,
    /** A TLS connection to host:port with this peer's certificate (or another). */
    async connect(host, p, o = {}) {
      const sock = tls.connect({
        host, port: p, key: 'key' in o ? o.key : opts.key, cert: 'cert' in o ? o.cert : opts.cert, ca: opts.ca,
        minVersion: o.minVersion ?? 'TLSv1.2', maxVersion: o.maxVersion,
        checkServerIdentity: () => undefined, // atriumd's names are checked by the tests that care
      });
      await new Promise((res, rej) => { sock.once('secureConnect', res); sock.once('error', rej); });
      watch(sock);
      return sock;
    },
    /** Sends a request; resolves its final response (or rejects after ms). */
    request(sock, method, uri, { from, to, callId, cseq = 1, headers = {}, body = '', contentType, fromTag, toTag } = {}, ms = 5000) {
      const branch = 'z9hG4bK' + tag();
      const lines = [
        `${method} ${uri} SIP/2.0`,
        `Via: SIP/2.0/TLS ${opts.host}:${port};branch=${branch}`,
        'Max-Forwards: 70',
        `From: <sip:${from}>;tag=${fromTag ?? tag()}`,
        `To: <sip:${to}>${toTag ? `;tag=${toTag}` : ''}`,
        `Call-ID: ${callId ?? tag() + '@' + opts.host}`,
        `CSeq: ${cseq} ${method}`,
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
      ];
      if (body) lines.push(`Content-Type: ${contentType ?? 'text/plain'}`);
      lines.push(`Content-Length: ${Buffer.byteLength(body)}`, '', body);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => { pending.delete(branch); reject(new Error(`no answer to ${method} within ${ms} ms`)); }, ms);
        pending.set(branch, { resolve: (m) => { clearTimeout(timer); resolve(m); } });
        sock.write(lines.join('\r\n'));
      });
    },
    /** Answers a request atriumd sent. */
    reply(req, status, reason = 'OK', headers = {}, body = '', contentType, toTag = tag()) {
      const to = req.h('to');
      const lines = [`SIP/2.0 ${status} ${reason}`];
      for (const v of req.headers.via ?? []) lines.push(`Via: ${v}`);
      lines.push(`From: ${req.h('from')}`, `To: ${/;tag=/.test(to) ? to : `${to};tag=${toTag}`}`,
        `Call-ID: ${req.h('call-id')}`, `CSeq: ${req.h('cseq')}`);
      for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
      if (body) lines.push(`Content-Type: ${contentType ?? 'application/pidf+xml'}`);
      lines.push(`Content-Length: ${Buffer.byteLength(body)}`, '', body);
      req.socket.write(lines.join('\r\n'));
    },
    /** The first queued or arriving request for which pred is true. */
    waitRequest(pred, ms = 5000, what = 'a request') {
      const i = incoming.findIndex(pred);
      if (i >= 0) return Promise.resolve(incoming.splice(i, 1)[0]);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve };
        w.timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no ${what} within ${ms} ms; queued: ${incoming.map((m) => m.start).join(' | ')}`));
        }, ms);
        waiters.push(w);
      });
    },
    /** Requests that arrived and were not waited for. */
    queued: () => incoming.slice(),
    /** Answer requests without a test waiting: fn(req) -> [status, reason, headers, body] or null. */
    setAutoReply(fn) { autoReply = fn; },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((res) => server.close(() => res()));
    },
  };
  return peer;
}

/** A PIDF document for an address. */
export function pidf(address, { basic = 'open', activity, note } = {}) {
  return '<?xml version="1.0" encoding="UTF-8"?>\n'
    + `<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" entity="pres:${address}">`
    + `<tuple id="a1"><status><basic>${basic}</basic></status></tuple>`
    + (activity ? `<dm:person id="p1"><rpid:activities><rpid:${activity}/></rpid:activities></dm:person>` : '')
    + (note ? `<note>${note}</note>` : '')
    + '</presence>';
}

/** dnsmasq answering for the partner's records on address:port (UDP).
 * records: {srv: [[name, target, port]], a: [[name, ip]]}. */
export async function startDnsmasq(address, port, records) {
  const args = ['-k', '--conf-file=/dev/null', `--port=${port}`, `--listen-address=${address}`,
    '--bind-interfaces', '--no-resolv', '--no-hosts', '--no-negcache', '--log-facility=-'];
  for (const [name, target, p] of records.srv ?? []) args.push(`--srv-host=${name},${target},${p}`);
  for (const [name, ip] of records.a ?? []) args.push(`--host-record=${name},${ip}`);
  const proc = spawn('dnsmasq', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  const until = Date.now() + 5000;
  while (!/started/.test(out) && proc.exitCode === null && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
  if (proc.exitCode !== null || !/started/.test(out)) { proc.kill('SIGKILL'); throw new Error(`dnsmasq did not start: ${out}`); }
  return {
    output: () => out,
    async stop() {
      if (proc.exitCode !== null) return;
      proc.kill('SIGTERM');
      await new Promise((r) => { const t = setTimeout(() => { proc.kill('SIGKILL'); r(); }, 3000); proc.once('exit', () => { clearTimeout(t); r(); }); });
    },
  };
}
