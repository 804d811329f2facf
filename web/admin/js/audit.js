// The audit log: every admin action, newest first, a page at a time, filtered
// by what GET /api/v1/audit filters (actor, key, action, time range).
import * as api from './api.js';
import { h } from './dom.js';
import { bindText, language, onLanguageChange, t } from './i18n.js';

const PAGE = 20;

function valueText(v) {
  // The log may hold the value itself or its JSON text.
  if (typeof v === 'string') {
    try { v = JSON.parse(v); } catch { return v === '' ? t('value.blank') : v; }
  }
  if (v === null || v === undefined) return t('value.default');
  if (v === '') return t('value.blank');
  if (typeof v === 'object' && !Array.isArray(v) && 'set' in v) return t('value.hidden');
  // Spaces between the parts: a long value wraps there, not inside a word.
  return typeof v === 'string' ? v : JSON.stringify(v, null, 1).replace(/\n\s*/g, ' ');
}

// The actions the server writes (src/store/store.h), offered in the filter.
const ACTIONS = ['setting', 'domain.change', 'user.add', 'user.update', 'user.rename', 'user.delete',
  'user.import', 'user.sign_out', 'admin.add', 'admin.enable', 'admin.disable', 'admin.remove',
  'admin.password', 'admin.password_failed', 'admin.reset_password', 'admin.login', 'admin.login_failed'];

/** "2026-12-02T14:05" from a datetime-local field, as RFC 3339 with this
 * browser's offset ("2026-12-02T14:05:00+01:00"): the API wants the zone. */
export function localToRfc3339(v) {
  const d = new Date(v);
  if (!v || Number.isNaN(d.getTime())) return '';
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const pad = (n) => String(Math.trunc(Math.abs(n))).padStart(2, '0');
  return `${v.length === 16 ? `${v}:00` : v}${sign}${pad(off / 60)}:${pad(off % 60)}`;
}

/** The browser's zone, said once beside the time filters ("Europe/Berlin, UTC+01:00"). */
function zoneText() {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone ?? '';
  const off = -new Date().getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const hh = String(Math.trunc(Math.abs(off) / 60)).padStart(2, '0');
  const mm = String(Math.abs(off) % 60).padStart(2, '0');
  return `${zone ? `${zone}, ` : ''}UTC${sign}${hh}:${mm}`;
}

