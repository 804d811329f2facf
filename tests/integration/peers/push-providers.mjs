// Stand-ins for the push providers, which cannot be reached from the test
// machine: APNs (HTTP/2, provider tokens, Apple's reasons), FCM HTTP v1 with
// its OAuth2 token endpoint, and a Matrix push gateway. Each checks what
// the real one checks and answers with the real one's status codes and
// bodies, so the tests exercise atriumd's protocol code, not a mock of it.
// TLS with the test CA of tls-files.mjs (127.0.0.1 and localhost).
import crypto from 'node:crypto';
import http2 from 'node:http2';
import https from 'node:https';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PUSH_TYPES = new Set(['alert', 'background', 'voip', 'complication', 'fileprovider', 'mdm', 'location', 'liveactivity']);

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const fromB64url = (s) => Buffer.from(s, 'base64url');

/** Keys as the providers hand them out: an APNs .p8 (EC P-256, PKCS#8) and
 * an FCM service-account key file (RSA, PKCS#8 inside JSON). */
export function makeApnsKey({ curve = 'P-256', format = 'pkcs8' } = {}) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: curve });
  return { pem: privateKey.export({ type: format, format: 'pem' }), publicKey };
}

export function makeServiceAccount(tokenUri, projectId = 'atrium-test') {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const json = {
    type: 'service_account',
    project_id: projectId,
    private_key_id: crypto.randomBytes(20).toString('hex'),
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    client_email: `push@${projectId}.iam.gserviceaccount.com`,
    client_id: '1234567890',
    auth_uri: 'https://accounts.google.com/o/oauth2/auth',
    token_uri: tokenUri,
  };
  return { json, text: JSON.stringify(json, null, 2), publicKey };
}

function readBody(stream, limit) {
  return new Promise((resolve) => {
    const chunks = [];
    let n = 0;
    stream.on('data', (c) => { n += c.length; if (n <= limit + 1) chunks.push(c); });
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', () => resolve(Buffer.concat(chunks)));
  });
}

/** The HTTP/2 sessions (and HTTP/1.1 sockets) of a server, to end them. */
function trackSessions(server) {
  const all = new Set();
  const add = (s) => { all.add(s); s.on('close', () => all.delete(s)); s.on('error', () => {}); };
  server.on('session', add);
  server.on('secureConnection', (sock) => { if (sock.alpnProtocol !== 'h2') add(sock); });
  return all;
}

/** server.close, bounded: a connection the client still holds must not keep
 * the test waiting (the timer also keeps the event loop alive meanwhile). */
function closeServer(server, drop) {
  return new Promise((resolve) => {
    drop();
    const t = setTimeout(resolve, 2000);
    server.close(() => { clearTimeout(t); resolve(); });
    if (server.closeAllConnections) server.closeAllConnections();
  });
}

function listen(server, port = 0) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server.address().port));
  });
}

/** Verifies a JWS compact token; returns {header, claims} or a reason. */
function verifyJwt(token, publicKey, alg) {
  const parts = token.split('.');
  if (parts.length !== 3) return { error: 'malformed' };
  let header, claims;
  try {
    header = JSON.parse(fromB64url(parts[0]).toString());
    claims = JSON.parse(fromB64url(parts[1]).toString());
  } catch { return { error: 'malformed' }; }
  if (header.alg !== alg) return { error: `alg ${header.alg}`, header, claims };
  const sig = fromB64url(parts[2]);
  const data = Buffer.from(`${parts[0]}.${parts[1]}`);
  let ok;
  if (alg === 'ES256') {
    // JWS: r||s, 64 bytes. A DER signature here is what APNs refuses.
    if (sig.length !== 64) return { error: `signature of ${sig.length} bytes, not 64`, header, claims };
    ok = crypto.verify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig);
  } else {
    ok = crypto.verify('sha256', data, publicKey, sig);
  }
  return ok ? { header, claims, sigLength: sig.length } : { error: 'bad signature', header, claims };
}

/**
 * APNs. opts: {cert, key, keyId, teamId, topic, publicKey (of the .p8),
 * port?, h1only?}. The returned object records every request in `received`
 * and lets a test change what it answers: `unregistered` (token → timestamp),
 * `badTokens`, `fail` ([{status, reason, retryAfter}] answered first, in order),
 * `goawayAfter` (GOAWAY after that many answers), `delayMs`.
 */
