// The web meeting page (docs/protocols/meeting.md). Guests give a name and
// accept the privacy policy, then wait in the lobby until the host admits
// them; users come with a ticket in the link (from the web client) and go
// straight in. Everything is relative to the page, so it works under the
// published meeting URL. The presenter shares a screen (getDisplayMedia)
// as changed regions; viewers paint what the server sends them and
// acknowledge each frame, which is how the server measures their bandwidth.
const $ = (id) => document.getElementById(id);
const de = document.documentElement.lang === 'de';
const T = de ? {
  noMeeting: 'Öffnen Sie den Link Ihrer Einladung, um an einem Meeting teilzunehmen.',
  connecting: 'Verbindung zum Meeting…', lobby: 'Sie sind im Warteraum. Der Gastgeber lässt Sie gleich ein.',
  participants: 'Teilnehmende', waiting: 'Im Warteraum', admit: 'Einlassen', deny: 'Ablehnen', remove: 'Entfernen',
  present: 'Präsentieren lassen', presenter: 'präsentiert', chat: 'Chat', send: 'Senden', message: 'Nachricht',
  share: 'Bildschirm teilen', stopShare: 'Teilen beenden', end: 'Meeting beenden', screen: 'Geteilter Bildschirm',
  ended: 'Das Meeting ist beendet.', you: '(Sie)', host: 'Gastgeber', guest: 'Gast',
} : {
  noMeeting: 'Open the link of your invitation to join a meeting.',
  connecting: 'Connecting to the meeting…', lobby: 'You are in the lobby. The host will admit you shortly.',
  participants: 'Participants', waiting: 'In the lobby', admit: 'Admit', deny: 'Deny', remove: 'Remove',
  present: 'Make presenter', presenter: 'presenting', chat: 'Chat', send: 'Send', message: 'Message',
  share: 'Share screen', stopShare: 'Stop sharing', end: 'End meeting', screen: 'Shared screen',
  ended: 'The meeting has ended.', you: '(you)', host: 'host', guest: 'guest',
};

function h(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') e.textContent = v;
    else if (v !== false && v !== undefined) e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids) e.append(k);
  return e;
}

const params = new URLSearchParams(location.search);
const meetingId = params.get('meeting');
const ticket = params.get('ticket');
// The ticket is single-use: it leaves the address bar (and the history) at once.
if (ticket) history.replaceState(null, '', `${location.pathname}?meeting=${encodeURIComponent(meetingId)}`);

const form = $('register');
const status = $('status');
const say = (text, cls = 'status') => { status.className = cls; status.textContent = text; };

let ws = null;
let me = null;
let role = null;
let presenterId = null;

// ---- the meeting's view ----------------------------------------------------------------

const view = {
  root: h('section', { class: 'meeting', id: 'meeting', hidden: true, 'aria-labelledby': 'meeting-title' }),
  title: h('h2', { id: 'meeting-title' }),
  banner: h('p', { class: 'banner warning', id: 'meeting-banner', role: 'alert', hidden: true }),
  people: h('ul', { class: 'people', id: 'participants' }),
  waitingBox: h('section', { id: 'waiting-box', hidden: true }),
  waiting: h('ul', { class: 'waiting', id: 'waiting' }),
  canvas: h('canvas', { id: 'screen', width: 640, height: 360, 'aria-label': T.screen, 'data-frames': '0' }),
  share: h('button', { type: 'button', id: 'share', hidden: true, text: T.share }),
  end: h('button', { type: 'button', id: 'end', hidden: true, text: T.end }),
  log: h('ol', { class: 'chat-log', id: 'chat-log', 'aria-live': 'polite' }),
  chatForm: h('form', { id: 'chat-form' }),
  chatText: h('input', { id: 'chat-text', maxlength: '2000', 'aria-label': T.message, autocomplete: 'off' }),
};
view.waitingBox.append(h('h3', { text: T.waiting }), view.waiting);
view.chatForm.append(view.chatText, h('button', { text: T.send }));
view.root.append(view.title, view.banner,
  h('section', {}, h('h3', { text: T.participants }), view.people), view.waitingBox,
  h('section', {}, view.canvas, h('p', {}, view.share, ' ', view.end)),
  h('section', {}, h('h3', { text: T.chat }), view.log, view.chatForm));
