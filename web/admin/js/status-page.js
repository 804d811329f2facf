// The Status page (#/status): what runs and what fails, in one place. Each
// block is one API document (GET /api/v1/status, /presence, /retention,
// /federation/status, /push/status); a block whose call fails says so and
// the others still show. Refreshed every 15 s while the page is open, and
// with the Refresh button.
import * as api from './api.js';
import { h } from './dom.js';
import { bindText, language, onLanguageChange, t } from './i18n.js';

const REFRESH_MS = 15000;

const get = (p) => api.call('GET', p);

function formatTime(value) {
  if (!value) return t('status.never');
  const when = new Date(value);
  if (Number.isNaN(when.getTime())) return String(value);
  return new Intl.DateTimeFormat(language() === 'de' ? 'de-DE' : 'en-GB',
    { dateStyle: 'medium', timeStyle: 'medium' }).format(when);
}

const timeEl = (value) => h('time', { datetime: value ?? '' }, formatTime(value));

/** A state as a badge: the word, never only the colour. */
function badge(state) {
  return h('span', { class: `state state-${state}`, 'data-state': state }, t(`status.state.${state}`));
}

function table(id, columns, rows, captionKey) {
  // On a phone each row is a card (admin.css, table.cards): every value
  // under its column's name, which a narrow column would break inside words.
  for (const tr of rows) {
    [...tr.children].forEach((td, i) => { if (columns[i]) td.dataset.label = t(`status.col.${columns[i]}`); });
  }
  return h('div', { class: 'table-scroll' },
    h('table', { class: 'audit status-table cards', id },
      h('caption', { class: 'visually-hidden' }, t(captionKey)),
      h('thead', {}, h('tr', {}, ...columns.map((c) => h('th', { scope: 'col', class: `col-${c}` }, t(`status.col.${c}`))))),
      h('tbody', {}, ...rows)));
}

function facts(pairs) {
  return h('dl', { class: 'status-facts' }, ...pairs.flatMap(([key, value]) => [
    h('dt', {}, t(key)), h('dd', {}, value)]));
}

