// Web meetings: create one (title, optional start, invitees, who get the
// link as a chat from you), see your meetings, and open one as its host.
// The meeting itself runs on the meeting page (the join link); the web
// client hands it a single-use ticket so that you come in as yourself.
import * as api from './api.js';
import { clear, h } from './dom.js';
import { bindText, formatFull, t } from './i18n.js';

export function createMeetingsView() {
  const heading = bindText(h('h2', { id: 'meetings-heading', tabindex: '-1' }), 'meetings.heading');
  const title = h('input', { id: 'meeting-title', required: true, maxlength: '200' });
  const start = h('input', { id: 'meeting-start', type: 'datetime-local' });
  const invitees = h('input', { id: 'meeting-invitees', autocomplete: 'off' });
  const submit = bindText(h('button', { id: 'meeting-create' }), 'meetings.create');
  const status = h('p', { class: 'status', id: 'meetings-status', role: 'status' });
  const created = h('div', { id: 'meeting-created', hidden: true });
  const form = h('form', { id: 'meeting-form', class: 'meeting-form' },
    h('label', {}, bindText(h('span'), 'meetings.title'), title),
    h('label', {}, bindText(h('span'), 'meetings.start'), start),
    h('label', {}, bindText(h('span'), 'meetings.invitees'), invitees),
    bindText(h('p', { class: 'hint' }), 'meetings.invitees_hint'),
    submit);
  const list = h('ul', { class: 'meetings', id: 'meetings-list', 'aria-labelledby': 'meetings-heading' });
  const element = h('section', { class: 'view meetings-view', id: 'view-meetings', 'aria-labelledby': 'meetings-heading', hidden: true },
    h('div', { class: 'journal-scroll' }, heading, bindText(h('p', { class: 'intro' }), 'meetings.intro'),
      form, status, created, bindText(h('h3'), 'meetings.yours'), list));

  async function openAsHost(id) {
    // The window opens now, inside the click: a popup opened after an await is blocked.
    const w = window.open('', '_blank');
    const r = await api.call('POST', `/meetings/${encodeURIComponent(id)}/ticket`);
    if (r.status !== 200) {
      w?.close();
      bindText(status, 'meetings.failed', { detail: api.problemText(r) ?? t('net.unreachable') });
      return;
    }
    if (w) w.location.href = r.json.page_url;
    else location.href = r.json.page_url;
  }

  function row(m) {
    const open = bindText(h('button', { type: 'button', class: 'secondary small', 'data-id': m.id }), 'meetings.open');
    open.addEventListener('click', () => openAsHost(m.id));
    const when = m.start ? h('time', { datetime: m.start }, formatFull(m.start)) : '';
    return h('li', { 'data-id': m.id, class: m.ended ? 'ended' : '' },
      h('strong', {}, m.title), ' ', when, ' ',
      h('a', { href: m.join_url, class: 'join-link' }, m.join_url), ' ', m.ended ? bindText(h('span'), 'meetings.ended') : open);
  }

  async function load() {
    const r = await api.call('GET', '/meetings');
    clear(list);
    if (r.status === 200) for (const m of r.json.meetings) list.append(row(m));
    else bindText(status, 'meetings.failed', { detail: api.problemText(r) ?? t('net.unreachable') });
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { title: title.value.trim() };
    if (start.value) body.start = new Date(start.value).toISOString();
    const names = invitees.value.split(/[\s,;]+/).filter(Boolean);
    if (names.length) body.invitees = names;
    submit.disabled = true;
    const r = await api.call('POST', '/meetings', { body });
    submit.disabled = false;
    if (r.status !== 201) {
      const field = r.json?.errors?.[0];
      bindText(status, 'meetings.failed', { detail: field ? `${field.key}: ${field.message}` : (api.problemText(r) ?? t('net.unreachable')) });
      status.className = 'status error';
      return;
    }
    status.className = 'status';
    bindText(status, 'meetings.created', { title: r.json.title });
    clear(created);
    const open = bindText(h('button', { type: 'button', id: 'meeting-open' }), 'meetings.open');
    open.addEventListener('click', () => openAsHost(r.json.id));
    created.append(bindText(h('p'), 'meetings.link'), h('p', {}, h('a', { href: r.json.join_url, id: 'meeting-link' }, r.json.join_url)), open);
    created.hidden = false;
    form.reset();
    load();
  });

  return {
    element,
    show({ focus } = {}) { element.hidden = false; load(); if (focus) heading.focus(); },
    hide() { element.hidden = true; },
    reset() { clear(list); clear(created); created.hidden = true; status.textContent = ''; },
  };
}
