// Waiting for WebSocket frames by predicate, shared by the test clients:
// frames that do not match stay queued for the next wait. pull(ms) yields
// the next frame (an object with a type) or throws; show(f) shortens one
// for error messages.
export function frameQueue(pull, show = (f) => f) {
  const queue = [];
  const q = {
    queue,
    async waitFor(pred, ms = 5000, what = 'a frame') {
      const i = queue.findIndex(pred);
      if (i >= 0) return queue.splice(i, 1)[0];
      const until = Date.now() + ms;
      const queued = () => JSON.stringify(queue.slice(0, 5).map(show));
      for (;;) {
        const left = until - Date.now();
        if (left <= 0) throw new Error(`no ${what} within ${ms} ms; queued: ${queued()}`);
        let f;
        try { f = await pull(left); } catch (e) { throw new Error(`no ${what} (${e.message}); queued: ${queued()}`); }
        if (pred(f)) return f;
        queue.push(f);
      }
    },
    type(t, ms, extra = () => true) { return q.waitFor((f) => f.type === t && extra(f), ms, `"${t}" frame`); },
    /** Frames that arrived and were not waited for, and whatever comes within ms. */
    async drain(ms = 200) {
      const until = Date.now() + ms;
      for (;;) {
        const left = until - Date.now();
        if (left <= 0) break;
        try { queue.push(await pull(left)); } catch { break; }
      }
      return queue.splice(0);
    },
  };
  return q;
}
