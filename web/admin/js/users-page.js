// The Users page (#/users): the directory's users a page at a time, with a
// server-side search, and the dialogs that add, edit, delete and import them
// and show a user's devices and client sessions. The page never holds more
// than one page of users: the search and the paging are the server's
// (GET /api/v1/users?q=&offset=&limit=), so a directory of a million users
// costs the browser what one of fifty does.
import * as api from './api.js';
import { h } from './dom.js';
import { bindAttr, bindPlural, bindText, language, onLanguageChange, t, unbindText } from './i18n.js';
import { createImportDialog } from './users-import.js';

const PAGE = 50;
const SEARCH_DELAY_MS = 300;
const SLOW_MS = 400;

export function formatTime(value) {
  if (!value) return '—';
  const when = new Date(value);
  if (Number.isNaN(when.getTime())) return String(value);
  return new Intl.DateTimeFormat(language() === 'de' ? 'de-DE' : 'en-GB',
    { dateStyle: 'medium', timeStyle: 'short' }).format(when);
}

const timeEl = (value) => h('time', { datetime: value ?? '' }, formatTime(value));

/** The state as a word; the colour only repeats it. */
const stateBadge = (enabled) => h('span', { class: `state ${enabled ? 'state-ok' : 'state-off'}` },
  t(enabled ? 'users.enabled' : 'users.disabled'));

/* The fields of the add/edit dialog, by the API's key. */
const FIELDS = ['name', 'display_name', 'windows_account', 'password'];
const fieldId = (key) => `user-${key.replace(/_/g, '-')}`;