export async function startApns(opts) {
  const st = {
    received: [], // accepted notifications: {apnsId, token, headers, body, at}
    answers: [],  // every answer: {status, reason}
    tokensSeen: new Set(),
    unregistered: new Map(),
    badTokens: new Set(),
    fail: [],
    goawayAfter: 0,
    delayMs: 0,
    connections: 0,
    maxStreamsSeen: 0,
    sessions: new Set(),
    keyId: opts.keyId, teamId: opts.teamId, topic: opts.topic, publicKey: opts.publicKey,
  };
  let answered = 0;
  let authorizedOnce = false;

  const reply = (stream, status, reason, extra = {}) => {
    st.answers.push({ status, reason });
    if (stream.destroyed || stream.closed) return;
    const headers = { ':status': status, 'content-type': 'application/json', ...extra };
    // Apple's 200 has no body: its HEADERS frame ends the stream.
    if (status === 200) { stream.respond(headers, { endStream: true }); return; }
    const body = { reason };
    if (extra.timestamp) { body.timestamp = extra.timestamp; delete headers.timestamp; }
    stream.respond(headers);
    stream.end(JSON.stringify(body));
  };

  const check = (h, body) => {
    // The order Apple checks in, as far as its documentation tells.
    const auth = h.authorization;
    if (!auth) return [403, 'MissingProviderToken'];
    const m = /^bearer (.+)$/i.exec(auth);
    if (!m) return [403, 'InvalidProviderToken'];
    const v = verifyJwt(m[1], st.publicKey, 'ES256');
    if (v.error) return [403, 'InvalidProviderToken', v.error];
    if (v.header.kid !== st.keyId || v.claims.iss !== st.teamId) return [403, 'InvalidProviderToken'];
    const age = Date.now() / 1000 - v.claims.iat;
    if (age > 3600) return [403, 'ExpiredProviderToken'];
    if (age < -60) return [403, 'InvalidProviderToken'];
    st.tokensSeen.add(m[1]);
    const path = h[':path'] || '';
    const pm = /^\/3\/device\/([^/?]+)$/.exec(path);
    if (h[':method'] !== 'POST') return [405, 'MethodNotAllowed'];
    if (!pm) return [404, 'BadPath'];
    const token = pm[1];
    if (!h['apns-topic']) return [400, 'MissingTopic'];
    const pushType = h['apns-push-type'];
    if (pushType !== undefined && !PUSH_TYPES.has(pushType)) return [400, 'InvalidPushType'];
    const prio = h['apns-priority'];
    if (prio !== undefined && !['1', '5', '10'].includes(prio)) return [400, 'BadPriority'];
    if (pushType === 'background' && prio === '10') return [400, 'BadPriority'];
    if (h['apns-id'] !== undefined && !UUID.test(h['apns-id'])) return [400, 'BadMessageId'];
    if (h['apns-expiration'] !== undefined && !/^\d+$/.test(h['apns-expiration'])) return [400, 'BadExpirationDate'];
    if (h['apns-collapse-id'] !== undefined && Buffer.byteLength(h['apns-collapse-id']) > 64) return [400, 'BadCollapseId'];
    if (body.length > 4096) return [413, 'PayloadTooLarge'];
    if (body.length === 0) return [400, 'PayloadEmpty'];
    let doc;
    try { doc = JSON.parse(body.toString()); } catch { return [400, 'BadRequest']; }
    if (!doc || typeof doc.aps !== 'object') return [400, 'BadRequest'];
    if (!/^[0-9a-f]{64}$/i.test(token) || st.badTokens.has(token)) return [400, 'BadDeviceToken'];
    if (h['apns-topic'] !== st.topic) return [400, 'DeviceTokenNotForTopic'];
    if (st.unregistered.has(token)) return [410, 'Unregistered', st.unregistered.get(token)];
    return [200, null, { token, doc }];
  };

  const onStream = async (stream, h) => {
    const body = await readBody(stream, 8192);
    if (st.delayMs) await new Promise((r) => setTimeout(r, st.delayMs));
    const session = stream.session;
    if (st.fail.length && h.authorization) {
      const f = st.fail.shift();
      return reply(stream, f.status, f.reason, f.retryAfter !== undefined ? { 'retry-after': String(f.retryAfter) } : {});
    }
    const [status, reason, info] = check(h, body);
    if (status === 200) {
      st.received.push({ apnsId: h['apns-id'], token: info.token, headers: { ...h }, body: info.doc, bytes: body.length, at: Date.now() });
      reply(stream, 200, null, { 'apns-id': h['apns-id'] || crypto.randomUUID() });
    } else if (status === 410) {
      reply(stream, 410, reason, { timestamp: info });
    } else {
      reply(stream, status, reason);
    }
    // Apple raises the stream limit once the connection has a valid token.
    if (!authorizedOnce && status !== 403) {
      authorizedOnce = true;
      for (const s of st.sessions) if (!s.destroyed) s.settings({ maxConcurrentStreams: 1000 });
    }
    answered++;
    if (st.goawayAfter && answered >= st.goawayAfter && session && !session.destroyed) {
      st.goawayAfter = 0;
      st.goaways = (st.goaways ?? 0) + 1;
      // Streams after this one were never processed: the client sends them again.
      session.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id);
      setTimeout(() => { if (!session.destroyed) session.destroy(); }, 200);
    }
  };

  let server;
  if (opts.h1only) {
    // A middlebox that only speaks HTTP/1.1 in front of APNs.
    server = https.createServer({ cert: opts.cert, key: opts.key }, (req, res) => {
      st.answers.push({ status: 400, reason: 'BadRequest', http1: true });
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ reason: 'BadRequest' }));
    });
  } else {
    server = http2.createSecureServer({
      cert: opts.cert, key: opts.key, allowHTTP1: false,
      settings: { maxConcurrentStreams: 1 },
    });
    server.on('session', (s) => {
      st.connections++;
      st.sessions.add(s);
      if (authorizedOnce) s.settings({ maxConcurrentStreams: 1000 });
      s.on('close', () => st.sessions.delete(s));
      s.on('error', () => {});
    });
    server.on('stream', (stream, h) => {
      stream.on('error', () => {});
      // Streams open at once: how far the client multiplexes (the benchmark reads it).
      st.openStreams = (st.openStreams ?? 0) + 1;
      if (st.openStreams > st.maxStreamsSeen) st.maxStreamsSeen = st.openStreams;
      stream.on('close', () => {
        st.openStreams--;
        if (stream.rstCode) st.resets = (st.resets ?? 0) + 1;
      });
      onStream(stream, h);
    });
  }
  server.on('error', () => {});
  const port = await listen(server, opts.port);
  st.port = port;
  st.url = `https://127.0.0.1:${port}`;
  st.dropConnections = () => { for (const s of st.sessions) s.destroy(); };
  st.close = () => closeServer(server, st.dropConnections);
  return st;
}

