// The driver of bench/meeting.sh: screen sharing of the web meeting against
// a real atriumd in a network namespace, once as it is (each tier of a
// frame encoded once, the bytes shared by every viewer of that tier) and
// once with ATRIUM_SCREEN_ENCODE=per-viewer (every viewer's frames encoded
// for it alone, as servers with an encoder per viewer do), same run, same
// load. The namespaces and links are bench/meeting.sh's; this file starts
// the servers, the presenter and the viewers, and writes the report.
//
//   links  viewers behind tbf links of 2, 5, 20 and 50 Mbit/s (each a
//          process in its own namespace) watch a presenter at MEET_FPS:
//          window A while it scrolls a page of text; then a 0.5 Mbit/s
//          viewer joins; window B, still scrolling; then the presenter
//          switches to "every frame new" (the page rotated horizontally,
//          nothing a delta frame can reuse) and, after a few seconds,
//          window C. Per viewer: frames a second, tiers, delta frames and
//          whole pictures, mean frame size, delay from capture to receipt
//          (p50/p95, and beyond the frame's own time on the link), tier
//          changes, link use (frame bytes / link rate).
//   cpu    0, then MEET_CPU_VIEWERS unshaped viewers (one process, beside
//          the presenter, every frame new): atriumd's CPU (utime + stime of
//          /proc/PID/stat) over a window, frames delivered, encodes per
//          frame.
//
// Environment (set by bench/meeting.sh): ATRIUMD, MEET_NS_SRV, MEET_SRV_IP,
// MEET_LINKS ("MBIT:NETNS:SERVER_IP ..."; the first three from the start,
// the last joining later), MEET_PORT, MEET_TMP, MEET_REPORT; optional
// MEET_W, MEET_H, MEET_FPS, MEET_CPU_VIEWERS, MEET_MODES, MEET_OUT (JSON: the contents, each mode's results).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { encodePng, region } from '../../tests/integration/meeting-client.mjs';
import { wsConnect } from './ws.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const env = process.env;
const ATRIUMD = env.ATRIUMD;
const NS_SRV = env.MEET_NS_SRV, SRV_IP = env.MEET_SRV_IP, PORT = Number(env.MEET_PORT || 8090);
const LINKS = env.MEET_LINKS.trim().split(/\s+/).map((s) => { const [mbit, ns, ip] = s.split(':'); return { mbit: Number(mbit), ns, ip, name: `${mbit}M` }; });
const W = Number(env.MEET_W || 1280), H = Number(env.MEET_H || 720), FPS = Number(env.MEET_FPS || 30);
const CPU_VIEWERS = (env.MEET_CPU_VIEWERS || '1 2 4 8 16').trim().split(/\s+/).map(Number);
const MODES = (env.MEET_MODES || 'shared per-viewer').trim().split(/\s+/);
const TMP = env.MEET_TMP;
// s: before window A, each window, after the late viewer joins, after the switch to every frame new
const WARM = 10, WIN = Number(env.MEET_WIN || 12), SETTLE = 4, SWITCH = 5;
const WINDOW_CONTENT = { A: 'scroll', B: 'scroll', C: 'new' };
const CONTENT_NAME = { scroll: 'scroll', new: 'every frame new' };
const TIERS = ['high', 'medium', 'low', 'lossless'], FULL_SIZE = new Set(['high', 'medium', 'lossless']);
const FMT_DELTA = 3; // the frame header's byte 2: 1 JPEG, 2 PNG, 3 delta
// The stats frame's fields this driver reads; any other is printed as it comes.
const KNOWN_STATS = new Set(['type', 'frames', 'latest', 'encodes', 'encodes_per_frame', 'viewers']);
const KNOWN_VIEWER = new Set(['id', 'tier', 'fps', 'bandwidth_kbps', 'sent', 'skipped', 'acked', 'tier_changes', 'own_socket', 'tcp_rtt_ms', 'tcp_notsent_bytes']);
const CPU_SETTLE = 3, CPU_WIN = Number(env.MEET_CPU_WIN || 6);
const TICK = 100; // clock ticks a second of /proc/PID/stat (sysconf(_SC_CLK_TCK) on Linux)
const PASS = 'meeting-bench-1';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error('meeting-bench:', ...a);
const base = `http://${SRV_IP}:${PORT}`;

async function api(method, p, { body, token } = {}) {
  const r = await fetch(base + p, {
    method, signal: AbortSignal.timeout(15000),
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  if (r.status >= 300) throw new Error(`${method} ${p}: ${r.status} ${text}`);
  return json;
}

/** TCP segments retransmitted in the server's namespace (all its sockets). */
function retrans() {
  const r = spawnSync('ip', ['netns', 'exec', NS_SRV, 'cat', '/proc/net/snmp'], { encoding: 'utf8', timeout: 5000 });
  const tcp = (r.stdout || '').split('\n').filter((l) => l.startsWith('Tcp:'));
  if (tcp.length < 2) return NaN;
  const k = tcp[0].split(/\s+/), v = tcp[1].split(/\s+/);
  return Number(v[k.indexOf('RetransSegs')]);
}

function cpuSeconds(pid) {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK; // utime, stime: fields 14 and 15
}

const pct = (xs, p) => { if (!xs.length) return NaN; const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(s.length * p))]; };