function createUserDialog({ onSaved }) {
  const title = h('h2', { id: 'user-dialog-title' });
  const inputs = {};
  const errors = {};
  const hints = {};
  const fields = FIELDS.map((key) => {
    const id = fieldId(key);
    inputs[key] = h('input', {
      type: key === 'password' ? 'password' : 'text', id, name: key,
      autocomplete: key === 'password' ? 'new-password' : 'off', spellcheck: 'false', autocapitalize: 'off',
    });
    errors[key] = h('p', { class: 'error', id: `${id}-error`, hidden: true });
    hints[key] = h('p', { class: 'help', id: `${id}-help` });
    return h('div', { class: 'field', id: `${id}-field` },
      bindText(h('label', { for: id }), `users.field.${key}`), inputs[key], hints[key], errors[key]);
  });
  const enabled = h('input', { type: 'checkbox', id: 'user-enabled', role: 'switch' });
  const enabledHelp = bindText(h('p', { class: 'help', id: 'user-enabled-help' }), 'users.enabled_help');
  enabled.setAttribute('aria-describedby', 'user-enabled-help');
  const enabledField = h('div', { class: 'field' },
    h('div', { class: 'check' }, enabled, bindText(h('label', { for: 'user-enabled', class: 'field-label' }), 'users.field.enabled')),
    enabledHelp);
  const status = h('p', { class: 'dialog-status', id: 'user-dialog-status', role: 'status', 'aria-live': 'polite' });
  const save = h('button', { type: 'submit', class: 'primary', id: 'user-save' });
  const cancel = bindText(h('button', { type: 'button', class: 'secondary', id: 'user-cancel' }), 'users.cancel');
  const form = h('form', { novalidate: true }, ...fields, enabledField, status,
    h('div', { class: 'dialog-actions buttons' }, cancel, save));
  const element = h('dialog', { id: 'user-dialog', class: 'user-dialog', 'aria-labelledby': 'user-dialog-title' }, title, form);

  let editing = null; // the user document being edited; null: a new user
  let opener = null;
  let busy = false;

  function clearErrors() {
    for (const key of FIELDS) {
      errors[key].hidden = true;
      errors[key].textContent = '';
      inputs[key].removeAttribute('aria-invalid');
      describeField(key);
    }
    status.className = 'dialog-status';
    unbindText(status);
  }

  function describeField(key) {
    const ids = [hints[key], errors[key]].filter((e) => !e.hidden && e.textContent).map((e) => e.id);
    if (ids.length) inputs[key].setAttribute('aria-describedby', ids.join(' '));
    else inputs[key].removeAttribute('aria-describedby');
  }

  /** The problem's errors beside their fields; the rest in the status line. */
  function showProblem(r) {
    const list = r.json?.errors ?? [];
    let first = null;
    const other = [];
    for (const e of list) {
      const key = FIELDS.includes(e.key) ? e.key : null;
      if (!key || (key === 'name' && editing)) { other.push(e.message); continue; }
      errors[key].textContent = errors[key].textContent ? `${errors[key].textContent} ${e.message}` : e.message;
      errors[key].hidden = false;
      inputs[key].setAttribute('aria-invalid', 'true');
      describeField(key);
      first ??= inputs[key];
    }
    status.className = 'dialog-status error';
    const head = api.problemText(r);
    bindText(status, first ? 'users.save_invalid' : 'users.save_failed',
      { detail: [head, ...other.filter((m) => m && !head.includes(m))].join(' ') });
    (first ?? save).focus();
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (busy) return;
    clearErrors();
    const v = Object.fromEntries(FIELDS.map((k) => [k, inputs[k].value]));
    let r;
    busy = true;
    status.className = 'dialog-status info';
    bindText(status, 'users.saving');
    if (!editing) {
      const doc = { name: v.name.trim(), enabled: enabled.checked };
      if (v.display_name.trim()) doc.display_name = v.display_name.trim();
      if (v.windows_account.trim()) doc.windows_account = v.windows_account.trim();
      if (v.password) doc.password = v.password;
      r = await api.users.create(doc);
    } else {
      // Only what changed: a PATCH of the password or of enabled=false
      // signs the user out everywhere, so neither is sent unasked.
      const changes = {};
      const display = v.display_name.trim();
      if (display !== (editing.display_name ?? '')) changes.display_name = display || null;
      const account = v.windows_account.trim();
      if (account !== (editing.windows_account ?? '')) changes.windows_account = account || null;
      if (v.password) changes.password = v.password;
      if (enabled.checked !== editing.enabled) changes.enabled = enabled.checked;
      if (!Object.keys(changes).length) {
        busy = false;
        bindText(status, 'users.no_changes');
        return;
      }
      r = await api.users.update(editing.name, changes);
    }
    busy = false;
    if (r.status === 200 || r.status === 201) {
      const was = editing;
      element.close();
      onSaved(r.json, was);
    } else if (r.status !== 401) {
      showProblem(r);
    }
  });
  cancel.addEventListener('click', () => element.close());
  element.addEventListener('close', () => { if (opener?.isConnected) opener.focus(); });

  return {
    element,
    open(user, from) {
      editing = user;
      opener = from;
      clearErrors();
      bindText(title, user ? 'users.edit_title' : 'users.add_title', { name: user?.name ?? '' });
      bindText(save, user ? 'users.save' : 'users.add_submit');
      inputs.name.value = user?.name ?? '';
      inputs.name.readOnly = !!user;
      inputs.display_name.value = user?.display_name ?? '';
      inputs.windows_account.value = user?.windows_account ?? '';
      inputs.password.value = '';
      enabled.checked = user ? user.enabled : true;
      bindText(hints.name, user ? 'users.hint.name_fixed' : 'users.hint.name');
      bindText(hints.windows_account, 'users.hint.windows_account');
      bindText(hints.password, user ? 'users.hint.password_reset' : 'users.hint.password');
      hints.display_name.hidden = true;
      for (const key of FIELDS) describeField(key);
      element.showModal();
      (user ? inputs.display_name : inputs.name).focus();
    },
  };
}

