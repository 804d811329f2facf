// Requests from other organisations to see the user's presence (federation):
// GET /client/v1/federation/watchers lists who asked; Allow or Decline goes
// to PUT /client/v1/federation/watchers/{address}. Until the user allows, the
// other side sees nothing of the user's presence. Fetched after each
// connection and then every minute (the server pushes no frame for it).
import * as api from './api.js';
import { h } from './dom.js';
import { bindText, t } from './i18n.js';

const REFRESH_MS = 60000;
const enc = encodeURIComponent;

export function createWatchersBox({ announce }) {
  const heading = bindText(h('h2', { id: 'watchers-heading' }), 'watchers.heading');
  const hint = bindText(h('p', { class: 'hint', id: 'watchers-hint' }), 'watchers.hint');
  const list = h('ul', { class: 'watcher-list', id: 'watcher-list', 'aria-describedby': 'watchers-hint' });
  const element = h('section', { class: 'watchers', id: 'watchers', 'aria-labelledby': 'watchers-heading', hidden: true },
    heading, hint, list);
  let timer = null;

  async function decide(address, allow, row) {
    for (const b of row.querySelectorAll('button')) b.disabled = true;
    const r = await api.call('PUT', `/federation/watchers/${enc(address)}`, { body: { allow } });
    if (r.status === 200) {
      row.remove();
      announce(t(allow ? 'watchers.allowed' : 'watchers.declined', { address }));
      element.hidden = list.children.length === 0;
    } else {
      for (const b of row.querySelectorAll('button')) b.disabled = false;
      announce(t('watchers.failed', { address, detail: api.problemText(r) ?? '' }));
    }
  }

  async function load() {
    const r = await api.call('GET', '/federation/watchers');
    if (r.status !== 200) return; // federation not in use, or the server is away: nothing to ask
    list.replaceChildren();
    for (const w of r.json?.watchers ?? []) {
      if (w.state !== 'pending') continue;
      const allow = bindText(h('button', { type: 'button', class: 'small' }), 'watchers.allow');
      const decline = bindText(h('button', { type: 'button', class: 'secondary small' }), 'watchers.decline');
      const row = h('li', { class: 'watcher', 'data-address': w.address },
        h('span', { class: 'who' }, w.address), allow, decline);
      allow.addEventListener('click', () => decide(w.address, true, row));
      decline.addEventListener('click', () => decide(w.address, false, row));
      list.append(row);
    }
    element.hidden = list.children.length === 0;
  }

  return {
    element,
    start() {
      load();
      clearInterval(timer);
      timer = setInterval(load, REFRESH_MS);
    },
    reset() {
      clearInterval(timer);
      timer = null;
      list.replaceChildren();
      element.hidden = true;
    },
  };
}
