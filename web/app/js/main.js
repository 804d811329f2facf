// Start-up and glue: the top bar (views, own presence, connection, language,
// log out), the sidebar of contacts, the main pane (login, chat, journal),
// the real-time connection and the routes between the views (#/chat/<address>,
// #/journal).
import * as api from './api.js';
import { createChatView } from './chat.js';
import { createConnection } from './connection.js';
import { createContactsPane } from './contacts.js';
import { h } from './dom.js';
import { LANGUAGES, bindAttr, bindText, initLanguage, language, retranslate, setLanguage, setTitle, t } from './i18n.js';
import { createJournalView } from './journal.js';
import { createMeetingsView } from './meetings.js';
import { createLoginView } from './login.js';
import { createPresenceControl } from './presence.js';
import * as pictures from './pictures.js';
import { createProfileView } from './profile.js';
import { createStore } from './store.js';
import { createWatchersBox } from './watchers.js';

const TYPING_SHOWN_MS = 5000;
const WATCH_CHUNK = 1000;
const RECEIPT_GAP_MS = 100;

initLanguage();

const store = createStore();
const topbar = document.getElementById('topbar');
const layout = document.getElementById('layout');
const main = document.getElementById('main');
const announcer = document.getElementById('announce');

/** Says a sentence through the polite live region. */
function announce(text) {
  announcer.textContent = '';
  // A new text node in a later task is announced even when it repeats the last one.
  setTimeout(() => { announcer.textContent = text; }, 50);
}

// ---- the connection ---------------------------------------------------------------

let session = null;
let displayName = null;
let watching = new Set();

const connStatus = h('span', { class: 'conn-text', id: 'conn-text', role: 'status' });
const connDot = h('span', { class: 'dot conn-dot', 'aria-hidden': 'true' });
const connRetry = bindText(h('button', { type: 'button', class: 'secondary small', id: 'conn-retry', hidden: true }), 'conn.retry');
const connBox = h('div', { class: 'conn', id: 'conn', hidden: true }, connDot, connStatus, connRetry);

const connection = createConnection({
  onState({ state, detail, bye }) {
    connBox.dataset.state = state;
    connRetry.hidden = state !== 'waiting';
    if (state === 'open') bindText(connStatus, 'conn.open');
    else if (state === 'connecting' && !bye) bindText(connStatus, 'conn.connecting');
    else if (bye === 'shutdown') bindText(connStatus, 'conn.shutdown');
    else if (bye === 'idle') bindText(connStatus, 'conn.idle');
    else if (bye === 'domain_changed') bindText(connStatus, 'conn.domain_changed');
    else if (state === 'waiting' && detail) bindText(connStatus, 'conn.waiting_detail', { detail });
    else if (state === 'waiting' || state === 'connecting') bindText(connStatus, 'conn.waiting');
  },
  onHello(f) {
    if (typeof f.address === 'string') {
      // After a domain change the same login has a new address.
      store.setMe(f.address);
      pictures.setDomain(f.address);
      presence.setIdentity(displayName, f.address);
      bindText(who, 'user.signed_in', { user: f.address });
    }
    watching = new Set();
    presence.connected();
    afterConnect();
  },
  onFrame,
  onEnd({ reason, bye, problem }) {
    if (reason === 'bye') endSession(`login.${bye}`);
    else if (bye === 'domain_changed' || problem?.reason === 'domain-changed' || /setup-again/.test(problem?.type ?? '')) endSession('login.domain_changed');
    else endSession('login.expired');
  },
});
connRetry.addEventListener('click', () => connection.retryNow());
window.addEventListener('online', () => connection.retryNow());

async function afterConnect() {
  await contacts.load();
  watchers.start();
  watch(store.watched());
  chat.refresh();
  const p = chat.peer();
  if (p) maybeRead(p);
}

function watch(addresses) {
  const fresh = addresses.filter((a) => !watching.has(a.toLowerCase()) && !store.isMe(a));
  for (let i = 0; i < fresh.length; i += WATCH_CHUNK) {
    const part = fresh.slice(i, i + WATCH_CHUNK);
    if (!connection.send({ type: 'presence.watch', addresses: part })) return;
    for (const a of part) watching.add(a.toLowerCase());
  }
}

/** Sends at once, then at most one frame per gap with the newest value:
 * one frame stands for the message and every earlier one, so a burst of
 * offline messages costs a few frames, not one per message. */
function coalescer(sendFn, gapMs) {
  let timer = null, waiting = null;
  const flush = () => {
    timer = null;
    if (waiting === null) return;
    const v = waiting;
    waiting = null;
    sendFn(v);
    timer = setTimeout(flush, gapMs);
  };
  return (v) => {
    if (timer) { waiting = v; return; }
    sendFn(v);
    timer = setTimeout(flush, gapMs);
  };
}