function createDeleteDialog({ onDeleted }) {
  const title = bindText(h('h2', { id: 'user-delete-title' }), 'users.delete_title');
  const question = h('p', { id: 'user-delete-question' });
  const status = h('p', { class: 'dialog-status', id: 'user-delete-status', role: 'status', 'aria-live': 'polite' });
  const confirm = bindText(h('button', { type: 'button', class: 'danger', id: 'user-delete-confirm' }), 'users.delete_confirm');
  const cancel = bindText(h('button', { type: 'button', class: 'secondary', id: 'user-delete-cancel' }), 'users.cancel');
  const element = h('dialog', { id: 'user-delete-dialog', role: 'alertdialog', 'aria-labelledby': 'user-delete-title', 'aria-describedby': 'user-delete-question' },
    title, question, status, h('div', { class: 'dialog-actions buttons' }, cancel, confirm));
  let user = null;
  let opener = null;
  confirm.addEventListener('click', async () => {
    if (!user || confirm.disabled) return;
    confirm.disabled = true;
    bindText(status, 'users.deleting');
    const r = await api.users.remove(user.name);
    confirm.disabled = false;
    if (r.status === 204 || r.status === 404) {
      const gone = user;
      opener = null;
      element.close();
      onDeleted(gone);
    } else if (r.status !== 401) {
      status.className = 'dialog-status error';
      bindText(status, 'users.delete_failed', { detail: api.problemText(r) });
    }
  });
  cancel.addEventListener('click', () => element.close());
  element.addEventListener('close', () => { if (opener?.isConnected) opener.focus(); });
  return {
    element,
    open(u, from) {
      user = u;
      opener = from;
      status.className = 'dialog-status';
      unbindText(status);
      bindText(question, 'users.delete_question', { name: u.name, login: u.login });
      element.showModal();
      // The safe choice has the focus: Enter does not delete.
      cancel.focus();
    },
  };
}

function createDetailDialog({ onChanged, onEdit }) {
  const title = h('h2', { id: 'user-detail-title' });
  const facts = h('dl', { class: 'status-facts user-facts', id: 'user-detail-facts' });
  const devices = h('section', { class: 'user-clients', id: 'user-devices', 'aria-labelledby': 'user-devices-h' });
  const sessions = h('section', { class: 'user-clients', id: 'user-sessions', 'aria-labelledby': 'user-sessions-h' });
  const status = h('p', { class: 'dialog-status', id: 'user-detail-status', role: 'status', 'aria-live': 'polite' });
  const signOut = bindText(h('button', { type: 'button', class: 'danger', id: 'user-signout' }), 'users.sign_out');
  const signOutHelp = bindText(h('p', { class: 'help', id: 'user-signout-help' }), 'users.sign_out_help');
  signOut.setAttribute('aria-describedby', 'user-signout-help');
  const edit = bindText(h('button', { type: 'button', class: 'secondary', id: 'user-detail-edit' }), 'users.edit');
  const close = bindText(h('button', { type: 'button', class: 'secondary', id: 'user-detail-close' }), 'users.close');
  const element = h('dialog', { id: 'user-detail-dialog', class: 'user-dialog wide', 'aria-labelledby': 'user-detail-title' },
    title, facts, devices, sessions, h('div', { class: 'signout-box' }, signOut, signOutHelp), status,
    h('div', { class: 'dialog-actions buttons' }, edit, close));
  let user = null;
  let opener = null;

  const yesNo = (b) => t(b ? 'users.yes' : 'users.no');

  function clientTable(id, columns, rows) {
    return h('div', { class: 'table-scroll' },
      h('table', { class: 'audit users-clients', id },
        h('thead', {}, h('tr', {}, ...columns.map((c) => h('th', { scope: 'col' }, t(`users.col.${c}`))))),
        h('tbody', {}, ...rows.map((cells) => h('tr', {}, ...cells.map((c, i) =>
          h('td', { 'data-label': t(`users.col.${columns[i]}`) }, h('span', {}, c))))))));
  }

  function render() {
    if (!user) return;
    title.textContent = t('users.detail_title', { name: user.display_name || user.name });
    facts.replaceChildren(...[
      ['users.field.name', h('code', {}, user.name)],
      ['users.login', h('code', {}, user.login)],
      ['users.field.display_name', user.display_name ?? '—'],
      ['users.field.windows_account', user.windows_account ? h('code', {}, user.windows_account) : '—'],
      ['users.col.state', stateBadge(user.enabled)],
      ['users.has_password', yesNo(user.has_password)],
      ['users.created', timeEl(user.created_at)],
      ['users.updated', timeEl(user.updated_at)],
    ].flatMap(([k, v]) => [h('dt', {}, t(k)), h('dd', {}, v)]));
    const devs = user.devices ?? [];
    devices.replaceChildren(h('h3', { id: 'user-devices-h' }, t('users.devices_heading')),
      devs.length
        ? clientTable('user-devices-table', ['device', 'platform', 'login_used', 'push', 'registered'],
          devs.map((d) => [h('code', {}, d.id), d.platform, h('code', {}, d.login),
            yesNo(d.push), [timeEl(d.created_at), d.setup_again ? h('span', { class: 'muted' }, ` — ${t('users.setup_again')}`) : '']]))
        : h('p', { class: 'muted', id: 'user-devices-none' }, t('users.devices_none')));
    const sess = user.sessions ?? [];
    sessions.replaceChildren(h('h3', { id: 'user-sessions-h' }, t('users.sessions_heading')),
      sess.length
        ? clientTable('user-sessions-table', ['client', 'signed_in', 'expires'],
          sess.map((s) => [s.device ? [s.platform || t('users.mobile'), ' ', h('code', {}, s.device)] : t('users.desktop'),
            timeEl(s.created), timeEl(s.expires)]))
        : h('p', { class: 'muted', id: 'user-sessions-none' }, t('users.sessions_none')));
  }

  async function load(name) {
    const r = await api.users.get(name);
    if (r.status === 200) { user = r.json; render(); return true; }
    if (r.status !== 401) {
      status.className = 'dialog-status error';
      bindText(status, 'users.load_failed', { detail: api.problemText(r) });
    }
    return false;
  }

  signOut.addEventListener('click', async () => {
    if (!user || signOut.disabled) return;
    signOut.disabled = true;
    status.className = 'dialog-status info';
    bindText(status, 'users.signing_out');
    const r = await api.users.signOut(user.name);
    signOut.disabled = false;
    if (r.status === 200) {
      await load(user.name);
      status.className = 'dialog-status ok';
      bindPlural(status, 'users.signed_out', r.json?.revoked_tokens ?? 0, { name: user.name });
      onChanged();
    } else if (r.status !== 401) {
      status.className = 'dialog-status error';
      bindText(status, 'users.sign_out_failed', { detail: api.problemText(r) });
    }
  });
  edit.addEventListener('click', () => {
    const u = user;
    const back = opener;
    opener = null;
    element.close();
    onEdit(u, back);
  });
  close.addEventListener('click', () => element.close());
  element.addEventListener('close', () => { if (opener?.isConnected) opener.focus(); });
  onLanguageChange(render);

  return {
    element,
    async open(name, from) {
      opener = from;
      user = null;
      status.className = 'dialog-status';
      unbindText(status);
      title.textContent = name;
      facts.replaceChildren();
      devices.replaceChildren();
      sessions.replaceChildren();
      element.showModal();
      close.focus();
      await load(name);
    },
  };
}