/** The page's screens, encoded once before the clock runs (PNG, as the
 * tests' presenter sends them): the presenter's own CPU stays out of the
 * machine's budget while it scrolls. Each screen is STRIPS full-width
 * regions, as the first runs were made (the server then refused a PNG
 * region over 64 KiB; a whole 1280x720 screen of text is about 200 KiB). */
const STRIPS = 16;

/** A page of text as a screen shows it: glyphs of strokes (an alphabet of
 * 60 shapes in 8x16 cells, grey edges as anti-aliasing leaves them), words,
 * ragged lines, indented blocks and blank lines, a coloured bar on top.
 * (The tests' textPage draws every glyph pixel at random: noise that JPEG
 * encodes at two to three times the size of real text.) */
function screenPage(w, h, seed = 7) {
  let st = seed;
  const rnd = () => { st = (st * 1103515245 + 12345) & 0x7fffffff; return st / 0x7fffffff; };
  const CW = 8, CH = 16;
  const glyphs = [];
  for (let g = 0; g < 60; g++) {
    const px = new Float32Array(CW * CH);
    const strokes = 2 + Math.floor(rnd() * 3);
    for (let k = 0; k < strokes; k++) {
      // A stroke from one point of a 5x9 grid to another (x 1..6, y 3..12).
      const x0 = 1 + Math.floor(rnd() * 6), y0 = 3 + Math.floor(rnd() * 10);
      const x1 = 1 + Math.floor(rnd() * 6), y1 = 3 + Math.floor(rnd() * 10);
      const n = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1) * 2;
      for (let i = 0; i <= n; i++) {
        const x = x0 + ((x1 - x0) * i) / n, y = y0 + ((y1 - y0) * i) / n;
        const xi = Math.floor(x), yi = Math.floor(y), fx = x - xi;
        px[yi * CW + xi] = Math.max(px[yi * CW + xi], 1 - fx * 0.6);
        if (xi + 1 < CW) px[yi * CW + xi + 1] = Math.max(px[yi * CW + xi + 1], fx * 0.6);
      }
    }
    glyphs.push(px);
  }
  const page = Buffer.alloc(w * h * 3, 255);
  const ink = [30, 30, 40];
  for (let y = 0; y < 40; y++) for (let x = 0; x < w; x++) { const o = (y * w + x) * 3; page[o] = 60; page[o + 1] = 90; page[o + 2] = 150; }
  for (let line = 0, y = 56; y + CH <= h; line++, y += CH + 4) {
    if (rnd() < 0.12) continue; // a blank line
    const indent = 40 + (rnd() < 0.3 ? CW * 4 * (1 + Math.floor(rnd() * 3)) : 0);
    const end = indent + Math.floor((w - indent - 60) * (0.45 + 0.55 * rnd()));
    for (let x = indent; x + CW <= end;) {
      const len = 2 + Math.floor(rnd() * 8);
      for (let c = 0; c < len && x + CW <= end; c++, x += CW) {
        const gp = glyphs[Math.floor(rnd() * glyphs.length)];
        for (let gy = 0; gy < CH; gy++) for (let gx = 0; gx < CW; gx++) {
          const a = gp[gy * CW + gx];
          if (!a) continue;
          const o = ((y + gy) * w + x + gx) * 3;
          for (let k = 0; k < 3; k++) page[o + k] = Math.round(255 - (255 - ink[k]) * a);
        }
      }
      x += CW; // the space
    }
  }
  return page;
}
/** The two contents, frames the presenter sends in a loop.
 * scroll: the page scrolled vertically, 8 px a frame, SCREENS frames down
 * and back up (a delta copies the rows that moved and sends the new strip). new ("every frame new"): the
 * page's screen in the middle of the scroll rotated horizontally, 8 px
 * further left each frame, each row's pixels wrapping around, so that no
 * row of a frame equals any row of the frame before and a delta has nothing
 * to reuse (like video). That screen, not the first: the first has the bar
 * and the top margin, less text, and its JPEG is 8 % smaller than the
 * scroll's median; the middle one's is within 1 %. Rotation leaves a
 * uniform row as it is, and 410 of its 720 rows are uniform (blank lines,
 * the gaps between lines and in them), so this content lies on a faint
 * horizontal shade, every pixel 0 to 15 levels darker across the width
 * (the text's contrast stays; the JPEG grows by 0.3 %): every row then has
 * something that moves. */
const SCREENS = 60, STEP = 8;
function shade(rgb) {
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const d = Math.round((15 * x) / W), o = (y * W + x) * 3;
    for (let k = 0; k < 3; k++) rgb[o + k] = Math.max(0, rgb[o + k] - d);
  }
  return rgb;
}
function rawScreens(content) {
  const page = screenPage(W, H * 3), out = [];
  if (content === 'scroll') {
    // Down the page and back up: a loop that jumped back to the top would
    // be a new page every SCREENS frames, not a scroll.
    for (let i = 0; i < SCREENS; i++) out.push(page.subarray(i * STEP * W * 3, (i * STEP + H) * W * 3));
    for (let i = SCREENS - 2; i > 0; i--) out.push(out[i]);
    return out;
  }
  const mid = (SCREENS / 2) * STEP, first = shade(Buffer.from(page.subarray(mid * W * 3, (mid + H) * W * 3)));
  for (let i = 0; i < SCREENS; i++) {
    const s = ((i * STEP) % W) * 3, f = Buffer.alloc(W * H * 3);
    for (let y = 0; y < H; y++) {
      const row = first.subarray(y * W * 3, (y + 1) * W * 3);
      row.copy(f, y * W * 3, s);
      row.copy(f, y * W * 3 + row.length - s, 0, s);
    }
    out.push(f);
  }
  return out;
}
/** What a delta could reuse, over the loop (the last frame is followed by
 * the first): the share of rows found anywhere in the frame before, and of
 * row bands (256 px at the same columns, as the server hashes them) found
 * in any row of the frame before. */
