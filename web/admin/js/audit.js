// The audit log: every settings change, newest first, a page at a time.
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
  return typeof v === 'string' ? v : JSON.stringify(v);
}

export function createAuditPage() {
  const heading = bindText(h('h1', { id: 'audit-heading', tabindex: '-1' }), 'audit.heading');
  const intro = bindText(h('p', { class: 'intro' }), 'audit.intro');
  const status = h('p', { class: 'audit-status', id: 'audit-status', role: 'status' });
  const body = h('tbody');
  const headRow = h('tr', {}, ...['time', 'actor', 'key', 'old', 'new'].map((c) =>
    bindText(h('th', { scope: 'col', class: `col-${c}` }), `audit.${c}`)));
  const table = h('table', { class: 'audit', id: 'audit-table' },
    bindText(h('caption', { class: 'visually-hidden' }), 'audit.caption'), h('thead', {}, headRow), body);
  const range = h('p', { class: 'audit-range', id: 'audit-range' });
  const prev = bindText(h('button', { type: 'button', class: 'secondary', id: 'audit-prev' }), 'audit.prev');
  const next = bindText(h('button', { type: 'button', class: 'secondary', id: 'audit-next' }), 'audit.next');
  const refresh = bindText(h('button', { type: 'button', class: 'secondary', id: 'audit-refresh' }), 'audit.refresh');
  const pager = h('nav', { class: 'pager', 'aria-labelledby': 'audit-pager-label' },
    bindText(h('span', { class: 'visually-hidden', id: 'audit-pager-label' }), 'audit.pages'), prev, range, next, refresh);
  const element = h('section', { class: 'view audit-view', id: 'view-audit', hidden: true },
    h('div', { class: 'page-head' }, heading, intro), status, h('div', { class: 'table-scroll' }, table), pager);

  let offset = 0;
  let page = null;

  function render() {
    body.replaceChildren();
    if (!page) return;
    const fmt = new Intl.DateTimeFormat(language() === 'de' ? 'de-DE' : 'en-GB',
      { dateStyle: 'medium', timeStyle: 'medium' });
    for (const e of page.entries ?? []) {
      const when = new Date(e.time);
      const key = e.key ?? '';
      body.append(h('tr', { 'data-id': e.id },
        h('td', { class: 'col-time' }, h('time', { datetime: e.time }, Number.isNaN(when.getTime()) ? e.time : fmt.format(when))),
        h('td', { class: 'col-actor' }, e.actor ?? ''),
        h('td', { class: 'col-key' }, h('span', { class: 'key-label' }, t(`@label:${key}`)), h('code', {}, key)),
        h('td', { class: 'col-old' }, h('code', {}, valueText(e.old))),
        h('td', { class: 'col-new' }, h('code', {}, valueText(e.new)))));
    }
    const total = page.total ?? 0;
    table.hidden = !(page.entries?.length);
    if (!total) bindText(status, 'audit.empty');
    else status.textContent = '';
    bindText(range, 'audit.range', {
      from: total ? offset + 1 : 0, to: offset + (page.entries?.length ?? 0), total,
    });
    prev.disabled = offset === 0;
    next.disabled = offset + PAGE >= total;
  }

  async function load() {
    bindText(status, 'audit.loading');
    const r = await api.audit(offset, PAGE);
    if (r.status !== 200) {
      if (r.status !== 401) bindText(status, 'audit.failed', { detail: api.problemText(r) });
      return;
    }
    page = r.json;
    render();
  }

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
