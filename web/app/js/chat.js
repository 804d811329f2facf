// One conversation: its history (paged back with "load earlier"), the
// messages with their marks (pending, sent, delivered ✓, read ✓✓, failed with
// the server's sentence), the typing indicator and the composer. Enter sends,
// Shift+Enter starts a new line. Message text is only ever set as textContent.
import * as api from './api.js';
import { clear, h } from './dom.js';
import { bindAttr, bindText, formatFull, formatTime, onLanguageChange, t, unbindText } from './i18n.js';
import { createAvatar } from './pictures.js';

const PAGE = 50;
const MAX_TEXT_BYTES = 16 * 1024;
const TYPING_EVERY_MS = 3000;
// Sent (the server has it) is a ring, delivered one check, read two.
const MARKS = { pending: '…', sent: '○', delivered: '✓', read: '✓✓', failed: '!' };

export function createChatView({ store, connection, onBack, onSeen }) {
  const back = h('a', { class: 'back', id: 'chat-back', href: '#/' },
    h('span', { 'aria-hidden': 'true' }, '‹ '), bindText(h('span'), 'chat.back'));
  bindAttr(back, 'aria-label', 'chat.back_label');
  back.addEventListener('click', (ev) => { ev.preventDefault(); onBack(); });
  const title = h('h2', { id: 'chat-title', tabindex: '-1' });
  const dot = h('span', { class: 'dot', 'aria-hidden': 'true' });
  const presence = h('p', { class: 'chat-presence', id: 'chat-presence' });
  const avatarBox = h('span', { class: 'chat-avatar', id: 'chat-avatar' });
  let avatar = null;
  const head = h('header', { class: 'chat-head' }, back, avatarBox,
    h('div', { class: 'chat-who' }, h('div', { class: 'chat-title-line' }, dot, title), presence));

  const earlier = bindText(h('button', { type: 'button', class: 'secondary small', id: 'chat-earlier', hidden: true }), 'chat.earlier');
  const info = h('p', { class: 'chat-info', id: 'chat-info' });
  const list = h('ol', { class: 'messages', id: 'messages' });
  const scroller = h('div', { class: 'history', id: 'history', tabindex: '0' }, h('div', { class: 'history-top' }, earlier, info), list);
  const typing = h('p', { class: 'typing', id: 'typing', 'aria-live': 'polite' });

  const composer = h('textarea', { id: 'composer', rows: 2, 'aria-describedby': 'composer-hint' });
  const composerLabel = h('label', { for: 'composer', class: 'visually-hidden', id: 'composer-label' });
  const send = bindText(h('button', { type: 'submit', class: 'primary', id: 'send' }), 'chat.send');
  const composerError = h('p', { class: 'error', id: 'composer-error', role: 'alert', hidden: true });
  const hint = bindText(h('p', { class: 'hint', id: 'composer-hint' }), 'chat.composer_hint');
  const form = h('form', { class: 'composer', novalidate: true }, composerLabel,
    h('div', { class: 'composer-line' }, composer, send), hint, composerError);

  const element = h('section', { class: 'view chat-view', id: 'view-chat', 'aria-labelledby': 'chat-title', hidden: true },
    head, scroller, typing, form);

  let peer = null;
  const items = new Map(); // message key → {li, ...}
  let typingTimer = null;
  let lastTypingSent = 0;
  let loading = false;

  // ---- messages ---------------------------------------------------------------------

  function makeItem(m) {
    const who = h('span', { class: 'visually-hidden' });
    const text = h('p', { class: 'text' });
    text.textContent = m.text;
    const time = h('time', { class: 'time' });
    const mark = h('span', { class: 'mark', 'aria-hidden': 'true' });
    const markText = h('span', { class: 'visually-hidden mark-text' });
    const meta = h('div', { class: 'meta' }, time, m.out ? mark : null, m.out ? markText : null);
    const errorText = h('span', { class: 'msg-error-text' });
    const retry = bindText(h('button', { type: 'button', class: 'secondary small retry' }), 'chat.retry');
    bindAttr(retry, 'aria-label', 'chat.retry_label');
    const error = h('p', { class: 'msg-error', hidden: true }, errorText, ' ', retry);
    const li = h('li', { class: `msg ${m.out ? 'out' : 'in'}`, 'data-key': m.key },
      h('div', { class: 'bubble' }, who, text, meta), error);
    retry.addEventListener('click', () => { resend(m); composer.focus(); });
    return { li, who, time, mark, markText, error, errorText, retry };
  }

  function updateItem(it, m) {
    if (m.message_id) it.li.dataset.id = m.message_id;
    it.li.dataset.state = m.out ? m.state : (m.read ? 'read' : 'unread');
    it.who.textContent = `${m.out ? t('chat.you') : store.nameOf(m.from)}: `;
    it.time.dateTime = m.time;
    it.time.textContent = formatTime(m.time);
    it.time.title = formatFull(m.time);
    if (m.out) {
      it.mark.textContent = MARKS[m.state] ?? '';
      it.mark.dataset.state = m.state;
      bindText(it.markText, `mark.${m.state}`);
      bindAttr(it.mark, 'title', `mark.${m.state}`);
    }
    if (m.state === 'failed' && m.error) {
      if (m.error.key) bindText(it.errorText, m.error.key);
      else unbindText(it.errorText, m.error.detail);
      if (!it.error.hidden) return;
      it.error.hidden = false;
      it.error.setAttribute('role', 'alert');
    } else {
      it.error.hidden = true;
      it.error.removeAttribute('role');
    }
  }

  function atBottom() { return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40; }

  function renderMessages({ keepTop = false, toBottom = false } = {}) {
    if (!peer) return;
    const stick = toBottom || atBottom();
    const oldHeight = scroller.scrollHeight, oldTop = scroller.scrollTop;
    const msgs = store.messages(peer);
    const wanted = msgs.map((m) => {
      let it = items.get(m.key);
      if (!it) { it = makeItem(m); items.set(m.key, it); }
      updateItem(it, m);
      return it.li;
    });
    const same = wanted.length === list.children.length && wanted.every((li, i) => list.children[i] === li);
    if (!same) {
      const focused = document.activeElement;
      for (const li of wanted) list.append(li);
      for (const li of [...list.children]) if (!wanted.includes(li)) li.remove();
      if (focused && focused !== document.activeElement && focused.isConnected) focused.focus();
    }
    for (const [k, it] of items) if (!it.li.isConnected) items.delete(k);
    const c = store.conversation(peer);
    earlier.hidden = !c.hasMore;
    if (!c.loaded && !msgs.length) bindText(info, loading ? 'chat.loading' : 'chat.empty');
    else if (!msgs.length) bindText(info, 'chat.empty');
    else if (c.loaded && !c.hasMore) bindText(info, 'chat.beginning');
    else info.textContent = '';
    if (keepTop) scroller.scrollTop = oldTop + (scroller.scrollHeight - oldHeight);
    else if (stick) scroller.scrollTop = scroller.scrollHeight;
  }

  function renderHead() {
    if (!peer) return;
    const c = store.contact(peer);
    const state = c?.state ?? 'offline';
    title.textContent = store.nameOf(peer);
    title.title = peer;
    if (!avatar || avatar.address !== peer) {
      avatar?.drop();
      avatar = createAvatar(peer, store.nameOf(peer));
      avatar.address = peer;
      avatarBox.replaceChildren(avatar.element);
    } else {
      avatar.setName(store.nameOf(peer));
    }
    dot.dataset.state = state;
    clear(presence);
    presence.append(bindText(h('span', { class: 'state', 'data-state': state }), `state.${state}`));
    if (c?.note) presence.append(' — ', h('span', { class: 'note' }, c.note));
    presence.append(h('span', { class: 'address' }, peer));
    bindAttr(list, 'aria-label', 'chat.messages', { name: store.nameOf(peer) });
    bindText(composerLabel, 'chat.composer', { name: store.nameOf(peer) });
  }

  function renderTyping() {
    clearTimeout(typingTimer);
    if (peer && store.isTyping(peer)) {
      bindText(typing, 'chat.typing', { name: store.nameOf(peer) });
      const left = store.conversation(peer).typingUntil - Date.now();
      typingTimer = setTimeout(renderTyping, Math.max(50, left + 20));
    } else {
      unbindText(typing);
    }
  }

  // ---- loading ----------------------------------------------------------------------

  async function loadHistory({ before } = {}) {
    const p = peer;
    loading = true;
    if (!before) renderMessages();
    const r = await api.messages(p, { before, limit: PAGE });
    loading = false;
    if (p !== peer) return;
    if (r.status !== 200) {
      bindText(info, 'chat.load_failed', { detail: api.problemText(r) ?? (() => t('net.unreachable')) });
      return;
    }
    const msgs = Array.isArray(r.json?.messages) ? r.json.messages.filter((m) => m && m.message_id !== undefined) : [];
    store.history(p, msgs, { limit: PAGE, before });
    renderMessages(before ? { keepTop: true } : { toBottom: true });
    onSeen(p);
  }

  earlier.addEventListener('click', async () => {
    const oldest = store.oldestId(peer);
    if (!oldest) return;
    earlier.disabled = true;
    bindText(earlier, 'chat.earlier_busy');
    await loadHistory({ before: oldest });
    earlier.disabled = false;
    bindText(earlier, 'chat.earlier');
    // The button may vanish at the beginning; keep the focus in the history.
    if (earlier.hidden && document.activeElement === document.body) scroller.focus();
  });

  // ---- sending ----------------------------------------------------------------------

  async function deliver(p, m) {
    const r = await connection.request({ type: 'chat.send', to: p, text: m.text });
    if (r.type === 'ok' && r.message_id !== undefined) store.confirm(p, m, r);
    else if (r.local) store.fail(p, m, { key: r.timeout ? 'chat.no_answer' : 'chat.lost' });
    else store.fail(p, m, { detail: r.detail || `HTTP ${r.status}` });
  }

  function resend(m) {
    if (!connection.isOpen()) { showComposerError('chat.not_connected'); return; }
    store.retrying(m.to, m);
    deliver(m.to, m);
  }

  function showComposerError(key) {
    bindText(composerError, key);
    composerError.hidden = false;
  }

  function submit() {
    const text = composer.value;
    if (!text.trim() || !peer) return;
    if (new TextEncoder().encode(text).length > MAX_TEXT_BYTES) { showComposerError('chat.too_long'); return; }
    if (!connection.isOpen()) { showComposerError('chat.not_connected'); return; }
    composerError.hidden = true;
    composer.value = '';
    lastTypingSent = 0;
    const m = store.addPending(peer, text);
    renderMessages({ toBottom: true });
    deliver(peer, m);
  }

  form.addEventListener('submit', (ev) => { ev.preventDefault(); submit(); composer.focus(); });
  composer.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && !ev.altKey && !ev.ctrlKey && !ev.metaKey) {
      ev.preventDefault();
      submit();
    }
  });
  composer.addEventListener('input', () => {
    if (!peer || !composer.value) return;
    composerError.hidden = true;
    const now = Date.now();
    if (now - lastTypingSent >= TYPING_EVERY_MS && connection.send({ type: 'typing', to: peer })) lastTypingSent = now;
  });

  store.onChange((what, who) => {
    if (!peer) return;
    const mine = who && who.toLowerCase() === peer.toLowerCase();
    if (what === 'conv' && mine) { renderMessages(); renderTyping(); }
    else if (what === 'typing' && mine) renderTyping();
    else if (what === 'presence' && mine) renderHead();
    else if (what === 'contacts') renderHead();
  });

  onLanguageChange(() => { if (peer) renderMessages(); });

  return {
    element,
    peer: () => peer,
    async open(address, { focus = true } = {}) {
      const changed = !peer || peer.toLowerCase() !== address.toLowerCase();
      if (changed) {
        peer = address;
        items.clear();
        clear(list);
        composer.value = '';
        composerError.hidden = true;
        lastTypingSent = 0;
      }
      element.hidden = false;
      renderHead();
      renderTyping();
      renderMessages({ toBottom: true });
      if (focus) composer.focus();
      if (changed || !store.conversation(address).loaded) await loadHistory();
      else onSeen(address);
    },
    /** After a reconnect: the newest page again (messages sent meanwhile). */
    refresh() { if (peer && !loading) loadHistory(); },
    close() {
      peer = null;
      element.hidden = true;
      items.clear();
      clear(list);
      clearTimeout(typingTimer);
    },
  };
}