document.querySelector('main').append(view.root);

const sendJson = (f) => { if (ws && ws.readyState === 1) ws.send(JSON.stringify(f)); };

function initials(name) {
  const parts = String(name).trim().split(/\s+/).filter(Boolean);
  return ((parts[0]?.[0] ?? '?') + (parts.length > 1 ? parts[parts.length - 1][0] : '')).toUpperCase();
}

function renderPeople(list) {
  view.people.replaceChildren(...list.map((p) => {
    const li = h('li', { 'data-id': p.id, 'data-role': p.role });
    // A picture only when the server gave its URL (users' pictures, and for
    // guests only while the Users data source permits Authenticated); the
    // initials when there is none, or when the URL stops answering (the
    // permission was taken away meanwhile).
    const badge = () => h('span', { class: 'initials', 'aria-hidden': 'true', text: initials(p.name) });
    if (p.picture) {
      const img = h('img', { class: 'picture', src: new URL(p.picture, location.href).href, alt: '' });
      img.onerror = () => img.replaceWith(badge());
      li.append(img);
    } else {
      li.append(badge());
    }
    li.append(h('span', { class: 'name', text: p.name }));
    if (p.role !== 'user') li.append(` (${p.role === 'host' ? T.host : T.guest})`);
    if (p.id === me) li.append(` ${T.you}`);
    if (p.presenter) li.append(h('strong', { class: 'presenter', text: ` — ${T.presenter}` }));
    if (role === 'host' && p.id !== me) {
      const rm = h('button', { type: 'button', class: 'remove', text: T.remove });
      rm.onclick = () => sendJson({ type: 'remove', participant: p.id });
      li.append(rm);
      if (!p.presenter) {
        const pr = h('button', { type: 'button', class: 'make-presenter', text: T.present });
        pr.onclick = () => sendJson({ type: 'present', participant: p.id });
        li.append(pr);
      }
    }
    return li;
  }));
}

function renderWaiting(list) {
  view.waitingBox.hidden = role !== 'host' || list.length === 0;
  view.waiting.replaceChildren(...list.map((p) => {
    const li = h('li', { 'data-id': p.id }, h('span', { class: 'name', text: p.name }));
    const ok = h('button', { type: 'button', class: 'admit', text: T.admit });
    ok.onclick = () => sendJson({ type: 'admit', participant: p.id });
    const no = h('button', { type: 'button', class: 'deny', text: T.deny });
    no.onclick = () => sendJson({ type: 'remove', participant: p.id });
    li.append(ok, no);
    return li;
  }));
}

function showRoom() {
  form.hidden = true;
  view.root.hidden = false;
  say('');
}

// ---- viewing: paint every frame in order, then acknowledge it ---------------------------

const TIERS = ['high', 'medium', 'low', 'lossless'];
const FORMAT_PNG = 2, FORMAT_DELTA = 3;
// The picture at its tier's size (half the screen's for low): a delta
// changes it, so every frame is painted, in order; the server keeps at most
// two unacknowledged, so the queue stays short.
const picture = document.createElement('canvas');
const before = document.createElement('canvas');
let pictureSeq = -1, pictureHalf = false;
const queue = [];
let painting = false;

function blob(buf, off, len, type) { return new Blob([new Uint8Array(buf, off, len)], { type }); }

async function applyDelta(buf, d, half) {
  const base = d.getUint32(16), copies = d.getUint16(20), patches = d.getUint16(22);
  if (base !== pictureSeq || half !== pictureHalf) return false;
  const ctx = picture.getContext('2d');
  let off = 24;
  if (copies) {
    // Every copy reads the picture as it was before any copy.
    before.width = picture.width; before.height = picture.height;
    before.getContext('2d').drawImage(picture, 0, 0);
    for (let i = 0; i < copies; i++, off += 12) {
      const [sx, sy, w, hgt, dx, dy] = [0, 2, 4, 6, 8, 10].map((k) => d.getUint16(off + k));
      ctx.drawImage(before, sx, sy, w, hgt, dx, dy, w, hgt);
    }
  }
  const bitmaps = [];
  for (let i = 0; i < patches; i++) {
    const x = d.getUint16(off), y = d.getUint16(off + 2), n = d.getUint32(off + 8);
    off += 12;
    if (off + n > buf.byteLength) return false;
    bitmaps.push([x, y, createImageBitmap(blob(buf, off, n, 'image/jpeg'))]);
    off += n;
  }
  for (const [x, y, p] of bitmaps) {
    const bmp = await p;
    ctx.drawImage(bmp, x, y);
    bmp.close();
  }
  return true;
}

