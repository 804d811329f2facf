// The real-time connection: a ticket from POST /client/v1/ws-ticket, then a
// WebSocket to /client/v1/ws. Requests carry an "id" and are answered by an
// "ok" or "error" frame with the same id; every other frame goes to onFrame.
//
// After a close the connection is made again with a fresh ticket, after a
// delay that doubles from 1 s up to 30 s and is jittered (each client waits
// between half and all of it), so that a restarted server is not hit by every
// client at the same moment. A "bye" that ends the login (signed_out,
// disabled, deleted) stops it; a refused token stops it too.
import * as api from './api.js';

const BASE_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;
const REQUEST_TIMEOUT_MS = 20000;
const HELLO_TIMEOUT_MS = 15000;
const FINAL_BYES = new Set(['signed_out', 'disabled', 'deleted']);

/**
 * handlers: onFrame(frame), onState({state, retryAt?, detail?}) with state
 * 'connecting' | 'open' | 'waiting' | 'stopped', onHello(frame),
 * onEnd({reason, bye?, problem?}) when the connection will not come back
 * by itself (reason 'bye' or 'refused').
 */
export function createConnection({ onFrame, onState, onHello, onEnd }) {
  let ws = null;
  let running = false;
  let attempt = 0;
  let retryTimer = null;
  let lastBye = null;
  let nextId = 1;
  const pending = new Map();
  let generation = 0;

  function setState(state, extra = {}) { onState({ state, ...extra }); }

  function failPending(detail) {
    for (const [id, p] of pending) {
      clearTimeout(p.timer);
      p.resolve({ type: 'error', id, status: 0, detail, local: true });
    }
    pending.clear();
  }

  function stop() {
    running = false;
    generation++;
    clearTimeout(retryTimer);
    retryTimer = null;
    const old = ws;
    ws = null;
    if (old) {
      try { old.close(1000); } catch { /* already closed */ }
    }
    failPending(null);
    setState('stopped');
  }

  function start() {
    if (running) return;
    running = true;
    attempt = 0;
    connect();
  }

  function scheduleRetry(detail) {
    if (!running) return;
    const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** attempt);
    const delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
    attempt = Math.min(attempt + 1, 16);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => { retryTimer = null; connect(); }, delay);
    setState('waiting', { retryAt: Date.now() + delay, detail, bye: lastBye });
  }

  /** Skips the wait before the next attempt. */
  function retryNow() {
    if (!running || ws || !retryTimer) return;
    clearTimeout(retryTimer);
    retryTimer = null;
    connect();
  }

  async function connect() {
    if (!running) return;
    const gen = ++generation;
    setState('connecting', { bye: lastBye });
    const r = await api.wsTicket();
    if (gen !== generation || !running) return;
    if (r.status === 401) {
      running = false;
      setState('stopped');
      onEnd({ reason: 'refused', problem: r.json, bye: lastBye });
      return;
    }
    if (r.status !== 200 || !r.json?.ticket) {
      scheduleRetry(api.problemText(r));
      return;
    }
    let sock;
    try {
      sock = new WebSocket(api.wsUrl(r.json.ticket));
    } catch (e) {
      scheduleRetry(e.message);
      return;
    }
    ws = sock;
    let byeReason = null;
    // A connection that does not say hello in time is given up and tried again.
    const helloTimer = setTimeout(() => { if (ws === sock) sock.close(); }, HELLO_TIMEOUT_MS);
    sock.addEventListener('message', (ev) => {
      if (ws !== sock || typeof ev.data !== 'string') return;
      let frame;
      try { frame = JSON.parse(ev.data); } catch { return; }
      if (!frame || typeof frame !== 'object' || typeof frame.type !== 'string') return;
      if ((frame.type === 'ok' || frame.type === 'error') && frame.id !== undefined && pending.has(frame.id)) {
        const p = pending.get(frame.id);
        pending.delete(frame.id);
        clearTimeout(p.timer);
        p.resolve(frame);
        return;
      }
      if (frame.type === 'hello') {
        clearTimeout(helloTimer);
        attempt = 0;
        lastBye = null;
        setState('open', { hello: frame });
        onHello(frame);
        return;
      }
      if (frame.type === 'bye') {
        byeReason = String(frame.reason ?? '');
        lastBye = byeReason;
      }
      onFrame(frame);
    });
    sock.addEventListener('close', (ev) => {
      clearTimeout(helloTimer);
      if (ws !== sock) return;
      ws = null;
      failPending(null);
      if (!running) return;
      if (byeReason && FINAL_BYES.has(byeReason)) {
        running = false;
        setState('stopped');
        onEnd({ reason: 'bye', bye: byeReason });
        return;
      }
      // A server going down says so; wait at least a few seconds for it.
      if (byeReason === 'shutdown' && attempt < 2) attempt = 2;
      scheduleRetry(ev.reason || null);
    });
  }

  function isOpen() { return ws !== null && ws.readyState === WebSocket.OPEN; }

  /** Sends a frame without waiting for an answer; false when not connected. */
  function send(frame) {
    if (!isOpen()) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  /** Sends a frame with a fresh id; resolves with its "ok" or "error"
   * frame. A local failure is an error frame with status 0 and local: true. */
  function request(frame) {
    return new Promise((resolve) => {
      const id = `r${nextId++}`;
      if (!isOpen()) {
        resolve({ type: 'error', id, status: 0, detail: null, local: true });
        return;
      }
      const timer = setTimeout(() => {
        pending.delete(id);
        resolve({ type: 'error', id, status: 0, detail: null, local: true, timeout: true });
      }, REQUEST_TIMEOUT_MS);
      pending.set(id, { resolve, timer });
      ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  return { start, stop, retryNow, send, request, isOpen, running: () => running };
}
