// A client of /client/v1/ws for the tests (docs/protocols/client.md): frames
// as objects, waits by predicate (frames that do not match stay queued for
// the next wait), requests answered by id.
import { frameQueue } from './frame-queue.mjs';
import { wsOpen } from './harness.mjs';

let nextId = 0;

/** Connects with a ticket (as browsers do) or the bearer token (as apps do). */
export async function rtConnect(server, token, { ticket = true, headers = {}, client } = {}) {
  let path = '/client/v1/ws';
  if (ticket) {
    const t = await server.api('POST', '/client/v1/ws-ticket', { token, body: client ? { client } : undefined });
    if (t.status !== 200) throw Object.assign(new Error(`ticket: ${t.status} ${t.text}`), { status: t.status, body: t.json });
    path += `?ticket=${encodeURIComponent(t.json.ticket)}`;
  } else {
    headers = { Authorization: `Bearer ${token}`, ...headers };
  }
  const ws = await wsOpen(server.port, path, { headers, host: new URL(server.url).hostname });
  const queue = [];
  let closeFrame = null;
  const pull = async (ms) => {
    const m = await ws.next(ms);
    if (typeof m === 'string') return JSON.parse(m);
    if (m && m.close !== undefined) { closeFrame = m; return { type: '#close', code: m.close, reason: m.reason }; }
    return { type: '#binary', data: m };
  };
  const q = frameQueue(pull);
  const c = {
    ws,
    hello: null,
    /** The first queued or arriving frame for which pred is true. */
    waitFor: q.waitFor,
    type: q.type,
    drain: q.drain,
    /** Sends a frame with a fresh id and waits for its ok or error. */
    async request(frame, ms = 5000) {
      const id = `r${++nextId}`;
      ws.send(JSON.stringify({ ...frame, id }));
      return c.waitFor((f) => (f.type === 'ok' || f.type === 'error') && f.id === id, ms, `answer to ${frame.type}`);
    },
    send(frame) { ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame)); },
    async closed(ms = 5000) {
      if (closeFrame) return closeFrame;
      const f = await c.type('#close', ms);
      return { close: f.code, reason: f.reason };
    },
    close() { ws.close(); },
  };
  c.hello = await c.type('hello', 5000);
  return c;
}

export async function clientLogin(server, login, password, device) {
  const r = await server.api('POST', '/client/v1/login', { body: { login, password, ...(device ? { device } : {}) } });
  if (r.status !== 200) throw new Error(`login ${login}: ${r.status} ${r.text}`);
  return r.json.token;
}
