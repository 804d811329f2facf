// The journal: chats, calls and meetings, newest first, paged back with
// "load older entries" (before = the id of the oldest entry shown).
import * as api from './api.js';
import { clear, h } from './dom.js';
import { bindPlural, bindText, formatDuration, formatFull, formatTime, onLanguageChange, t } from './i18n.js';
import { chatHref } from './contacts.js';

const PAGE = 50;

export function createJournalView({ store }) {
  const heading = bindText(h('h2', { id: 'journal-heading', tabindex: '-1' }), 'journal.heading');
  const intro = bindText(h('p', { class: 'intro' }), 'journal.intro');
  const status = h('p', { class: 'status', id: 'journal-status', role: 'status' });
  const list = h('ol', { class: 'journal', id: 'journal-list', 'aria-labelledby': 'journal-heading' });
  const more = bindText(h('button', { type: 'button', class: 'secondary', id: 'journal-more', hidden: true }), 'journal.more');
  const element = h('section', { class: 'view journal-view', id: 'view-journal', 'aria-labelledby': 'journal-heading', hidden: true },
    h('div', { class: 'journal-scroll' }, heading, intro, list, status, more));

  let entries = [];
  let hasMore = false;
  let loaded = false;
  let busy = false;

  function kindText(e) {
    if (e.kind === 'call') {
      if (e.direction === 'in' && e.answered === false) return `${t('journal.call')}, ${t('journal.in')}, ${t('journal.missed')}`;
      const parts = [t('journal.call'), t(e.direction === 'in' ? 'journal.in' : 'journal.out')];
      if (e.answered === false) parts.push(t('journal.not_answered'));
      return parts.join(', ');
    }
    if (e.kind === 'meeting') return t('journal.meeting');
    return `${t('journal.chat')}, ${t(e.direction === 'in' ? 'journal.in' : 'journal.out')}`;
  }

  function row(e) {
    const name = store.nameOf(e.peer);
    const details = h('span', { class: 'details' });
    if (e.kind === 'chat' && Number.isFinite(Number(e.messages))) details.append(bindPlural(h('span'), 'journal.messages', Number(e.messages)));
    if (e.duration_s !== undefined && e.duration_s !== null && e.kind !== 'chat') {
      details.append(bindText(h('span'), 'journal.duration', { d: formatDuration(e.duration_s) }));
    }
    const peer = e.kind === 'chat' || /@/.test(String(e.peer ?? ''))
      ? h('a', { class: 'peer', href: chatHref(e.peer), title: e.peer }, name)
      : h('span', { class: 'peer' }, name);
    const time = h('time', { class: 'time', datetime: e.started, title: formatFull(e.started) }, formatTime(e.started));
    return h('li', { class: `entry kind-${e.kind}${e.kind === 'call' && e.answered === false ? ' missed' : ''}`, 'data-id': e.id, 'data-kind': e.kind },
      h('span', { class: 'kind-icon', 'aria-hidden': 'true' }, e.kind === 'call' ? '☎' : e.kind === 'meeting' ? '▣' : '✉'),
      h('span', { class: 'entry-main' }, peer, h('span', { class: 'kind' }, kindText(e))),
      h('span', { class: 'entry-side' }, time, details));
  }

  function render() {
    clear(list);
    for (const e of entries) list.append(row(e));
    more.hidden = !hasMore;
    if (!loaded) return;
    if (!entries.length) bindText(status, 'journal.empty');
    else if (!hasMore) bindText(status, 'journal.end');
    else status.textContent = '';
  }

  async function load(before) {
    if (busy) return;
    busy = true;
    if (before === undefined) bindText(status, 'journal.loading');
    more.disabled = true;
    bindText(more, 'journal.more_busy');
    const r = await api.journal({ before, limit: PAGE });
    busy = false;
    more.disabled = false;
    bindText(more, 'journal.more');
    if (r.status !== 200) {
      bindText(status, 'journal.failed', { detail: api.problemText(r) ?? (() => t('net.unreachable')) });
      return;
    }
    const got = Array.isArray(r.json?.entries) ? r.json.entries.filter((e) => e && e.id !== undefined) : [];
    entries = before === undefined ? got : entries.concat(got);
    hasMore = got.length >= PAGE;
    loaded = true;
    render();
  }

  more.addEventListener('click', async () => {
    const n = entries.length;
    await load(entries[entries.length - 1]?.id);
    // The first new entry gets the focus, so the keyboard continues there.
    const first = list.children[n]?.querySelector('a');
    if (first) first.focus();
    else if (more.hidden) heading.focus();
  });

  onLanguageChange(() => { if (loaded) render(); });

  return {
    element,
    show({ focus = true } = {}) {
      element.hidden = false;
      if (focus) heading.focus();
      load();
    },
    hide() { element.hidden = true; },
    reset() { entries = []; loaded = false; hasMore = false; clear(list); status.textContent = ''; },
  };
}