export function createStatusPage() {
  const heading = bindText(h('h1', { id: 'status-heading', tabindex: '-1' }), 'status.heading');
  const intro = bindText(h('p', { class: 'intro' }), 'status.intro');
  const summary = h('p', { class: 'status-summary', id: 'status-summary', role: 'status' });
  const refresh = bindText(h('button', { type: 'button', class: 'secondary', id: 'status-refresh' }), 'status.refresh');
  const blocks = {};
  for (const name of ['modules', 'warnings', 'clients', 'retention', 'federation', 'push']) {
    blocks[name] = h('section', { class: 'status-block', id: `status-${name}`, 'aria-labelledby': `status-${name}-h` });
  }
  const element = h('section', { class: 'view status-view', id: 'view-status', hidden: true },
    h('div', { class: 'page-head' }, heading, intro),
    h('div', { class: 'status-head' }, summary, refresh),
    ...Object.values(blocks));

  let docs = {};
  let timer = null;
  let runMessage = null;

  function blockHeading(name) {
    return h('h2', { id: `status-${name}-h` }, t(`status.${name}.heading`));
  }

  function failed(name) {
    const r = docs[name];
    if (r && r.status === 200) return null;
    if (!r) return h('p', {}, t('status.loading'));
    return h('p', { class: 'error', role: 'alert' }, t('status.failed', { detail: api.problemText(r) }));
  }

  function renderModules() {
    const b = blocks.modules;
    b.replaceChildren(blockHeading('modules'));
    const f = failed('status');
    if (f) { b.append(f); return; }
    const doc = docs.status.json;
    b.append(table('status-modules-table', ['module', 'state', 'sentence', 'last_error'],
      (doc.modules ?? []).map((m) => h('tr', { 'data-module': m.name },
        h('td', { class: 'col-module' }, h('code', {}, m.name)),
        h('td', { class: 'col-state' }, badge(m.state)),
        h('td', { class: 'col-sentence' }, m.sentence ?? ''),
        h('td', { class: 'col-last_error' }, m.last_error
          ? h('span', {}, m.last_error, ' ', h('span', { class: 'muted' }, '(', timeEl(m.last_error_at), ')'))
          : t('status.none')))),
      'status.modules.heading'));
  }

  function renderWarnings() {
    const b = blocks.warnings;
    b.replaceChildren(blockHeading('warnings'));
    const f = failed('status');
    if (f) { b.append(f); return; }
    const list = docs.status.json.warnings ?? [];
    if (!list.length) { b.append(h('p', { id: 'status-no-warnings' }, t('status.warnings.none'))); return; }
    b.append(h('ul', { class: 'warnings', id: 'status-warning-list' }, ...list.map((w) => h('li', { 'data-key': w.key },
      h('a', { href: `#/settings`, 'data-key': w.key, class: 'warning-key' }, t(`@label:${w.key}`)),
      ' (', h('code', {}, w.key), '): ', w.message))));
  }

  function renderClients() {
    const b = blocks.clients;
    b.replaceChildren(blockHeading('clients'));
    const f = failed('presence');
    if (f) { b.append(f); return; }
    const doc = docs.presence.json;
    const users = doc.users ?? [];
    b.append(h('p', { id: 'status-clients-count' },
      t('status.clients.count', { users: users.length, connections: doc.connections ?? 0 })));
    if (!users.length) return;
    const rows = [];
    for (const u of users) {
      for (const c of u.connections ?? []) {
        rows.push(h('tr', { 'data-user': u.user },
          h('td', { class: 'col-user' }, u.user, h('br'), h('code', {}, u.address)),
          h('td', { class: 'col-presence' }, t(`status.presence.${c.state}`), u.note ? h('span', { class: 'muted' }, ` — ${u.note}`) : ''),
          h('td', { class: 'col-client' }, c.client || '—'),
          h('td', { class: 'col-from' }, h('code', {}, c.address)),
          h('td', { class: 'col-since' }, timeEl(c.connected_at))));
      }
    }
    b.append(table('status-clients-table', ['user', 'presence', 'client', 'from', 'since'], rows, 'status.clients.heading'));
  }

  function renderRetention() {
    const b = blocks.retention;
    b.replaceChildren(blockHeading('retention'));
    const f = failed('retention');
    if (f) { b.append(f); return; }
    const r = docs.retention.json;
    const days = (n) => (n === null || n === undefined ? t('status.retention.keep') : t('status.retention.days', { n }));
    b.append(facts([
      ['status.retention.im', days(r.im_delete_after_days)],
      ['status.retention.journal', days(r.journal_delete_after_days)],
      ['status.retention.last_run', timeEl(r.last_run)],
      ['status.retention.next_run', timeEl(r.next_run)],
      ['status.retention.last_deleted', t('status.retention.counts', r.last_deleted ?? { messages: 0, journal: 0 })],
      ['status.retention.total_deleted', t('status.retention.counts', r.total_deleted ?? { messages: 0, journal: 0 })],
    ]));
    if (r.last_failed) b.append(h('p', { class: 'error' }, t('status.retention.last_failed')));
    const run = h('button', { type: 'button', class: 'secondary', id: 'status-retention-run' }, t('status.retention.run'));
    run.addEventListener('click', async () => {
      run.disabled = true;
      runMessage = { key: 'status.retention.running' };
      renderRetentionMessage();
      const res = await api.call('POST', '/retention/run', { timeoutMs: 120000 });
      if (res.status === 200) runMessage = { key: 'status.retention.done', params: res.json.last_deleted, ok: true };
      else if (res.status === 202) runMessage = { key: 'status.retention.still_running' };
      else runMessage = { key: 'status.failed', params: { detail: api.problemText(res) }, error: true };
      if (res.status === 200 || res.status === 202) docs.retention = { status: 200, json: res.json };
      renderRetention();
    });
    const msg = h('p', { id: 'status-retention-message', role: 'status' });
    b.append(h('div', { class: 'status-actions' }, run), msg);
    renderRetentionMessage();
  }

  function renderRetentionMessage() {
    const msg = blocks.retention.querySelector('#status-retention-message');
    if (!msg) return;
    msg.className = runMessage?.ok ? 'dialog-status ok' : runMessage?.error ? 'dialog-status error' : 'dialog-status';
    msg.textContent = runMessage ? t(runMessage.key, runMessage.params ?? {}) : '';
  }

  function renderFederation() {
    const b = blocks.federation;
    b.replaceChildren(blockHeading('federation'));
    const f = failed('federation');
    if (f) { b.append(f); return; }
    const d = docs.federation.json;
    const state = !d.configured ? 'off' : !d.enabled ? 'off' : d.running ? (d.last_error ? 'warning' : 'ok') : 'failing';
    const sentence = !d.configured ? t('status.federation.not_configured')
      : !d.enabled ? t('status.federation.disabled')
        : d.running ? t('status.federation.running', { listen: d.listen || '—' }) : t('status.federation.not_running');
    b.append(h('p', { id: 'status-federation-state' }, badge(state), ' ', sentence));
    b.append(facts([
      ['status.federation.inbound', t('status.federation.subs', d.inbound ?? { active: 0, pending: 0 })],
      ['status.federation.outbound', t('status.federation.subs', d.outbound ?? { active: 0, pending: 0 })],
      ['status.federation.peers', (d.peers ?? []).length ? (d.peers ?? []).join(', ') : t('status.none')],
      ['status.federation.messages', t('status.federation.message_counts', {
        in: d.counters?.messages_in ?? 0, out: d.counters?.messages_out ?? 0, failed: d.counters?.messages_failed ?? 0 })],
      ['status.last_error', d.last_error ? String(d.last_error) : t('status.none')],
    ]));
  }

  function renderPush() {
    const b = blocks.push;
    b.replaceChildren(blockHeading('push'));
    const f = failed('push');
    if (f) { b.append(f); return; }
    const p = docs.push.json;
    const sum = (o) => Object.values(o ?? {}).reduce((a, v) => a + (Number(v) || 0), 0);
    b.append(h('p', { id: 'status-push-state' }, badge(p.state ?? 'ok'), ' ', p.sentence ?? ''));
    b.append(facts([
      ['status.push.pending', String(p.outbox?.pending ?? 0)],
      ['status.push.sent', String(sum(p.sent))],
      ['status.push.failed', String(sum(p.failed))],
      ['status.last_error', p.last_error ? p.last_error : t('status.none')],
    ]));
  }

  function render() {
    const s = docs.status;
    if (s?.status === 200) {
      summary.replaceChildren(badge(s.json.state),
        ' ', t('status.summary', { version: s.json.version }),
        ' ', t('status.started', { time: formatTime(s.json.started_at) }),
        ' ', t('status.checked', { time: formatTime(s.json.checked_at) }));
    } else if (s) {
      summary.textContent = t('status.failed', { detail: api.problemText(s) });
    }
    renderModules();
    renderWarnings();
    renderClients();
    renderRetention();
    renderFederation();
    renderPush();
  }

  async function load() {
    const [status, presence, retention, federation, push] = await Promise.all([
      get('/status'), get('/presence'), get('/retention'), get('/federation/status'), get('/push/status')]);
    if ([status, presence, retention, federation, push].some((r) => r.status === 401)) return;
    docs = { status, presence, retention, federation, push };
    render();
  }

  function stopTimer() { clearInterval(timer); timer = null; }

  refresh.addEventListener('click', () => load());
  onLanguageChange(() => { if (Object.keys(docs).length) render(); });

  return {
    element,
    show() {
      stopTimer();
      runMessage = null;
      timer = setInterval(() => { if (!element.hidden) load(); else stopTimer(); }, REFRESH_MS);
      return load();
    },
    hide: stopTimer,
    focus: () => heading.focus(),
  };
}