function reuse(frames) {
  const BAND = 256, bands = Math.ceil(W / BAND);
  const key = (f, y, b) => f.subarray((y * W + b * BAND) * 3, (y * W + Math.min(W, (b + 1) * BAND)) * 3).toString('latin1');
  let rows = 0, bandHits = 0;
  for (let i = 0; i < frames.length; i++) {
    const prev = frames[(i + frames.length - 1) % frames.length], cur = frames[i];
    const prevRows = new Set(), prevBands = Array.from({ length: bands }, () => new Set());
    for (let y = 0; y < H; y++) {
      prevRows.add(prev.subarray(y * W * 3, (y + 1) * W * 3).toString('latin1'));
      for (let b = 0; b < bands; b++) prevBands[b].add(key(prev, y, b));
    }
    for (let y = 0; y < H; y++) {
      if (prevRows.has(cur.subarray(y * W * 3, (y + 1) * W * 3).toString('latin1'))) rows++;
      for (let b = 0; b < bands; b++) if (prevBands[b].has(key(cur, y, b))) bandHits++;
    }
  }
  return { rows: rows / (frames.length * H), bands: bandHits / (frames.length * H * bands) };
}
/** Each frame as STRIPS PNG regions, encoded before the clock runs. */
function screens(content) {
  const raw = rawScreens(content), sh = Math.ceil(H / STRIPS);
  const frames = raw.map((f) => {
    const strips = [];
    for (let y = 0; y < H; y += sh) {
      const h = Math.min(sh, H - y);
      strips.push({ y, h, png: encodePng(W, h, f.subarray(y * W * 3, (y + h) * W * 3)) });
    }
    return strips;
  });
  return { frames, reuse: reuse(raw) };
}