const sendReceived = coalescer((id) => connection.send({ type: 'chat.received', message_id: id }), RECEIPT_GAP_MS);
const readSenders = new Map();
function sendRead(peer, id) {
  const k = peer.toLowerCase();
  if (!readSenders.has(k)) readSenders.set(k, coalescer((v) => connection.send({ type: 'chat.read', message_id: v }), RECEIPT_GAP_MS));
  readSenders.get(k)(id);
}

function seen() { return document.visibilityState === 'visible' && document.hasFocus(); }

/** Marks the open conversation read up to its newest message, when the user can see it. */
function maybeRead(peer) {
  if (!peer || chat.peer()?.toLowerCase() !== peer.toLowerCase() || chat.element.hidden || !seen()) return;
  const m = store.newestIncoming(peer);
  if (!m || m.read || !connection.isOpen()) return;
  sendRead(peer, m.message_id);
  store.markReadUpTo(peer, m.message_id);
}

function onFrame(f) {
  switch (f.type) {
    case 'presence':
      if (typeof f.address === 'string') store.presence(f);
      break;
    case 'chat': {
      if (f.message_id === undefined || typeof f.from !== 'string' || typeof f.to !== 'string') break;
      const { peer, msg, isNew } = store.chat(f);
      if (!msg.out) {
        sendReceived(String(f.message_id));
        if (isNew) announce(t('announce.message', { name: store.nameOf(peer), text: msg.text.slice(0, 200) }));
      }
      watch([peer]);
      maybeRead(peer);
      break;
    }
    case 'chat.delivered':
      if (f.message_id !== undefined && typeof f.by === 'string') store.delivered(f);
      break;
    case 'chat.read':
      if (f.message_id !== undefined && typeof f.by === 'string') store.read(f);
      break;
    case 'typing':
      if (typeof f.from === 'string' && !store.isMe(f.from)) store.typing(f.from, TYPING_SHOWN_MS);
      break;
    default:
      // bye is handled by the connection (the close follows); errors without
      // an id answer nothing this client waits for.
      break;
  }
}

// ---- the top bar ------------------------------------------------------------------

const presence = createPresenceControl({ connection, announce });

const navChats = bindText(h('a', { href: '#/', id: 'nav-chats' }), 'nav.chats');
const navJournal = bindText(h('a', { href: '#/journal', id: 'nav-journal' }), 'nav.journal');
const navMeetings = bindText(h('a', { href: '#/meetings', id: 'nav-meetings' }), 'nav.meetings');
const navProfile = bindText(h('a', { href: '#/profile', id: 'nav-profile' }), 'nav.profile');
const nav = h('nav', { class: 'mainnav', id: 'mainnav', hidden: true },
  h('ul', {}, h('li', {}, navChats), h('li', {}, navJournal), h('li', {}, navMeetings), h('li', {}, navProfile)));
bindAttr(nav, 'aria-label', 'nav.label');
const langSelect = h('select', { id: 'lang-select' },
  ...LANGUAGES.map((l) => h('option', { value: l.code, lang: l.code }, l.name)));
langSelect.value = language();
langSelect.addEventListener('change', () => setLanguage(langSelect.value));
const who = h('span', { class: 'signed-in', id: 'who' });
const logoutBtn = bindText(h('button', { type: 'button', class: 'secondary small', id: 'logout-button' }), 'logout');
const userBox = h('div', { class: 'userbox', hidden: true }, who, logoutBtn);
topbar.append(
  bindText(h('a', { class: 'skip', href: '#main' }), 'app.skip'),
  h('span', { class: 'brand' }, h('img', { src: 'favicon.svg', alt: '', width: 24, height: 24 }),
    bindText(h('span'), 'app.brand')),
  nav, connBox,
  h('div', { class: 'tools' },
    h('div', { class: 'lang' }, bindText(h('label', { for: 'lang-select' }), 'lang.label'), langSelect),
    userBox));
document.querySelector('.skip').addEventListener('click', (ev) => { ev.preventDefault(); main.focus(); });

// ---- views ------------------------------------------------------------------------

const contacts = createContactsPane({ store, announce, onAdded: (a) => watch([a]), header: presence.element });
const chat = createChatView({ store, connection, onBack: () => { location.hash = '#/'; }, onSeen: maybeRead });
const journal = createJournalView({ store });
const meetings = createMeetingsView();
const profile = createProfileView({ announce });
const login = createLoginView({ onLoggedIn: startSession });
const welcome = h('section', { class: 'view welcome-view', id: 'view-welcome', 'aria-labelledby': 'welcome-heading', hidden: true },
  bindText(h('h2', { id: 'welcome-heading', tabindex: '-1' }), 'welcome.heading'),
  bindText(h('p'), 'welcome.text'));