export function createAuditPage() {
  const heading = bindText(h('h1', { id: 'audit-heading', tabindex: '-1' }), 'audit.heading');
  const intro = bindText(h('p', { class: 'intro' }), 'audit.intro');
  const status = h('p', { class: 'audit-status', id: 'audit-status', role: 'status' });

  // ---- filters: what GET /api/v1/audit filters by --------------------------------
  const filterField = (name, input, hintKey) => {
    input.id = `audit-filter-${name}`;
    input.name = name;
    const label = bindText(h('label', { for: input.id }), `audit.filter.${name}`);
    const hint = hintKey ? bindText(h('span', { class: 'help', id: `${input.id}-hint` }), hintKey) : null;
    if (hint) input.setAttribute('aria-describedby', hint.id);
    return { input, el: h('div', { class: `audit-filter audit-filter-${name}` }, label, input, ...(hint ? [hint] : [])) };
  };
  const actor = filterField('actor', h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false' }));
  const key = filterField('key', h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false' }), 'audit.filter.key_hint');
  const actionList = h('datalist', { id: 'audit-actions' }, ...ACTIONS.map((a) => h('option', { value: a })));
  const action = filterField('action', h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', list: 'audit-actions' }));
  const since = filterField('since', h('input', { type: 'datetime-local', step: 1 }));
  const until = filterField('until', h('input', { type: 'datetime-local', step: 1 }));
  const zone = h('p', { class: 'help audit-zone', id: 'audit-zone' });
  const apply = bindText(h('button', { type: 'submit', class: 'primary', id: 'audit-apply' }), 'audit.filter.apply');
  const clear = bindText(h('button', { type: 'button', class: 'secondary', id: 'audit-clear' }), 'audit.filter.clear');
  const filters = h('form', { class: 'audit-filters', id: 'audit-filters', role: 'search', 'aria-labelledby': 'audit-filters-heading' },
    bindText(h('h2', { class: 'visually-hidden', id: 'audit-filters-heading' }), 'audit.filter.heading'),
    h('div', { class: 'audit-filter-fields' }, actor.el, key.el, action.el, since.el, until.el, actionList),
    zone, h('div', { class: 'buttons' }, apply, clear));

  const body = h('tbody');
  const COLS = ['time', 'actor', 'action', 'key', 'old', 'new'];
  const headRow = h('tr', {}, ...COLS.map((c) =>
    bindText(h('th', { scope: 'col', class: `col-${c}` }), `audit.${c}`)));
  const table = h('table', { class: 'audit cards', id: 'audit-table' },
    bindText(h('caption', { class: 'visually-hidden' }), 'audit.caption'), h('thead', {}, headRow), body);
  const range = h('p', { class: 'audit-range', id: 'audit-range' });
  const prev = bindText(h('button', { type: 'button', class: 'secondary', id: 'audit-prev' }), 'audit.prev');
  const next = bindText(h('button', { type: 'button', class: 'secondary', id: 'audit-next' }), 'audit.next');
  const refresh = bindText(h('button', { type: 'button', class: 'secondary', id: 'audit-refresh' }), 'audit.refresh');
  const pager = h('nav', { class: 'pager', 'aria-labelledby': 'audit-pager-label' },
    bindText(h('span', { class: 'visually-hidden', id: 'audit-pager-label' }), 'audit.pages'), prev, range, next, refresh);
  const element = h('section', { class: 'view audit-view', id: 'view-audit', hidden: true },
    h('div', { class: 'page-head' }, heading, intro), filters, status, h('div', { class: 'table-scroll' }, table), pager);

  let offset = 0;
  let page = null;
  let query = {};

  function render() {
    body.replaceChildren();
    zone.textContent = t('audit.filter.zone', { zone: zoneText() });
    if (!page) return;
    // timeStyle long names the zone ("14:05:03 CET"): a time without one is ambiguous.
    const fmt = new Intl.DateTimeFormat(language() === 'de' ? 'de-DE' : 'en-GB',
      { dateStyle: 'medium', timeStyle: 'long' });
    for (const e of page.entries ?? []) {
      const when = new Date(e.time);
      const k = e.key ?? '';
      const isSetting = (e.action ?? 'setting') === 'setting';
      // The column names, for the cards a phone shows instead of the table.
      const td = (c, ...kids) => h('td', { class: `col-${c}`, 'data-label': t(`audit.${c}`) }, ...kids);
      body.append(h('tr', { 'data-id': e.id },
        td('time', h('time', { datetime: e.time, title: e.time }, Number.isNaN(when.getTime()) ? e.time : fmt.format(when))),
        td('actor', e.actor ?? ''),
        td('action', h('code', {}, e.action ?? 'setting')),
        td('key', ...(isSetting ? [h('span', { class: 'key-label' }, t(`@label:${k}`))] : []), h('code', {}, k)),
        td('old', h('code', {}, valueText(e.old))),
        td('new', h('code', {}, valueText(e.new)))));
    }
    const total = page.total ?? 0;
    table.hidden = !(page.entries?.length);
    const filtered = Object.keys(query).length > 0;
    if (!total) bindText(status, filtered ? 'audit.none_match' : 'audit.empty');
    else status.textContent = '';
    bindText(range, 'audit.range', {
      from: total ? offset + 1 : 0, to: offset + (page.entries?.length ?? 0), total,
    });
    prev.disabled = offset === 0;
    next.disabled = offset + PAGE >= total;
  }

  async function load() {
    bindText(status, 'audit.loading');
    const r = await api.audit(offset, PAGE, query);
    if (r.status !== 200) {
      if (r.status !== 401) bindText(status, 'audit.failed', { detail: api.problemText(r) });
      return;
    }
    page = r.json;
    render();
  }

  function readFilters() {
    const q = {};
    for (const [name, f] of [['actor', actor], ['key', key], ['action', action]]) {
      const v = f.input.value.trim();
      if (v) q[name] = v;
    }
    for (const [name, f] of [['since', since], ['until', until]]) {
      const v = localToRfc3339(f.input.value);
      if (v) q[name] = v;
    }
    return q;
  }

  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    query = readFilters();
    offset = 0;
    load();
  });
  clear.addEventListener('click', () => {
    for (const f of [actor, key, action, since, until]) f.input.value = '';
    query = {};
    offset = 0;
    load();
  });
  prev.addEventListener('click', () => { offset = Math.max(0, offset - PAGE); load(); });
  next.addEventListener('click', () => { offset += PAGE; load(); });
  refresh.addEventListener('click', () => load());
  onLanguageChange(render);

  return {
    element,
    show() { offset = 0; return load(); },
    focus: () => heading.focus(),
  };
}