/** A process printing one JSON line per frame; lines are kept as objects. */
function viewerProc(ns, ip, meeting, seconds, tickets) {
  const args = [path.join(here, 'viewer.mjs'), ip, String(PORT), meeting, String(seconds), ...tickets.map(([n, t]) => `${n}=${t}`)];
  const proc = ns ? spawn('ip', ['netns', 'exec', ns, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  let rest = '', err = '';
  proc.stdout.on('data', (d) => {
    const parts = (rest + d).split('\n');
    rest = parts.pop();
    for (const l of parts) if (l) lines.push(JSON.parse(l));
  });
  proc.stderr.on('data', (d) => { err += d; });
  const done = new Promise((r) => proc.once('exit', r));
  return {
    lines, proc,
    get err() { return err; },
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await done;
      clearTimeout(t);
    },
  };
}

async function runMode(mode, contents) {
  const dir = path.join(TMP, mode);
  fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'atlas.xml'), '<?xml version="1.0"?><Atlas>'
    + `<Listen address="0.0.0.0" port="${PORT}"/><DataDirectory>${path.join(dir, 'data')}</DataDirectory></Atlas>\n`);
  const denv = { ...env, ATRIUM_ADMIN_PASSWORD: PASS, ATRIUM_MEETING_ENABLED: 'true' };
  delete denv.ATRIUM_SCREEN_ENCODE;
  if (mode === 'per-viewer') denv.ATRIUM_SCREEN_ENCODE = 'per-viewer';
  const logf = fs.openSync(path.join(dir, 'atriumd.log'), 'w');
  // `ip netns exec` execs the program: the child's pid is atriumd's.
  const daemon = spawn('ip', ['netns', 'exec', NS_SRV, ATRIUMD, '-c', path.join(dir, 'atlas.xml')], { env: denv, stdio: ['ignore', logf, logf] });
  const daemonExit = new Promise((r) => daemon.once('exit', r));
  const procs = [];
  let presenter = null, scrolling = false, sender = null, showing = 'scroll';
  try {
    let up = false;
    for (let i = 0; i < 300 && !up; i++) {
      try { up = (await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(500) })).status === 200; } catch { /* starting */ }
      if (!up) await sleep(50);
    }
    if (!up) throw new Error(`atriumd did not start: ${fs.readFileSync(path.join(dir, 'atriumd.log'), 'utf8')}`);
    const pid = daemon.pid;
    const comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    if (comm !== 'atriumd') throw new Error(`pid ${pid} is ${comm}, not atriumd`);

    const admin = (await api('POST', '/api/v1/session', { body: { user: 'admin', password: PASS } })).token;
    const maxCpu = Math.max(...CPU_VIEWERS);
    const users = ['pres', ...LINKS.map((l, i) => `link${i}`), ...Array.from({ length: maxCpu }, (_, i) => `cpu${i}`)];
    await api('POST', '/api/v1/users/import', { token: admin, body: users.map((name) => ({ name, password: PASS })) });
    const tok = {};
    for (const n of users) tok[n] = (await api('POST', '/client/v1/login', { body: { login: n, password: PASS } })).token;
    const meeting = (await api('POST', '/client/v1/meetings', { token: tok.pres, body: { title: 'Benchmark' } })).id;
    const ticket = async (n) => (await api('POST', `/client/v1/meetings/${meeting}/ticket`, { token: tok[n] })).ticket;

    // The presenter: one full-screen region a frame, capture time in it.
    const statsWaiters = [];
    const errors = {};
    presenter = await wsConnect({
      host: SRV_IP, port: PORT, path: `/webmeeting/ws?meeting=${meeting}&ticket=${await ticket('pres')}`,
      onText: (s) => {
        const f = JSON.parse(s);
        if (f.type === 'stats') statsWaiters.shift()?.(f);
        else if (f.type === 'error') { errors[f.code] = (errors[f.code] || 0) + 1; if (errors[f.code] === 1) log('presenter error', s); }
      },
    });
    const stats = () => new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no stats answer in 10 s')), 10000);
      statsWaiters.push((f) => { clearTimeout(t); resolve(f); });
      presenter.send('{"type":"stats"}');
    });
    const sentAt = [];
    let held = 0;
    scrolling = true;
    sender = (async () => {
      const t0 = Date.now();
      for (let seq = 0; scrolling; seq++) {
        // What a browser does when its socket is behind: it skips a frame.
        if (presenter.sock.writableLength > 4 * 1024 * 1024) held++;
        else {
          const shown = contents[showing].frames;
          const capture = Date.now() % 0x100000000, strips = shown[seq % shown.length];
          for (const [k, st] of strips.entries())
            presenter.sendBinary(region({ format: 2, last: k === strips.length - 1, seq, capture, fbW: W, fbH: H, y: st.y, w: W, h: st.h, image: st.png }));
          sentAt.push(Date.now());
        }
        await sleep(Math.max(0, t0 + ((seq + 1) * 1000) / FPS - Date.now()));
      }
    })();
    const snap = async () => ({ at: Date.now(), cpu: cpuSeconds(pid), retrans: retrans(), stats: await stats() });

    // ---- links ----
    // A and B scroll; C shows every frame new, SWITCH s after the switch.
    const early = LINKS.slice(0, -1), late = LINKS[LINKS.length - 1];
    const total = WARM + WIN + SETTLE + WIN + SWITCH + WIN + 2;
    const linkProcs = [];
    for (const [i, l] of early.entries()) linkProcs.push(viewerProc(l.ns, l.ip, meeting, total, [[l.name, await ticket(`link${i}`)]]));
    await sleep(WARM * 1000);
    const a0 = await snap();
    await sleep(WIN * 1000);
    const a1 = await snap();
    linkProcs.push(viewerProc(late.ns, late.ip, meeting, total - WARM - WIN, [[late.name, await ticket(`link${LINKS.length - 1}`)]]));
    await sleep(SETTLE * 1000);
    const b0 = await snap();
    await sleep(WIN * 1000);
    const b1 = await snap();
    showing = 'new';
    await sleep(SWITCH * 1000);
    const c0 = await snap();
    await sleep(WIN * 1000);
    const c1 = await snap();
    procs.push(...linkProcs);
    for (const p of linkProcs) await p.stop();
    const linkLines = linkProcs.flatMap((p) => p.lines);
    const offered = (x, y) => sentAt.filter((t) => t >= x.at && t < y.at).length / ((y.at - x.at) / 1000);
    const windowOf = (x, y) => ({
      secs: (y.at - x.at) / 1000, offered: offered(x, y),
      frames: (y.stats.frames - x.stats.frames) / ((y.at - x.at) / 1000),
      encodesPerFrame: encodesPer(x.stats, y.stats), deltasPerFrame: deltasPer(x.stats, y.stats),
      statsExtra: statsExtra(x.stats, y.stats),
      cpu: (y.cpu - x.cpu) / ((y.at - x.at) / 1000),
      retransPerS: (y.retrans - x.retrans) / ((y.at - x.at) / 1000),
    });
    const spans = { A: [a0, a1], B: [b0, b1], C: [c0, c1] };
    const links = {};
    for (const [wname, [x, y]] of Object.entries(spans)) {
      links[wname] = { ...windowOf(x, y), content: WINDOW_CONTENT[wname], viewers: {} };
      for (const l of LINKS) {
        const ls = linkLines.filter((f) => f.v === l.name && f.seq !== undefined && f.at >= x.at && f.at < y.at);
        if (!ls.length) continue;
        links[wname].viewers[l.name] = perViewer(ls, l.mbit * 1e6, (y.at - x.at) / 1000);
      }
    }
    const welcomeOf = Object.fromEntries(linkLines.filter((f) => f.welcome).map((f) => [f.welcome.id ?? f.welcome, f.v]));
    links.serverTierChanges = Object.fromEntries((c1.stats.viewers || []).map((v) => [welcomeOf[v.id] || v.id, v.tier_changes]));
    // What else the server says of each link viewer at the end (fields this
    // driver does not know yet, and `sent` if it has more than the tiers).
    links.serverViewerExtra = {};
    for (const v of c1.stats.viewers || []) {
      const extra = Object.fromEntries(Object.entries(v).filter(([k]) => !KNOWN_VIEWER.has(k)));
      if (v.sent && Object.keys(v.sent).some((k) => !TIERS.includes(k))) extra.sent = v.sent;
      if (Object.keys(extra).length) links.serverViewerExtra[welcomeOf[v.id] || v.id] = extra;
    }
    // From the connection's start to the first frame, and the sizes of the
    // frames of each content, tier and kind (whole picture or delta).
    links.firstFrameMs = {};
    for (const l of LINKS) {
      const mine = linkLines.filter((f) => f.v === l.name);
      const w = mine.find((f) => f.welcome), f1st = mine.find((f) => f.seq !== undefined);
      links.firstFrameMs[l.name] = w && f1st ? f1st.at - w.at : NaN;
    }
    links.sizes = { scroll: {}, new: {} };
    for (const [wname, [x, y]] of Object.entries(spans)) {
      const sz = links.sizes[WINDOW_CONTENT[wname]];
      for (const f of linkLines) {
        if (f.seq === undefined || f.at < x.at || f.at >= y.at) continue;
        const k = `${f.tier}${f.fmt === FMT_DELTA ? ' delta' : ''}`;
        (sz[k] ||= []).push(f.bytes);
      }
    }
    for (const sz of Object.values(links.sizes)) for (const k of Object.keys(sz)) sz[k] = pct(sz[k], 0.5);
    links.errors = linkProcs.map((p) => p.err).filter(Boolean).join('\n').slice(0, 2000);

    // ---- cpu ----
    const cpu = [];
    for (const n of [0, ...CPU_VIEWERS]) {
      let p = null;
      if (n > 0) {
        const tickets = [];
        for (let i = 0; i < n; i++) tickets.push([`c${i}`, await ticket(`cpu${i}`)]);
        p = viewerProc(null, SRV_IP, meeting, CPU_SETTLE + CPU_WIN + 5, tickets);
        procs.push(p);
      }
      await sleep(CPU_SETTLE * 1000);
      const x = await snap();
      await sleep(CPU_WIN * 1000);
      const y = await snap();
      if (p) await p.stop();
      if (p && (p.err || p.lines.some((f) => f.error))) log(mode, 'cpu viewers', n, p.err.slice(0, 500), JSON.stringify(p.lines.filter((f) => f.error).slice(0, 3)));
      const ls = p ? p.lines.filter((f) => f.seq !== undefined && f.at >= x.at && f.at < y.at) : [];
      const secs = (y.at - x.at) / 1000;
      const tiers = {};
      for (const f of ls) tiers[f.tier] = (tiers[f.tier] || 0) + 1;
      cpu.push({
        viewers: n, ...windowOf(x, y), fpsPerViewer: n ? ls.filter((f) => f.tier !== 'lossless').length / n / secs : 0,
        mbpsPerViewer: n ? ls.reduce((s, f) => s + f.bytes, 0) * 8 / 1e6 / n / secs : 0, tiers,
        delayP50: pct(ls.map((f) => f.delay), 0.5), delayP95: pct(ls.map((f) => f.delay), 0.95),
      });
      log(mode, 'cpu', JSON.stringify(cpu[cpu.length - 1]));
    }
    return { mode, links, cpu, held, presenterErrors: errors };
  } finally {
    scrolling = false;
    if (sender) await sender;
    for (const p of procs) await p.stop();
    if (presenter) presenter.close();
    if (daemon.exitCode === null) daemon.kill('SIGTERM');
    const t = setTimeout(() => daemon.kill('SIGKILL'), 10000);
    await daemonExit;
    clearTimeout(t);
  }
}