const watchers = createWatchersBox({ announce });
contacts.element.insertBefore(watchers.element, contacts.element.children[1] ?? null);
layout.insertBefore(contacts.element, main);
main.append(login.element, welcome, chat.element, journal.element, meetings.element, profile.element);

store.onChange((what, peer) => {
  if (what === 'conv' || what === 'contacts') setTitle(title);
  if (what === 'conv' && peer) maybeRead(peer);
});

function title() {
  const n = store.totalUnread();
  return n ? `(${n}) ${t('app.title')}` : t('app.title');
}

window.addEventListener('focus', () => maybeRead(chat.peer()));
document.addEventListener('visibilitychange', () => maybeRead(chat.peer()));

// ---- sessions ---------------------------------------------------------------------

function showLogin(noticeKey) {
  layout.dataset.signedIn = 'false';
  nav.hidden = true;
  userBox.hidden = true;
  connBox.hidden = true;
  contacts.element.hidden = true;
  welcome.hidden = true;
  chat.close();
  journal.hide();
  meetings.hide();
  profile.hide();
  login.show(noticeKey);
}

function endSession(noticeKey) {
  connection.stop();
  api.storeSession(null);
  presence.stop();
  presence.reset();
  store.reset();
  chat.close();
  journal.reset();
  meetings.reset();
  profile.reset();
  pictures.reset();
  contacts.reset();
  watchers.reset();
  readSenders.clear();
  session = null;
  setTitle(title);
  showLogin(noticeKey);
}

async function startSession(s) {
  session = s;
  store.reset();
  if (s.login) store.setMe(s.login);
  pictures.setDomain(s.login);
  bindText(who, 'user.signed_in', { user: s.login ?? '' });
  displayName = null;
  presence.setIdentity(null, s.login);
  api.me().then((r) => {
    if (session !== s || r.status !== 200) return;
    displayName = typeof r.json?.display_name === 'string' ? r.json.display_name : null;
    presence.setIdentity(displayName, store.me() ?? s.login);
  });
  login.hide();
  layout.dataset.signedIn = 'true';
  nav.hidden = false;
  userBox.hidden = false;
  connBox.hidden = false;
  contacts.element.hidden = false;
  presence.start();
  connection.start();
  route(true);
}

logoutBtn.addEventListener('click', async () => {
  // The token is revoked first; the page logs out whatever the answer.
  try { await api.logout(); } catch { /* offline: it expires by itself */ }
  endSession('login.logged_out');
});
api.onUnauthorized((problem) => {
  if (!session) return;
  if (problem?.reason === 'domain-changed' || /setup-again/.test(problem?.type ?? '')) endSession('login.domain_changed');
  else endSession('login.expired');
});

// ---- routes -----------------------------------------------------------------------

function parseRoute() {
  const hash = location.hash;
  if (hash.startsWith('#/chat/')) {
    try { return { view: 'chat', peer: decodeURIComponent(hash.slice(7)) }; } catch { return { view: 'home' }; }
  }
  if (hash === '#/journal') return { view: 'journal' };
  if (hash === '#/meetings') return { view: 'meetings' };
  if (hash === '#/profile') return { view: 'profile' };
  return { view: 'home' };
}

function route(focus) {
  if (!session) return;
  const r = parseRoute();
  layout.dataset.pane = r.view === 'home' ? 'list' : 'main';
  navChats.toggleAttribute('aria-current', false);
  navJournal.toggleAttribute('aria-current', false);
  navMeetings.toggleAttribute('aria-current', false);
  navProfile.toggleAttribute('aria-current', false);
  ({ journal: navJournal, meetings: navMeetings, profile: navProfile }[r.view] ?? navChats).setAttribute('aria-current', 'page');
  welcome.hidden = r.view !== 'home';
  if (r.view !== 'journal') journal.hide();
  if (r.view !== 'meetings') meetings.hide();
  if (r.view !== 'profile') profile.hide();
  if (r.view === 'chat') {
    contacts.setCurrent(r.peer);
    chat.open(r.peer, { focus });
  } else {
    chat.close();
    contacts.setCurrent(null);
    if (r.view === 'journal') journal.show({ focus });
    else if (r.view === 'meetings') meetings.show({ focus });
    else if (r.view === 'profile') profile.show({ focus });
    else if (focus && layout.dataset.pane === 'list' && document.activeElement === document.body) contacts.focus();
  }
}

window.addEventListener('hashchange', () => {
  if (location.hash === '#main') return;
  route(true);
});

// ---- start ------------------------------------------------------------------------

setTitle(title);
retranslate(document);
const saved = api.storedSession();
if (saved) await startSession(saved);
else showLogin(null);
document.body.classList.add('ready');