async function paint(buf) {
  const d = new DataView(buf);
  const tier = d.getUint8(1), format = d.getUint8(2);
  const seq = d.getUint32(4), w = d.getUint16(12), hgt = d.getUint16(14);
  const half = TIERS[tier] === 'low';
  const t0 = performance.now();
  const c = view.canvas;
  let painted = true;
  try {
    if (format === FORMAT_DELTA) {
      painted = await applyDelta(buf, d, half);
    } else {
      const bmp = await createImageBitmap(blob(buf, 16, buf.byteLength - 16, format === FORMAT_PNG ? 'image/png' : 'image/jpeg'));
      picture.width = bmp.width; picture.height = bmp.height;
      picture.getContext('2d').drawImage(bmp, 0, 0);
      bmp.close();
      pictureHalf = half;
    }
  } catch { painted = false; }
  if (painted) {
    pictureSeq = seq;
    if (c.width !== w || c.height !== hgt) { c.width = w; c.height = hgt; }
    // The low tier is half size: drawn at the screen's size.
    c.getContext('2d').drawImage(picture, 0, 0, w, hgt);
    c.dataset.frames = String(Number(c.dataset.frames) + 1);
    if (format === FORMAT_DELTA) c.dataset.deltas = String(Number(c.dataset.deltas || 0) + 1);
    c.dataset.seq = String(seq);
    c.dataset.tier = TIERS[tier] ?? '?';
    c.dataset.format = String(format);
    c.dataset.capture = String(d.getUint32(8));
  } else {
    // Not the picture it applies to, or it does not decode: the picture
    // stays as it was until the next whole one (at the latest the lossless
    // refresh); the acknowledgement still goes, so the server's window moves.
    c.dataset.badDeltas = String(Number(c.dataset.badDeltas || 0) + 1);
  }
  sendJson({ type: 'ack', frame: seq, decode_ms: Math.round(performance.now() - t0) });
}

async function onFrame(buf) {
  queue.push(buf);
  if (painting) return;
  painting = true;
  try {
    while (queue.length) await paint(queue.shift());
  } finally { painting = false; }
}

// ---- presenting: changed regions of the captured screen -------------------------------------

const CAPTURE_FPS = 15, TILE = 32, MAX_W = 1920, MAX_H = 1080;
let capture = null;

function regionMessage(fbW, fbH, x, y, w, hgt, seq, image, { format = 1, last = true } = {}) {
  const head = new DataView(new ArrayBuffer(24));
  head.setUint8(0, 0x52); head.setUint8(1, format); head.setUint8(2, last ? 1 : 0);
  head.setUint32(4, seq); head.setUint32(8, Date.now() % 0x100000000);
  head.setUint16(12, fbW); head.setUint16(14, fbH);
  head.setUint16(16, x); head.setUint16(18, y); head.setUint16(20, w); head.setUint16(22, hgt);
  return new Blob([head.buffer, image]);
}

function rowHashes(px, w, hgt) {
  const out = new Uint32Array(hgt);
  for (let y = 0; y < hgt; y++) {
    let hash = 0x811c9dc5;
    for (let i = y * w, end = i + w; i < end; i++) hash = Math.imul(hash ^ px[i], 0x01000193);
    out[y] = hash;
  }
  return out;
}

/** A vertical scroll from prev to cur: {from, to, rows} (rows to..to+rows
 * of cur are prev's from..from+rows), or null. Found from the rows unique
 * in prev, by the offset most of the changed rows agree on. */
