// The Users page: find a user and set or remove their profile picture.
// Pictures are <img> elements: the session cookie authenticates them, and
// the server answers with the picture it re-encoded (never an upload as it
// came), revalidated by its ETag.
import * as api from './api.js';
import { h } from './dom.js';
import { bindText, t } from './i18n.js';

const PAGE = 50;

function initials(u) {
  const parts = String(u.display_name || u.name).trim().split(/[\s._-]+/).filter(Boolean);
  return ((parts[0]?.[0] ?? '?') + (parts.length > 1 ? parts[parts.length - 1][0] : '')).toUpperCase();
}

export function createUsersPage() {
  const heading = bindText(h('h1', { id: 'users-heading', tabindex: '-1' }), 'users.heading');
  const intro = bindText(h('p', { class: 'intro' }), 'users.intro');
  const search = h('input', { type: 'search', id: 'users-search', autocomplete: 'off' });
  const searchLabel = bindText(h('label', { for: 'users-search' }), 'users.search');
  const status = h('p', { class: 'audit-status', id: 'users-status', role: 'status' });
  const body = h('tbody');
  const headRow = h('tr', {}, ...['picture', 'name', 'display_name', 'actions'].map((c) =>
    bindText(h('th', { scope: 'col', class: `col-${c}` }), `users.${c}`)));
  const table = h('table', { class: 'audit users', id: 'users-table' },
    bindText(h('caption', { class: 'visually-hidden' }), 'users.caption'), h('thead', {}, headRow), body);
  const element = h('section', { class: 'view users-view', id: 'view-users', hidden: true },
    h('div', { class: 'page-head' }, heading, intro),
    h('p', { class: 'users-search' }, searchLabel, ' ', search), status,
    h('div', { class: 'table-scroll' }, table));

  function say(key, vars, error = false) {
    bindText(status, key, vars);
    status.className = error ? 'audit-status error' : 'audit-status';
  }

  function pictureCell(u) {
    if (!u.picture) return h('span', { class: 'avatar', 'aria-hidden': 'true' }, initials(u));
    return h('img', { class: 'avatar', alt: '', width: 40, height: 40,
      src: `../api/v1/users/${encodeURIComponent(u.name)}/picture?v=${encodeURIComponent(u.picture)}` });
  }

  function row(u) {
    const file = h('input', { type: 'file', accept: 'image/jpeg,image/png', id: `picture-file-${u.name}`, class: 'visually-hidden' });
    const upload = h('label', { for: `picture-file-${u.name}`, class: 'button secondary small' }, bindText(h('span'), 'users.upload'));
    const remove = bindText(h('button', { type: 'button', class: 'secondary small picture-remove', hidden: !u.picture }), 'users.remove');
    const tr = h('tr', { 'data-name': u.name },
      h('td', { class: 'col-picture' }, pictureCell(u)),
      h('td', { class: 'col-name' }, h('code', {}, u.name)),
      h('td', { class: 'col-display_name' }, u.display_name ?? ''),
      h('td', { class: 'col-actions' }, file, upload, ' ', remove));
    const replace = (nu) => tr.replaceWith(row(nu));
    file.addEventListener('change', async () => {
      const f = file.files?.[0];
      if (!f) return;
      say('users.uploading', { name: u.name });
      const r = await api.call('PUT', `/users/${encodeURIComponent(u.name)}/picture`, { raw: f, headers: { 'Content-Type': f.type || 'application/octet-stream' } });
      if (r.status !== 200) { say('users.failed', { name: u.name, detail: api.problemText(r) }, true); return; }
      say('users.saved', { name: u.name });
      replace(r.json);
    });
    remove.addEventListener('click', async () => {
      const r = await api.call('DELETE', `/users/${encodeURIComponent(u.name)}/picture`);
      if (r.status !== 200) { say('users.failed', { name: u.name, detail: api.problemText(r) }, true); return; }
      say('users.removed', { name: u.name });
      replace(r.json);
    });
    return tr;
  }

  let timer = null;
  async function load() {
    const q = search.value.trim();
    const r = await api.call('GET', `/users?limit=${PAGE}${q ? `&q=${encodeURIComponent(q)}` : ''}`);
    if (r.status !== 200) {
      if (r.status !== 401) say('users.load_failed', { detail: api.problemText(r) }, true);
      return;
    }
    body.replaceChildren(...r.json.users.map(row));
    table.hidden = r.json.users.length === 0;
    if (!r.json.total) say('users.empty');
    else if (r.json.total > r.json.users.length) say('users.more', { shown: r.json.users.length, total: r.json.total });
    else status.textContent = '';
  }
  search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(load, 250); });

  return {
    element,
    show() { return load(); },
    focus: () => heading.focus(),
  };
}