/** Two letters for a user without a picture. */
function initials(u) {
  const parts = String(u.display_name || u.name).trim().split(/[\s._-]+/).filter(Boolean);
  return ((parts[0]?.[0] ?? '?') + (parts.length > 1 ? parts[parts.length - 1][0] : '')).toUpperCase();
}

/** The picture as an <img> (the session cookie authenticates it; the server
 * answers with the picture it re-encoded, revalidated by its ETag), or the
 * initials. */
function avatar(u) {
  if (!u.picture) return h('span', { class: 'avatar', 'aria-hidden': 'true' }, initials(u));
  return h('img', { class: 'avatar', alt: '', width: 40, height: 40,
    src: `../api/v1/users/${encodeURIComponent(u.name)}/picture?v=${encodeURIComponent(u.picture)}` });
}

export function createUsersPage() {
  const heading = bindText(h('h1', { id: 'users-heading', tabindex: '-1' }), 'users.heading');
  const intro = bindText(h('p', { class: 'intro' }), 'users.intro');
  const search = h('input', { type: 'search', id: 'users-search', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off', 'aria-describedby': 'users-search-help' });
  const searchHelp = bindText(h('p', { class: 'help', id: 'users-search-help' }), 'users.search_help');
  const addBtn = bindText(h('button', { type: 'button', class: 'primary', id: 'users-add' }), 'users.add');
  const importBtn = bindText(h('button', { type: 'button', class: 'secondary', id: 'users-import' }), 'users.import');
  const notice = h('p', { class: 'notice users-notice', id: 'users-notice', role: 'status', 'aria-live': 'polite' });
  const status = h('p', { class: 'users-status', id: 'users-status', role: 'status', 'aria-live': 'polite' });
  const body = h('tbody');
  const COLUMNS = ['picture', 'name', 'display_name', 'windows_account', 'state', 'actions'];
  const headRow = h('tr', {}, ...COLUMNS.map((c) => bindText(h('th', { scope: 'col', class: `col-${c}` }), `users.col.${c}`)));
  const table = h('table', { class: 'audit users-table users', id: 'users-table' },
    bindText(h('caption', { class: 'visually-hidden' }), 'users.caption'), h('thead', {}, headRow), body);
  const range = h('p', { class: 'audit-range', id: 'users-range' });
  const prev = bindText(h('button', { type: 'button', class: 'secondary', id: 'users-prev' }), 'users.prev');
  const next = bindText(h('button', { type: 'button', class: 'secondary', id: 'users-next' }), 'users.next');
  const pager = h('nav', { class: 'pager', 'aria-labelledby': 'users-pager-label' },
    bindText(h('span', { class: 'visually-hidden', id: 'users-pager-label' }), 'users.pages'), prev, range, next);

  const userDialog = createUserDialog({ onSaved: saved });
  const deleteDialog = createDeleteDialog({ onDeleted: deleted });
  const detailDialog = createDetailDialog({ onChanged: () => load(), onEdit: (u, from) => userDialog.open(u, from) });
  const importDialog = createImportDialog({ onImported: imported });

  const element = h('section', { class: 'view users-view', id: 'view-users', hidden: true },
    h('div', { class: 'page-head' }, heading, intro),
    h('div', { class: 'users-toolbar' },
      h('div', { class: 'users-search' }, bindText(h('label', { for: 'users-search' }), 'users.search'), search, searchHelp),
      h('div', { class: 'buttons' }, addBtn, importBtn)),
    notice, status, h('div', { class: 'table-scroll users-scroll' }, table), pager,
    userDialog.element, deleteDialog.element, detailDialog.element, importDialog.element);

  let offset = 0;
  let query = '';
  let page = null;
  let seq = 0; // the newest request: older answers are dropped
  let timer = null;

  function say(key, args) {
    if (key) bindText(notice, key, args);
    else unbindText(notice);
  }

  function actionButton(key, id, user, onclick) {
    const b = h('button', { type: 'button', class: 'secondary small', id, onclick: (ev) => onclick(user, ev.currentTarget) }, t(`users.${key}`));
    b.setAttribute('aria-label', t(`users.${key}_label`, { name: user.name }));
    return b;
  }

  /** Upload (a file input behind its label) and remove, for one user. */
  function pictureControls(u, slug) {
    const file = h('input', { type: 'file', accept: 'image/jpeg,image/png', id: `picture-file-${u.name}`, class: 'visually-hidden' });
    file.setAttribute('aria-label', t('users.picture_upload_label', { name: u.name }));
    const upload = h('label', { for: `picture-file-${u.name}`, class: 'button secondary small' }, t('users.picture_upload'));
    const remove = actionButton('picture_remove', `picture-remove-${slug}`, u, async (user) => {
      const r = await api.call('DELETE', `/users/${encodeURIComponent(user.name)}/picture`);
      if (r.status !== 200) { say('users.picture_failed', { name: user.name, detail: api.problemText(r) }); return; }
      say('users.picture_removed', { name: user.name });
      load();
    });
    remove.classList.add('picture-remove');
    remove.hidden = !u.picture;
    file.addEventListener('change', async () => {
      const f = file.files?.[0];
      if (!f) return;
      say('users.picture_uploading', { name: u.name });
      const r = await api.call('PUT', `/users/${encodeURIComponent(u.name)}/picture`,
        { raw: f, contentType: f.type || 'application/octet-stream' });
      if (r.status !== 200) { say('users.picture_failed', { name: u.name, detail: api.problemText(r) }); return; }
      say('users.picture_saved', { name: u.name });
      load();
    });
    return [file, upload, remove];
  }

  function render() {
    body.replaceChildren();
    if (!page) return;
    const list = page.users ?? [];
    for (const u of list) {
      const slug = u.name.replace(/[^a-z0-9_-]/g, '_');
      body.append(h('tr', { 'data-name': u.name },
        h('td', { class: 'col-picture', 'data-label': t('users.col.picture') }, avatar(u)),
        h('td', { class: 'col-name', 'data-label': t('users.col.name') },
          h('div', {}, h('span', { class: 'user-name' }, u.name), h('code', { class: 'user-login' }, u.login))),
        h('td', { class: 'col-display_name', 'data-label': t('users.col.display_name') }, u.display_name || null),
        h('td', { class: 'col-windows_account', 'data-label': t('users.col.windows_account') }, u.windows_account ? h('code', {}, u.windows_account) : null),
        h('td', { class: 'col-state', 'data-label': t('users.col.state') }, stateBadge(u.enabled)),
        h('td', { class: 'col-actions' }, h('div', { class: 'row-actions' },
          actionButton('details', `user-details-${slug}`, u, (user, from) => detailDialog.open(user.name, from)),
          actionButton('edit', `user-edit-${slug}`, u, (user, from) => userDialog.open(user, from)),
          actionButton('delete', `user-delete-${slug}`, u, (user, from) => deleteDialog.open(user, from)),
          ...pictureControls(u, slug)))));
    }
    const total = page.total ?? 0;
    table.hidden = !list.length;
    if (!total) bindText(status, query ? 'users.no_match' : 'users.empty', { q: query });
    else bindPlural(status, query ? 'users.found' : 'users.count', total, { q: query });
    if (total) bindText(range, 'users.range', { from: offset + 1, to: offset + list.length, total });
    else unbindText(range);
    prev.disabled = offset === 0;
    next.disabled = offset + PAGE >= total;
    pager.hidden = total <= PAGE && offset === 0;
  }

  async function load() {
    const mine = ++seq;
    element.setAttribute('aria-busy', 'true');
    // A search of a large directory scans it on the server (see
    // docs/admin-page.md): say so when the answer is not there at once.
    const slow = setTimeout(() => {
      if (mine === seq) bindText(status, query ? 'users.searching' : 'users.loading', { q: query });
    }, SLOW_MS);
    const r = await api.users.list(query, offset, PAGE);
    clearTimeout(slow);
    if (mine !== seq) return; // a newer search or page is under way
    element.removeAttribute('aria-busy');
    if (r.status !== 200) {
      if (r.status !== 401) bindText(status, 'users.load_failed', { detail: api.problemText(r) });
      return;
    }
    // A page beyond the end (the last users deleted): the last page there is.
    if (!r.json.users?.length && offset > 0 && r.json.total > 0) {
      offset = Math.max(0, Math.floor((r.json.total - 1) / PAGE) * PAGE);
      return load();
    }
    page = r.json;
    render();
  }

  function saved(user, was) {
    if (was) say(user.enabled === false && was.enabled ? 'users.disabled_done' : 'users.saved', { name: user.name });
    else say('users.added', { name: user.name });
    load();
  }
  function deleted(user) {
    say('users.deleted', { name: user.name });
    search.focus();
    load();
  }
  function imported(n) {
    bindPlural(notice, 'users.imported', n);
    offset = 0;
    load();
  }

  search.addEventListener('input', () => {
    clearTimeout(timer);
    // Debounced: a fast typist sends one search, not one per key.
    timer = setTimeout(() => {
      const q = search.value.trim();
      if (q === query) return;
      query = q;
      offset = 0;
      load();
    }, SEARCH_DELAY_MS);
  });
  search.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Enter') return;
    ev.preventDefault();
    clearTimeout(timer);
    query = search.value.trim();
    offset = 0;
    load();
  });
  prev.addEventListener('click', () => { offset = Math.max(0, offset - PAGE); load(); });
  next.addEventListener('click', () => { offset += PAGE; load(); });
  addBtn.addEventListener('click', (ev) => userDialog.open(null, ev.currentTarget));
  importBtn.addEventListener('click', (ev) => importDialog.open(ev.currentTarget));
  bindAttr(search, 'placeholder', 'users.search_placeholder');
  onLanguageChange(render);

  return {
    element,
    show() { say(null); return load(); },
    focus: () => heading.focus(),
  };
}