function findScroll(prevHash, curHash) {
  const hgt = curHash.length, where = new Map();
  for (let y = 0; y < hgt; y++) where.set(prevHash[y], where.has(prevHash[y]) ? -1 : y);
  const votes = new Map();
  let best = 0, bestVotes = 0;
  for (let y = 0; y < hgt; y++) {
    if (curHash[y] === prevHash[y]) continue;
    const from = where.get(curHash[y]);
    if (from === undefined || from < 0 || from === y) continue;
    const n = (votes.get(from - y) ?? 0) + 1;
    votes.set(from - y, n);
    if (n > bestVotes) { bestVotes = n; best = from - y; }
  }
  if (bestVotes < 8) return null;
  // The longest run of rows that are prev's rows `best` away.
  let run = null;
  for (let y = 0; y < hgt;) {
    const ok = (k) => k + best >= 0 && k + best < hgt && curHash[k] === prevHash[k + best];
    if (!ok(y)) { y++; continue; }
    const a = y;
    while (y < hgt && ok(y)) y++;
    if (!run || y - a > run.rows) run = { from: a + best, to: a, rows: y - a };
  }
  return run && run.rows >= 16 ? run : null;
}

async function startShare() {
  // Tests hand in a canvas's stream (headless getDisplayMedia shows a test pattern).
  const stream = window.atriumDisplayMedia ? await window.atriumDisplayMedia()
    : await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: CAPTURE_FPS } });
  const video = h('video', { muted: true, playsinline: true });
  video.srcObject = stream;
  await video.play();
  const work = document.createElement('canvas');
  const ctx = work.getContext('2d', { willReadFrequently: true });
  const crop = document.createElement('canvas');
  let prev = null, prevHash = null, seq = 0, busy = false;
  const timer = setInterval(async () => {
    if (busy || !ws || ws.readyState !== 1 || ws.bufferedAmount > 2e6 || !video.videoWidth) return;
    busy = true;
    try {
      const scale = Math.min(1, MAX_W / video.videoWidth, MAX_H / video.videoHeight);
      const w = Math.round(video.videoWidth * scale), hgt = Math.round(video.videoHeight * scale);
      if (work.width !== w || work.height !== hgt) { work.width = w; work.height = hgt; prev = null; }
      ctx.drawImage(video, 0, 0, w, hgt);
      const cur = new Uint32Array(ctx.getImageData(0, 0, w, hgt).data.buffer);
      const curHash = rowHashes(cur, w, hgt);
      // A scroll goes as a copy of rows the server has; what still differs
      // after it goes as an image.
      const scroll = prev ? findScroll(prevHash, curHash) : null;
      if (scroll) prev.copyWithin(scroll.to * w, scroll.from * w, (scroll.from + scroll.rows) * w);
      // What changed since the last frame sent: for each run of tile rows
      // with a changed tile, the box of its changed tiles (a clock in the
      // corner and a scrolled-in strip at the bottom are two small boxes,
      // not one the size of the screen).
      const boxes = [];
      if (!prev) boxes.push({ x0: 0, y0: 0, x1: w, y1: hgt }); else {
        let box = null;
        for (let ty = 0; ty < hgt; ty += TILE) {
          let rx0 = w, rx1 = 0;
          for (let tx = 0; tx < w; tx += TILE) {
            let changed = false;
            for (let y = ty; y < Math.min(ty + TILE, hgt) && !changed; y++) {
              const row = y * w;
              for (let x = tx; x < Math.min(tx + TILE, w); x++) if (cur[row + x] !== prev[row + x]) { changed = true; break; }
            }
            if (changed) { rx0 = Math.min(rx0, tx); rx1 = Math.max(rx1, Math.min(tx + TILE, w)); }
          }
          if (rx1 > rx0) {
            if (!box) { box = { x0: rx0, y0: ty, x1: rx1, y1: 0 }; boxes.push(box); }
            box.x0 = Math.min(box.x0, rx0); box.x1 = Math.max(box.x1, rx1); box.y1 = Math.min(ty + TILE, hgt);
          } else box = null;
        }
      }
      prev = cur;
      prevHash = curHash;
      if (scroll) {
        const src = new DataView(new ArrayBuffer(4));
        src.setUint16(0, 0); src.setUint16(2, scroll.from);
        ws.send(regionMessage(w, hgt, 0, scroll.to, w, scroll.rows, seq, src.buffer, { format: 3, last: !boxes.length }));
        view.share.dataset.copies = String(Number(view.share.dataset.copies || 0) + 1);
      }
      if (!boxes.length) { if (scroll) view.share.dataset.sent = String(++seq); return; } // nothing moved: the server sends the lossless picture
      for (let i = 0; i < boxes.length; i++) {
        const b = boxes[i];
        crop.width = b.x1 - b.x0; crop.height = b.y1 - b.y0;
        crop.getContext('2d').drawImage(work, b.x0, b.y0, crop.width, crop.height, 0, 0, crop.width, crop.height);
        const jpeg = await new Promise((r) => crop.toBlob(r, 'image/jpeg', 0.92));
        ws.send(regionMessage(w, hgt, b.x0, b.y0, crop.width, crop.height, seq, jpeg, { last: i === boxes.length - 1 }));
      }
      seq++;
      view.share.dataset.sent = String(seq);
    } finally { busy = false; }
  }, 1000 / CAPTURE_FPS);
  capture = { stream, timer };
  stream.getVideoTracks()[0]?.addEventListener('ended', stopShare);
  view.share.textContent = T.stopShare;
}