/**
 * FCM HTTP v1 and its OAuth2 token endpoint (the service account's
 * token_uri points here). opts: {cert, key, port?}; set `account` (from
 * makeServiceAccount) before use. Records `tokenRequests`, `received`;
 * `unregistered` tokens answer 404 UNREGISTERED.
 */
export async function startFcm(opts) {
  const st = { received: [], tokenRequests: 0, tokensIssued: new Set(), unregistered: new Set(), answers: [], account: null, fail: [] };
  const send = (stream, status, obj) => {
    st.answers.push({ status, body: obj });
    if (stream.destroyed) return;
    stream.respond({ ':status': status, 'content-type': 'application/json; charset=UTF-8' });
    stream.end(JSON.stringify(obj));
  };
  const fcmError = (code, status, message, errorCode) => ({
    error: { code, message, status, details: errorCode ? [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode }] : [] },
  });
  const server = http2.createSecureServer({ cert: opts.cert, key: opts.key, allowHTTP1: true });
  const sessions = trackSessions(server);
  st.dropConnections = () => { for (const s of sessions) s.destroy(); };
  server.on('stream', async (stream, h) => {
    stream.on('error', () => {});
    const body = (await readBody(stream, 65536)).toString();
    const path = h[':path'];
    if (path === '/token' && h[':method'] === 'POST') {
      st.tokenRequests++;
      const form = new URLSearchParams(body);
      if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
        return send(stream, 400, { error: 'unsupported_grant_type', error_description: 'Invalid grant_type' });
      }
      const v = verifyJwt(form.get('assertion') || '', st.account.publicKey, 'RS256');
      if (v.error) return send(stream, 400, { error: 'invalid_grant', error_description: 'Invalid JWT Signature.' });
      const now = Date.now() / 1000;
      if (v.claims.iss !== st.account.json.client_email || v.claims.aud !== st.account.json.token_uri
        || v.claims.scope !== 'https://www.googleapis.com/auth/firebase.messaging'
        || !(v.claims.exp > now) || v.claims.exp - v.claims.iat > 3600 || Math.abs(v.claims.iat - now) > 300) {
        return send(stream, 400, { error: 'invalid_grant', error_description: 'Invalid JWT: claims.' });
      }
      const token = `ya29.test-${crypto.randomBytes(8).toString('hex')}`;
      st.tokensIssued.add(token);
      return send(stream, 200, { access_token: token, expires_in: 3599, token_type: 'Bearer' });
    }
    const m = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(path || '');
    if (!m || h[':method'] !== 'POST') return send(stream, 404, fcmError(404, 'NOT_FOUND', 'Not found'));
    const auth = /^Bearer (.+)$/.exec(h.authorization || '');
    if (!auth || !st.tokensIssued.has(auth[1])) {
      return send(stream, 401, fcmError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.'));
    }
    if (m[1] !== st.account.json.project_id) {
      return send(stream, 403, fcmError(403, 'PERMISSION_DENIED', 'Permission denied.'));
    }
    if (st.fail.length) { const f = st.fail.shift(); return send(stream, f.status, fcmError(f.status, f.statusText, 'injected')); }
    let doc;
    try { doc = JSON.parse(body); } catch { return send(stream, 400, fcmError(400, 'INVALID_ARGUMENT', 'Invalid JSON payload received.')); }
    const msg = doc.message;
    if (!msg || typeof msg.token !== 'string') return send(stream, 400, fcmError(400, 'INVALID_ARGUMENT', 'Request contains an invalid argument.', 'INVALID_ARGUMENT'));
    if (Buffer.byteLength(body) > 4096 + 1024) return send(stream, 400, fcmError(400, 'INVALID_ARGUMENT', 'Message is too big', 'INVALID_ARGUMENT'));
    if (st.unregistered.has(msg.token)) return send(stream, 404, fcmError(404, 'NOT_FOUND', 'Requested entity was not found.', 'UNREGISTERED'));
    if (doc.validate_only) {
      if (msg.token.length < 100) return send(stream, 400, fcmError(400, 'INVALID_ARGUMENT', 'The registration token is not a valid FCM registration token', 'INVALID_ARGUMENT'));
      return send(stream, 200, { name: `projects/${m[1]}/messages/fake_message_id` });
    }
    const id = `0:${Date.now()}%${crypto.randomBytes(6).toString('hex')}`;
    st.received.push({ token: msg.token, message: msg, headers: { ...h }, version: stream.session?.alpnProtocol });
    return send(stream, 200, { name: `projects/${m[1]}/messages/${id}` });
  });
  server.on('error', () => {});
  const port = await listen(server, opts.port);
  st.port = port;
  st.url = `https://127.0.0.1:${port}`;
  st.tokenUri = `${st.url}/token`;
  st.close = () => closeServer(server, st.dropConnections);
  return st;
}