const sumOf = (o) => Object.values(o).reduce((a, b) => a + (Number(b) || 0), 0);
function encodesPer(x, y) {
  const frames = y.frames - x.frames;
  return frames > 0 ? (sumOf(y.encodes) - sumOf(x.encodes)) / frames : NaN;
}

/** Delta encodes per frame, if the server counts them (`deltas`, per tier). */
function deltasPer(x, y) {
  const frames = y.frames - x.frames;
  if (!y.deltas || typeof y.deltas !== 'object' || !(frames > 0)) return NaN;
  return (sumOf(y.deltas) - sumOf(x.deltas || {})) / frames;
}

/** The stats fields this driver does not know, over a window: a counter's
 * change, an object of counters' change per key, anything else as it is at
 * the end (a ratio such as `x_per_frame` too: its change means nothing). */
function statsExtra(x, y) {
  const out = {};
  for (const [k, v] of Object.entries(y)) {
    if (KNOWN_STATS.has(k)) continue;
    if (typeof v === 'number' && typeof x[k] === 'number' && !k.includes('_per_')) out[k] = +(v - x[k]).toFixed(3);
    else if (v && typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((e) => typeof e === 'number'))
      out[k] = Object.fromEntries(Object.entries(v).map(([kk, e]) => [kk, +(e - (x[k]?.[kk] ?? 0)).toFixed(3)]));
    else out[k] = v;
  }
  return out;
}