function stopShare() {
  if (!capture) return;
  clearInterval(capture.timer);
  for (const tr of capture.stream.getTracks()) tr.stop();
  capture = null;
  view.share.textContent = T.share;
}

view.share.onclick = () => (capture ? stopShare() : startShare().catch((e) => say(e.message, 'error')));
view.end.onclick = () => sendJson({ type: 'end' });
view.chatForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = view.chatText.value.trim();
  if (!text) return;
  sendJson({ type: 'chat', text });
  view.chatText.value = '';
});

// ---- the socket ----------------------------------------------------------------------------

function connect(onOpen) {
  const url = new URL('ws', location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.search = `?meeting=${encodeURIComponent(meetingId)}${ticket ? `&ticket=${encodeURIComponent(ticket)}` : ''}`;
  ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  say(T.connecting);
  ws.addEventListener('message', (m) => {
    if (typeof m.data !== 'string') { onFrame(m.data); return; }
    let f;
    try { f = JSON.parse(m.data); } catch { return; }
    switch (f.type) {
      case 'welcome':
        me = f.you; role = f.role;
        view.title.textContent = f.meeting.title;
        document.body.dataset.role = role;
        if (f.banner && !$('unencrypted')) { view.banner.textContent = f.banner; view.banner.hidden = false; }
        view.end.hidden = role !== 'host';
        if (f.state === 'in') showRoom();
        onOpen?.();
        break;
      case 'lobby':
        if (f.state === 'waiting') { say(T.lobby); document.body.dataset.state = 'lobby'; }
        if (f.waiting) renderWaiting(f.waiting);
        break;
      case 'admitted': showRoom(); document.body.dataset.state = 'in'; break;
      case 'participants':
        presenterId = f.presenter ?? null;
        view.share.hidden = presenterId !== me;
        if (presenterId !== me) stopShare();
        renderPeople(f.participants);
        break;
      case 'chat':
        view.log.append(h('li', {}, h('strong', { text: `${f.name}: ` }), f.text));
        view.log.scrollTop = view.log.scrollHeight;
        break;
      case 'removed': case 'ended':
        stopShare();
        view.root.hidden = true; form.hidden = true;
        say(f.reason || T.ended);
        document.body.dataset.state = 'ended';
        break;
      case 'error': say(f.detail, 'error'); break;
      default: break;
    }
  });
  ws.addEventListener('close', () => { if (document.body.dataset.state !== 'ended') say(T.ended); });
}

if (!meetingId) {
  form.addEventListener('submit', (ev) => { ev.preventDefault(); say(T.noMeeting, 'error'); });
} else if (ticket) {
  form.hidden = true;
  connect();
} else {
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!form.consent.checked) { say(form.dataset.needConsent, 'error'); return; }
    const join = { type: 'join', name: form.name.value.trim(), consent: true };
    if (ws && ws.readyState === 1) { sendJson(join); return; }
    connect(() => sendJson(join));
  });
}