/** A Matrix push gateway (Sygnal's API): POST /_matrix/push/v1/notify;
 * `rejected` pushkeys come back in "rejected". */
export async function startGateway(opts) {
  const st = { received: [], rejected: new Set() };
  const server = http2.createSecureServer({ cert: opts.cert, key: opts.key, allowHTTP1: true });
  const sessions = trackSessions(server);
  st.dropConnections = () => { for (const s of sessions) s.destroy(); };
  server.on('request', async (req, res) => {
    const body = (await readBody(req, 65536)).toString();
    if (req.url !== '/_matrix/push/v1/notify' || req.method !== 'POST') {
      res.writeHead(404, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' }));
    }
    let doc;
    try { doc = JSON.parse(body); } catch {
      res.writeHead(400, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ errcode: 'M_NOT_JSON', error: 'Not JSON' }));
    }
    const n = doc.notification;
    if (!n || !Array.isArray(n.devices) || n.devices.length === 0
      || n.devices.some((d) => typeof d.app_id !== 'string' || typeof d.pushkey !== 'string')) {
      res.writeHead(400, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ errcode: 'M_BAD_JSON', error: 'Expected devices with app_id and pushkey' }));
    }
    st.received.push(n);
    const rejected = n.devices.map((d) => d.pushkey).filter((k) => st.rejected.has(k));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ rejected }));
  });
  server.on('error', () => {});
  const port = await listen(server, opts.port);
  st.port = port;
  st.url = `https://127.0.0.1:${port}`;
  st.close = () => closeServer(server, st.dropConnections);
  return st;
}