function perViewer(ls, bps, secs) {
  const moving = ls.filter((f) => f.tier !== 'lossless');
  const tiers = {};
  for (const f of ls) tiers[f.tier] = (tiers[f.tier] || 0) + 1;
  const deltas = ls.filter((f) => f.fmt === FMT_DELTA).length;
  let changes = 0;
  for (let i = 1; i < moving.length; i++) if (moving[i].tier !== moving[i - 1].tier) changes++;
  const bytes = ls.reduce((s, f) => s + f.bytes, 0);
  const extra = moving.map((f) => f.delay - (f.bytes * 8 * 1000) / bps);
  return {
    fps: moving.length / secs, tiers, changesPer5s: changes / (secs / 5),
    fpsFull: moving.filter((f) => FULL_SIZE.has(f.tier)).length / secs,
    deltas, whole: ls.length - deltas, meanBytes: bytes / ls.length,
    delayP50: pct(moving.map((f) => f.delay), 0.5), delayP95: pct(moving.map((f) => f.delay), 0.95),
    extraP50: pct(extra, 0.5), extraP95: pct(extra, 0.95),
    sendMsP50: pct(moving.map((f) => (f.bytes * 8 * 1000) / bps), 0.5),
    bytesP50: pct(moving.map((f) => f.bytes), 0.5),
    linkUse: (bytes * 8) / (bps * secs),
  };
}

// ---- the report ----

const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : '–');
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '–');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–');
const tierStr = (t) => ['high', 'medium', 'low', 'lossless'].filter((k) => t[k]).map((k) => `${k} ${t[k]}`).join(', ');

function slope(rows) {
  const pts = rows.filter((r) => r.viewers > 0);
  const n = pts.length, mx = pts.reduce((s, r) => s + r.viewers, 0) / n, my = pts.reduce((s, r) => s + r.cpu, 0) / n;
  const sxy = pts.reduce((s, r) => s + (r.viewers - mx) * (r.cpu - my), 0), sxx = pts.reduce((s, r) => s + (r.viewers - mx) ** 2, 0);
  return sxx > 0 ? sxy / sxx : NaN;
}

const verdict = (ok) => (ok === true ? 'met' : ok === false ? '**not met**' : 'not measured');
const allOk = (xs) => (xs.length && xs.every(Number.isFinite) ? xs : null);

