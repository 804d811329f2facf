// The user's own presence: a state and a note, sent with presence.set on
// every change and again on every new connection (a connection starts
// "available"). After 10 minutes without keyboard, mouse or touch input an
// "available" user is set "away", and back to "available" at the next input.
import { h } from './dom.js';
import { STATES } from './store.js';
import { bindAttr, bindText, t } from './i18n.js';

export const IDLE_MS = 10 * 60 * 1000;
const CHECK_MS = 15000;
const NOTE_MAX_BYTES = 256;
const STORAGE_KEY = 'atrium.app.presence';
const INPUT_EVENTS = ['keydown', 'pointerdown', 'pointermove', 'wheel', 'touchstart', 'focusin'];

export function createPresenceControl({ connection, announce }) {
  let chosen = 'available';
  let note = '';
  let autoAway = false;
  let lastInput = Date.now();
  let checkTimer = null;

  try {
    const s = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? 'null');
    if (s && STATES.includes(s.state)) { chosen = s.state; note = typeof s.note === 'string' ? s.note : ''; }
  } catch { /* storage disabled or damaged */ }

  const dot = h('span', { class: 'dot', 'aria-hidden': 'true', 'data-state': chosen });
  const select = h('select', { id: 'my-state' },
    ...STATES.map((s) => bindText(h('option', { value: s }), `state.${s}`)));
  select.value = chosen;
  const noteInput = h('input', { type: 'text', id: 'my-note', maxlength: NOTE_MAX_BYTES, autocomplete: 'off' });
  noteInput.value = note;
  bindAttr(noteInput, 'placeholder', 'me.note');
  const noteButton = bindText(h('button', { type: 'submit', class: 'secondary small', id: 'my-note-save' }), 'me.note_save');
  const autoHint = bindText(h('span', { class: 'auto-away', id: 'my-auto-away', hidden: true }), 'me.auto_away');
  const error = h('p', { class: 'error me-error', id: 'my-presence-error', role: 'alert', hidden: true });
  const stateLabel = bindText(h('label', { for: 'my-state' }), 'me.state');
  const noteLabel = bindText(h('label', { for: 'my-note', class: 'visually-hidden' }), 'me.note');
  const form = h('form', { class: 'me-note', novalidate: true }, noteLabel, noteInput, noteButton);
  const myName = h('p', { class: 'me-name', id: 'my-name' });
  const myAddress = h('p', { class: 'me-address', id: 'my-address' });
  const element = h('div', { class: 'me', id: 'me', role: 'group' },
    h('div', { class: 'me-who' }, dot, h('div', {}, myName, myAddress)),
    h('div', { class: 'me-state' }, stateLabel, select), form, autoHint, error);
  bindAttr(element, 'aria-label', 'me.label');

  function persist() {
    try { sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ state: chosen, note })); } catch { /* storage disabled */ }
  }

  function effective() { return autoAway ? 'away' : chosen; }

  function show() {
    select.value = effective();
    dot.dataset.state = effective();
    autoHint.hidden = !autoAway;
  }

  async function send() {
    show();
    if (!connection.isOpen()) return;
    const r = await connection.request({ type: 'presence.set', state: effective(), note });
    if (r.type === 'error' && !r.local) {
      bindText(error, 'me.failed', { detail: r.detail || `HTTP ${r.status}` });
      error.hidden = false;
    } else if (r.type === 'ok') {
      error.hidden = true;
    }
  }

  select.addEventListener('change', () => {
    chosen = select.value;
    autoAway = false;
    persist();
    send();
    announce(t('me.saved', { state: t(`state.${chosen}`) }));
  });

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = noteInput.value.trim();
    if (new TextEncoder().encode(v).length > NOTE_MAX_BYTES) {
      bindText(error, 'me.note_too_long');
      error.hidden = false;
      noteInput.focus();
      return;
    }
    note = v;
    noteInput.value = v;
    persist();
    send();
  });

  function onInput() {
    lastInput = Date.now();
    if (autoAway) {
      autoAway = false;
      send();
    }
  }

  function check() {
    if (!autoAway && chosen === 'available' && Date.now() - lastInput >= IDLE_MS && connection.isOpen()) {
      autoAway = true;
      send();
    }
  }

  return {
    element,
    /** Who this is: the display name when known, and the address. */
    setIdentity(name, address) {
      myName.textContent = name || address || '';
      myAddress.textContent = name && address && name !== address ? address : '';
      myAddress.hidden = !myAddress.textContent;
    },
    /** A new connection said hello: tell it what this user has chosen. */
    connected() {
      if (effective() !== 'available' || note) send();
      else show();
    },
    start() {
      lastInput = Date.now();
      for (const e of INPUT_EVENTS) window.addEventListener(e, onInput, { passive: true, capture: true });
      clearInterval(checkTimer);
      checkTimer = setInterval(check, CHECK_MS);
    },
    stop() {
      for (const e of INPUT_EVENTS) window.removeEventListener(e, onInput, { capture: true });
      clearInterval(checkTimer);
      checkTimer = null;
      autoAway = false;
    },
    /** Forgets the choice (log out). */
    reset() {
      chosen = 'available';
      note = '';
      noteInput.value = '';
      autoAway = false;
      error.hidden = true;
      try { sessionStorage.removeItem(STORAGE_KEY); } catch { /* storage disabled */ }
      show();
    },
  };
}
