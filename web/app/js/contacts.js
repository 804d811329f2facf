// The sidebar: the user's contacts with their presence and unread counts,
// people who wrote without being a contact, and the directory search that
// adds contacts. Rows are kept and updated in place, so that a presence
// change never takes the keyboard focus away.
import * as api from './api.js';
import { clear, h } from './dom.js';
import { bindAttr, bindPlural, bindText, t } from './i18n.js';
import { createAvatar } from './pictures.js';

const SEARCH_DELAY_MS = 300;

export function chatHref(address) { return `#/chat/${encodeURIComponent(address)}`; }

export function createContactsPane({ store, onAdded, announce, header }) {
  const heading = bindText(h('h2', { id: 'contacts-heading', tabindex: '-1' }), 'contacts.heading');
  const status = h('p', { class: 'status', id: 'contacts-status', role: 'status' });
  const list = h('ul', { class: 'contact-list', id: 'contact-list' });
  bindAttr(list, 'aria-label', 'contacts.list');
  const othersHeading = bindText(h('h3', { class: 'others-heading', id: 'others-heading', hidden: true }), 'contacts.others');
  const others = h('ul', { class: 'contact-list', id: 'other-list', 'aria-labelledby': 'others-heading', hidden: true });

  // ---- the search -----------------------------------------------------------------
  const searchHeading = bindText(h('h2', { id: 'search-heading' }), 'search.heading');
  const searchInput = h('input', { type: 'search', id: 'search-input', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'search-hint' });
  const searchButton = bindText(h('button', { type: 'submit', class: 'secondary small', id: 'search-submit' }), 'search.submit');
  const searchStatus = h('p', { class: 'status', id: 'search-status', role: 'status' });
  const results = h('ul', { class: 'results', id: 'search-results' });
  const searchForm = h('form', { class: 'search-form', role: 'search', novalidate: true, 'aria-labelledby': 'search-heading' },
    bindText(h('label', { for: 'search-input' }), 'search.label'),
    h('div', { class: 'search-line' }, searchInput, searchButton),
    bindText(h('p', { class: 'hint', id: 'search-hint' }), 'search.hint'));
  const searchBox = h('section', { class: 'add-contact', 'aria-labelledby': 'search-heading' },
    searchHeading, searchForm, searchStatus, results);

  const element = h('section', { class: 'sidebar', id: 'sidebar', 'aria-labelledby': 'contacts-heading', hidden: true },
    header, h('div', { class: 'contacts' }, heading, status, list, othersHeading, others), searchBox);

  const rows = new Map(); // lower-case address → {li, parts}
  let current = null;
  let loaded = false;
  let lastResults = [];
  let lastQuery = '';

  // ---- rows -------------------------------------------------------------------------

  function makeRow(address) {
    const dot = h('span', { class: 'dot', 'aria-hidden': 'true' });
    const name = h('span', { class: 'name' });
    const state = h('span', { class: 'state' });
    const note = h('span', { class: 'note' });
    const badge = h('span', { class: 'badge', 'aria-hidden': 'true' });
    const unreadText = h('span', { class: 'visually-hidden unread-text' });
    const avatar = createAvatar(address);
    const link = h('a', { class: 'contact-open', href: chatHref(address) },
      avatar.element, dot, h('span', { class: 'who' }, name, h('span', { class: 'presence' }, state, note)), badge, unreadText);
    const remove = h('button', { type: 'button', class: 'icon-button contact-remove' },
      h('span', { 'aria-hidden': 'true' }, '×'));
    const add = bindText(h('button', { type: 'button', class: 'secondary small contact-add' }), 'contacts.add_this');
    const li = h('li', { class: 'contact', 'data-address': address }, link, remove, add);
    remove.addEventListener('click', () => removeContact(address));
    add.addEventListener('click', () => addContact({ address }));
    return { li, link, avatar, dot, name, state, note, badge, unreadText, remove, add };
  }

  function updateRow(r, c) {
    const label = c.display_name || c.address;
    r.name.textContent = label;
    r.avatar.setName(c.display_name);
    r.name.title = c.address;
    r.dot.dataset.state = c.state;
    bindText(r.state, `state.${c.state}`);
    r.note.textContent = c.note ? c.note : '';
    r.note.hidden = !c.note;
    r.li.dataset.state = c.state;
    const n = store.unread(c.address);
    r.badge.textContent = n ? String(n) : '';
    r.badge.hidden = !n;
    if (n) bindPlural(r.unreadText, 'contacts.unread', n);
    else r.unreadText.textContent = '';
    r.li.dataset.unread = String(n);
    if (current && current.toLowerCase() === c.address.toLowerCase()) r.link.setAttribute('aria-current', 'page');
    else r.link.removeAttribute('aria-current');
    bindAttr(r.remove, 'aria-label', 'contacts.remove_label', { name: label });
    bindAttr(r.add, 'aria-label', 'contacts.add_label', { name: label });
    r.remove.hidden = !c.kept;
    r.add.hidden = c.kept;
  }

  function place(ul, people) {
    const wanted = people.map((c) => {
      const k = c.address.toLowerCase();
      let r = rows.get(k);
      if (!r) { r = makeRow(c.address); rows.set(k, r); }
      updateRow(r, c);
      return r.li;
    });
    const same = wanted.length === ul.children.length && wanted.every((li, i) => ul.children[i] === li);
    if (same) return;
    const focused = document.activeElement;
    for (const li of wanted) ul.append(li);
    for (const li of [...ul.children]) if (!wanted.includes(li)) li.remove();
    if (focused && focused !== document.activeElement && focused.isConnected) focused.focus();
  }

  function render() {
    const kept = store.kept();
    place(list, kept);
    const rest = store.others();
    place(others, rest);
    others.hidden = othersHeading.hidden = rest.length === 0;
    for (const [k, r] of rows) if (!r.li.isConnected) { r.avatar.drop(); rows.delete(k); }
    if (loaded && kept.length === 0 && !status.dataset.keep) bindText(status, 'contacts.empty');
    else if (!status.dataset.keep) status.textContent = '';
    renderResults();
  }

  function setStatus(build, keep = true) {
    clear(status);
    build(status);
    if (keep) status.dataset.keep = '1'; else delete status.dataset.keep;
  }

  // ---- add and remove -------------------------------------------------------------

  async function addContact(x) {
    const label = x.display_name || store.nameOf(x.address);
    const r = await api.addContact(x.address);
    if (r.status === 204 || r.status === 200 || r.status === 201) {
      store.keep(x);
      onAdded(x.address);
      setStatus((el) => el.append(bindText(h('span'), 'contacts.added', { name: label })));
      announce(t('contacts.added', { name: label }));
      return true;
    }
    const detail = api.problemText(r) ?? (() => t('net.unreachable'));
    setStatus((el) => el.append(bindText(h('span', { class: 'error' }), 'contacts.add_failed', { name: label, detail })));
    return false;
  }

  async function removeContact(address) {
    const c = store.contact(address);
    const label = c?.display_name || address;
    const r = await api.removeContact(address);
    if (r.status === 204 || r.status === 200 || r.status === 404) {
      const snapshot = { address, display_name: c?.display_name, state: c?.state, note: c?.note, local: c?.local };
      store.forget(address);
      const undo = bindText(h('button', { type: 'button', class: 'secondary small', id: 'contacts-undo' }), 'contacts.undo');
      undo.addEventListener('click', async () => { if (await addContact(snapshot)) heading.focus(); });
      setStatus((el) => el.append(bindText(h('span'), 'contacts.removed', { name: label }), ' ', undo));
      undo.focus();
      return;
    }
    const detail = api.problemText(r) ?? (() => t('net.unreachable'));
    setStatus((el) => el.append(bindText(h('span', { class: 'error' }), 'contacts.remove_failed', { name: label, detail })));
  }

  // ---- the search -----------------------------------------------------------------

  let searchTimer = null;
  let searchSeq = 0;

  function renderResults() {
    clear(results);
    const q = lastQuery;
    const items = [...lastResults];
    const looksLikeAddress = /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(q);
    if (looksLikeAddress && !items.some((x) => x.address.toLowerCase() === q.toLowerCase())) {
      items.push({ address: q, display_name: null, typed: true });
    }
    for (const x of items) {
      const known = store.contact(x.address);
      const kept = !!known?.kept;
      const label = x.display_name || x.address;
      let action;
      if (store.isMe(x.address)) action = bindText(h('span', { class: 'in-list' }), 'search.you');
      else if (kept) action = bindText(h('span', { class: 'in-list' }), 'search.in_list');
      else {
        action = bindText(h('button', { type: 'button', class: 'secondary small result-add' }), x.typed ? 'search.add_address' : 'search.add', { address: x.address });
        bindAttr(action, 'aria-label', 'contacts.add_label', { name: label });
        action.addEventListener('click', async () => {
          if (await addContact(x)) searchInput.focus();
        });
      }
      results.append(h('li', { class: 'result', 'data-address': x.address },
        h('span', { class: 'who' }, h('span', { class: 'name' }, label),
          x.display_name ? h('span', { class: 'address' }, x.address) : null,
          x.local === false ? bindText(h('span', { class: 'tag' }), 'contacts.federated') : null),
        action));
    }
  }

  async function search(q) {
    const seq = ++searchSeq;
    lastQuery = q;
    if (!q) { lastResults = []; searchStatus.textContent = ''; renderResults(); return; }
    bindText(searchStatus, 'search.busy');
    const r = await api.searchDirectory(q);
    if (seq !== searchSeq) return;
    if (r.status !== 200) {
      lastResults = [];
      bindText(searchStatus, 'search.failed', { detail: api.problemText(r) ?? (() => t('net.unreachable')) });
      renderResults();
      return;
    }
    lastResults = Array.isArray(r.json?.results) ? r.json.results.filter((x) => typeof x?.address === 'string') : [];
    if (lastResults.length) bindPlural(searchStatus, 'search.results', lastResults.length);
    else bindText(searchStatus, 'search.none', { q });
    renderResults();
  }

  searchInput.addEventListener('input', () => {
    clearTimeout(searchTimer);
    const q = searchInput.value.trim();
    searchTimer = setTimeout(() => search(q), SEARCH_DELAY_MS);
  });
  searchForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    clearTimeout(searchTimer);
    search(searchInput.value.trim());
  });

  store.onChange((what) => { if (what !== 'typing') render(); });

  return {
    element,
    async load() {
      bindText(status, 'contacts.loading');
      delete status.dataset.keep;
      const r = await api.contacts();
      if (r.status !== 200) {
        const detail = api.problemText(r) ?? (() => t('net.unreachable'));
        setStatus((el) => el.append(bindText(h('span', { class: 'error' }), 'contacts.failed', { detail })), false);
        return false;
      }
      loaded = true;
      status.textContent = '';
      store.setContacts(Array.isArray(r.json?.contacts) ? r.json.contacts.filter((x) => typeof x?.address === 'string') : []);
      return true;
    },
    setCurrent(address) { current = address; render(); },
    focus() { heading.focus(); },
    reset() {
      loaded = false;
      current = null;
      lastResults = [];
      lastQuery = '';
      searchInput.value = '';
      searchStatus.textContent = '';
      status.textContent = '';
      delete status.dataset.keep;
      clear(results);
      render();
    },
  };
}