function report(results, info) {
  const L = [];
  const by = Object.fromEntries(results.map((r) => [r.mode, r]));
  const early = LINKS.slice(0, -1), late = LINKS[LINKS.length - 1];
  const wlabel = (w) => `${w} (${CONTENT_NAME[WINDOW_CONTENT[w]]})`;
  L.push(`- scenario: a presenter shows ${W}×${H} at ${FPS} frames a second, each frame ${STRIPS} full-width PNG regions, two contents of a page of text: `
    + `**scroll** (the page scrolled vertically ${STEP} px a frame) and **every frame new** (the page's screen in the middle of the scroll rotated horizontally, ${STEP} px further left each frame, each row wrapping around, on a faint horizontal shade so that no row stays as it was); `
    + `atriumd in a network namespace; each link viewer in its own namespace behind \`tbf\` (rate, 100 ms queue; no added delay: this kernel has no netem); `
    + `window A ${WIN} s (scroll) with the ${early.map((l) => `${l.mbit}`).join(', ')} Mbit/s viewers after ${WARM} s, then the ${late.mbit} Mbit/s viewer joins, window B ${WIN} s (scroll) after ${SETTLE} s more, `
    + `then the presenter switches to every frame new and window C ${WIN} s starts ${SWITCH} s later. `
    + 'Delay: capture (presenter) to receipt of the last byte (viewer), same clock; the viewers acknowledge on receipt with decode_ms 0, so JPEG decode and paint are not in it. '
    + 'Link use: frame bytes received / link rate (WebSocket, TCP and IP headers not counted).');
  L.push(`- contents (sent in a loop: scroll ${2 * SCREENS - 2} frames, ${SCREENS} down and back up; every frame new ${SCREENS}): ${Object.entries(info).map(([c, i]) => `${CONTENT_NAME[c]} ${f0(i.pngKiB)} KiB of PNG a frame, `
    + `rows found anywhere in the frame before ${f1(i.reuse.rows * 100)} %, 256-px row bands found at their columns in the frame before ${f1(i.reuse.bands * 100)} %`).join('; ')}`);
  L.push('');
  L.push('| mode | window | viewer | fps | tiers (frames) | frames delta / whole | mean frame | delay p50 / p95 | p95 beyond send time | frame send time p50 | link use | tier changes / 5 s |');
  L.push('|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results)
    for (const w of Object.keys(WINDOW_CONTENT))
      for (const [name, v] of Object.entries(r.links[w].viewers))
        L.push(`| ${r.mode} | ${wlabel(w)} | ${name}bit/s | ${f1(v.fps)} | ${tierStr(v.tiers)} | ${v.deltas} / ${v.whole} | ${f1(v.meanBytes / 1024)} KiB | ${f0(v.delayP50)} / ${f0(v.delayP95)} ms | ${f0(v.extraP95)} ms | ${f0(v.sendMsP50)} ms | ${f0(v.linkUse * 100)} % | ${f2(v.changesPer5s)} |`);
  L.push('');
  L.push('| mode | window | presenter sent fps | server frames/s | encodes per frame | delta encodes per frame | atriumd CPU (of one core) | TCP retransmits/s (server) |');
  L.push('|---|---|---:|---:|---:|---:|---:|---:|');
  for (const r of results)
    for (const w of Object.keys(WINDOW_CONTENT))
      L.push(`| ${r.mode} | ${wlabel(w)} | ${f1(r.links[w].offered)} | ${f1(r.links[w].frames)} | ${f2(r.links[w].encodesPerFrame)} | ${f2(r.links[w].deltasPerFrame)} | ${f0(r.links[w].cpu * 100)} % | ${f0(r.links[w].retransPerS)} |`);
  L.push('');
  const sizeStr = (sz) => Object.entries(sz).map(([k, b]) => `${k} ${f1(b / 1024)} KiB`).join(', ') || '–';
  for (const r of results) {
    L.push(`- ${r.mode}: frame sizes (median) while scrolling ${sizeStr(r.links.sizes.scroll)}; every frame new ${sizeStr(r.links.sizes.new)}; `
      + `from connecting to the first frame ${Object.entries(r.links.firstFrameMs).map(([n, ms]) => `${n} ${f0(ms)} ms`).join(', ')}`);
    const extra = Object.keys(WINDOW_CONTENT).filter((w) => Object.keys(r.links[w].statsExtra).length);
    if (extra.length)
      L.push(`- ${r.mode}: the stats frame's other fields (change over the window): ${extra.map((w) => `${w} ${JSON.stringify(r.links[w].statsExtra)}`).join('; ')}`);
    if (Object.keys(r.links.serverViewerExtra).length)
      L.push(`- ${r.mode}: the stats frame's other fields per viewer (at the end of C): ${JSON.stringify(r.links.serverViewerExtra)}`);
  }
  L.push('');
  L.push(`Unshaped viewers, every frame new (one node process beside the presenter, ${CPU_SETTLE} s to settle, ${CPU_WIN} s measured):`);
  L.push('');
  const modes = results.map((r) => r.mode);
  const withDeltas = results.some((r) => r.cpu.some((c) => Number.isFinite(c.deltasPerFrame)));
  const cellHead = `CPU / encodes per frame${withDeltas ? ' / delta encodes per frame' : ''} / fps per viewer / Mbit/s per viewer`;
  L.push(`| viewers | ${modes.map((m) => `${m}: ${cellHead}`).join(' | ')} |${modes.length === 2 ? ' CPU ratio |' : ''}`);
  L.push(`|---:|${modes.map(() => '---:').join('|')}|${modes.length === 2 ? '---:|' : ''}`);
  const rows = results[0].cpu.map((_, i) => i);
  for (const i of rows) {
    const cells = results.map((r) => {
      const c = r.cpu[i];
      return `${f0(c.cpu * 100)} % / ${f2(c.encodesPerFrame)}${withDeltas ? ` / ${f2(c.deltasPerFrame)}` : ''} / ${f1(c.fpsPerViewer)} / ${f1(c.mbpsPerViewer)}`;
    });
    const ratio = results.length === 2 ? ` ${f2(results[1].cpu[i].cpu / results[0].cpu[i].cpu)} |` : '';
    L.push(`| ${results[0].cpu[i].viewers} | ${cells.join(' | ')} |${ratio}`);
  }
  L.push('');
  for (const r of results) {
    const s = slope(r.cpu), perFrame = r.cpu.filter((c) => c.viewers > 0);
    const last = perFrame[perFrame.length - 1], first = r.cpu[0];
    const perViewerFrame = last ? (last.cpu - first.cpu) / (last.viewers * last.fpsPerViewer) : NaN;
    L.push(`- ${r.mode}: CPU per added viewer (least-squares slope over 1–${last?.viewers} viewers) **${f1(s * 100)} % of a core**; `
      + `${f2(perViewerFrame * 1e3)} ms of CPU per frame delivered to a viewer beyond the presenter-only load; `
      + `presenter frames held back (socket behind): ${r.held}; errors to the presenter: ${JSON.stringify(r.presenterErrors)}; `
      + `tier changes the server counted: ${JSON.stringify(r.links.serverTierChanges)}`);
  }
  // The goals, from the shared mode (the baseline is the comparison), each
  // on the window whose content it is about.
  const s = by.shared;
  if (s) {
    const V = (w) => s.links[w].viewers;
    const slow = early.reduce((m, l) => (l.mbit < m.mbit ? l : m)).name;
    const mids = early.filter((l) => l.mbit >= 5 && l.mbit < 20), fasts = early.filter((l) => l.mbit >= 20);
    L.push('');
    L.push('Goals (shared mode):');
    L.push('');
    const d = V('A')[slow]?.extraP95;
    L.push(`- p95 delay beyond one frame's send time at ${slow}bit/s while scrolling (A): ${f0(d)} ms (goal < 150 ms: ${verdict(Number.isFinite(d) ? d < 150 : undefined)}; `
      + `for comparison every frame new (C): ${f0(V('C')[slow]?.extraP95)} ms)`);
    const change = early.map((l) => (V('A')[l.name] && V('B')[l.name] ? (V('B')[l.name].fps / V('A')[l.name].fps - 1) * 100 : NaN));
    L.push(`- the ${late.name}bit/s viewer joining (A → B) changes the others' fps by: ${early.map((l, i) => `${l.name} ${f1(change[i])} %`).join(', ')} `
      + `(goal < 5 %: ${verdict(allOk(change) ? change.every((c) => Math.abs(c) < 5) : undefined)}; the presenter's own rate ${f1(s.links.A.offered)} → ${f1(s.links.B.offered)} fps)`);
    const maxChanges = Object.fromEntries(Object.keys(WINDOW_CONTENT).map((w) => [w, Math.max(...Object.values(V(w)).map((v) => v.changesPer5s))]));
    L.push(`- tier changes at constant bandwidth, the most of one viewer per 5 s: ${Object.entries(maxChanges).map(([w, c]) => `${w} ${f2(c)}`).join(', ')} `
      + `(goal ≤ 1: ${verdict(allOk(Object.values(maxChanges)) ? Object.values(maxChanges).every((c) => c <= 1) : undefined)})`);
    // The content needs a link when its high tier at the presenter's rate would not fit in it.
    const needBps = (s.links.sizes.new.high ?? NaN) * 8 * s.links.C.offered;
    const needy = LINKS.filter((l) => V('C')[l.name] && needBps > l.mbit * 1e6);
    const uses = needy.map((l) => V('C')[l.name].linkUse * 100);
    L.push(`- link use when the content needs it (every frame new, C; its high tier at ${f1(s.links.C.offered)} fps is ${f1(needBps / 1e6)} Mbit/s): `
      + `${LINKS.map((l) => `${l.name} ${f1(V('C')[l.name]?.linkUse * 100)} %${needy.includes(l) ? '' : ' (not needed)'}`).join(', ')} `
      + `(goal ≥ 85 %: ${verdict(allOk(uses) ? uses.every((u) => u >= 85) : undefined)}; while scrolling, A: ${early.map((l) => `${l.name} ${f1(V('A')[l.name]?.linkUse * 100)} %`).join(', ')})`);
    const full = fasts.flatMap((l) => ['A', 'C'].map((w) => V(w)[l.name]?.fpsFull));
    L.push(`- full-size frame rate at ≥ 20 Mbit/s: ${fasts.map((l) => `${l.name}bit/s scroll (A) ${f1(V('A')[l.name]?.fpsFull)} fps (${tierStr(V('A')[l.name]?.tiers || {})}), `
      + `every frame new (C) ${f1(V('C')[l.name]?.fpsFull)} fps (${tierStr(V('C')[l.name]?.tiers || {})})`).join('; ')} `
      + `(goal ≥ 30: ${verdict(allOk(full) ? full.every((f) => f >= 30) : undefined)})`);
    const midFps = mids.flatMap((l) => ['A', 'C'].map((w) => V(w)[l.name]?.fps));
    L.push(`- frame rate at ${mids.map((l) => `${l.name}bit/s`).join(', ') || '5 Mbit/s (no such link)'}: ${mids.map((l) => `scroll (A) ${f1(V('A')[l.name]?.fps)} fps (${tierStr(V('A')[l.name]?.tiers || {})}), `
      + `every frame new (C) ${f1(V('C')[l.name]?.fps)} fps (${tierStr(V('C')[l.name]?.tiers || {})})`).join('; ')} `
      + `(goal ≥ 15: ${verdict(allOk(midFps) ? midFps.every((f) => f >= 15) : undefined)})`);
    const cpuSlope = slope(s.cpu) * 100;
    L.push(`- CPU per added viewer, every frame new: ${f1(cpuSlope)} % of a core (goal ≤ 1 %: ${verdict(Number.isFinite(cpuSlope) ? cpuSlope <= 1 : undefined)})`
      + `${by['per-viewer'] ? `; the per-viewer baseline ${f1(slope(by['per-viewer'].cpu) * 100)} %` : ''}`);
  }
  return L.join('\n');
}

if (env.MEET_SCREEN_PNG) {
  // To look at what the presenter shows: each content's second frame, and stop.
  for (const c of ['scroll', 'new'])
    fs.writeFileSync(env.MEET_SCREEN_PNG.replace(/(\.png)?$/, `-${c}.png`), encodePng(W, H, rawScreens(c)[1]));
  process.exit(0);
}
const t0 = Date.now();
const contents = {}, info = {};
for (const c of ['scroll', 'new']) {
  contents[c] = screens(c);
  const bytes = contents[c].frames.map((st) => st.reduce((n, x) => n + x.png.length, 0));
  info[c] = { pngKiB: bytes.reduce((a, b) => a + b, 0) / bytes.length / 1024, reuse: contents[c].reuse };
  log(`${c}: ${contents[c].frames.length} screens, ${Math.round(info[c].pngKiB)} KiB each, the largest strip ${Math.round(Math.max(...contents[c].frames.flat().map((x) => x.png.length)) / 1024)} KiB, `
    + `rows found in the frame before ${(info[c].reuse.rows * 100).toFixed(1)} %, bands ${(info[c].reuse.bands * 100).toFixed(1)} %`);
}
// A delta must find nothing to reuse in the needy content, or window C measures less than it claims.
if (info.new.reuse.rows > 0 || info.new.reuse.bands > 0) throw new Error('"every frame new" has rows the frame before already had');
log(`contents ready in ${Date.now() - t0} ms`);
const results = [];
for (const m of MODES) {
  log('mode', m);
  results.push(await runMode(m, contents));
}
if (env.MEET_OUT) fs.writeFileSync(env.MEET_OUT, JSON.stringify({ contents: info, results }, null, 1));
fs.writeFileSync(env.MEET_REPORT, `${report(results, info)}\n`);
log(`done in ${Math.round((Date.now() - t0) / 1000)} s`);
