// The users import dialog: a CSV or JSON file as it is to
// POST /api/v1/users/import. The server checks every row before it writes
// any: a refused import imports nothing, and its row-level errors (row,
// CSV line, column, message) are listed here. An answer 202 with a job is
// polled until the job ends ("Import running…"); today's server answers at
// once, and both are handled.
import * as api from './api.js';
import { h } from './dom.js';
import { bindPlural, bindText, t, unbindText } from './i18n.js';

const MAX_BYTES = 64 * 1024 * 1024; // the server's limit per request
const POLL_MS = 1000;
const POLL_MAX_MS = 60 * 60 * 1000;
const ERRORS_MAX = 50; // what the server reports at most
const RUNNING = new Set(['queued', 'pending', 'running', 'started', 'in-progress', 'in_progress']);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** CSV unless the file says JSON (its name, its type or its first character). */
export function isCsv(file, text) {
  const name = (file?.name ?? '').toLowerCase();
  if (name.endsWith('.csv')) return true;
  if (name.endsWith('.json')) return false;
  if (/json/.test(file?.type ?? '')) return false;
  if (/csv/.test(file?.type ?? '')) return true;
  return !/^\uFEFF?\s*[[{]/.test(text);
}

/** Where a 202 says the job is: the Location header, else "job" (a URL, an
 * object with one, or an id). */
function jobUrl(r) {
  const loc = r.headers?.get?.('Location');
  if (loc) return loc;
  const job = r.json?.job ?? r.json;
  if (typeof job === 'string') return job.includes('/') ? job : `/jobs/${encodeURIComponent(job)}`;
  const url = job?.url ?? job?.href ?? job?.location;
  if (url) return url;
  if (job?.id !== undefined) return `/jobs/${encodeURIComponent(job.id)}`;
  return null;
}

export function createImportDialog({ onImported }) {
  const title = bindText(h('h2', { id: 'users-import-title' }), 'users.import_title');
  const intro = bindText(h('p', { class: 'intro', id: 'users-import-intro' }), 'users.import_intro');
  const file = h('input', { type: 'file', id: 'users-import-file', accept: '.csv,.json,text/csv,application/json', 'aria-describedby': 'users-import-help' });
  const help = bindText(h('p', { class: 'help', id: 'users-import-help' }), 'users.import_help');
  const example = h('pre', { class: 'import-example', id: 'users-import-example' },
    'name,display_name,windows_account,password,enabled\nalice,Alice Example,CORP\\alice,,true');
  const submit = bindText(h('button', { type: 'submit', class: 'primary', id: 'users-import-submit' }), 'users.import_submit');
  const status = h('p', { class: 'dialog-status', id: 'users-import-status', role: 'status', 'aria-live': 'polite' });
  // A job's progress: the passwords hashed so far of all the file's rows.
  const progress = h('progress', { id: 'users-import-progress', max: 1, value: 0, hidden: true, 'aria-labelledby': 'users-import-status' });
  const progressText = h('p', { class: 'help', id: 'users-import-progress-text', hidden: true });
  const errorsHeading = h('h3', { id: 'users-import-errors-h', tabindex: '-1', hidden: true });
  const errors = h('ul', { class: 'import-errors', id: 'users-import-errors', 'aria-labelledby': 'users-import-errors-h', hidden: true });
  const close = bindText(h('button', { type: 'button', class: 'secondary', id: 'users-import-close' }), 'users.close');
  const form = h('form', { novalidate: true },
    h('div', { class: 'field' }, bindText(h('label', { for: 'users-import-file' }), 'users.import_file'), file, help, example),
    h('div', { class: 'buttons' }, submit));
  const element = h('dialog', { id: 'users-import-dialog', class: 'user-dialog wide', 'aria-labelledby': 'users-import-title', 'aria-describedby': 'users-import-intro' },
    title, intro, form, status, progress, progressText, errorsHeading, errors, h('div', { class: 'dialog-actions' }, close));

  let opener = null;
  let busy = false;
  let run = 0; // a closed dialog stops polling its job

  function say(kind, key, args, n) {
    status.className = `dialog-status ${kind}`;
    if (n !== undefined) bindPlural(status, key, n, args);
    else if (key) bindText(status, key, args);
    else unbindText(status);
  }

  function clearErrors() {
    errors.replaceChildren();
    errors.hidden = true;
    errorsHeading.hidden = true;
  }

  function showErrors(r) {
    const list = r.json?.errors ?? [];
    errors.replaceChildren(...list.map((e) => {
      // The server's sentence starts with "Row 3 (line 4): "; the row and
      // line are said in the page's language instead.
      const message = String(e.message ?? '').replace(/^Row \d+(?: \(line \d+\))?: /, '');
      const where = e.row
        ? (e.line ? t('users.import_row_line', { row: e.row, line: e.line }) : t('users.import_row', { row: e.row }))
        : null;
      return h('li', { 'data-row': e.row ?? '', 'data-key': e.key ?? '' },
        where ? h('strong', { class: 'import-where' }, where) : '', where ? ' ' : '',
        e.key ? [h('code', {}, e.key), ': '] : '', message);
    }));
    errors.hidden = !list.length;
    errorsHeading.hidden = !list.length;
    const rows = new Set(list.map((e) => e.row).filter(Boolean)).size;
    if (list.length) {
      bindText(errorsHeading, list.length >= ERRORS_MAX ? 'users.import_errors_first' : 'users.import_errors', { n: list.length });
      say('error', rows ? 'users.import_refused_rows' : 'users.import_refused', { detail: api.problemText(r) }, rows || undefined);
    } else {
      say('error', 'users.import_refused', { detail: api.problemText(r) });
    }
    (list.length ? errorsHeading : file).focus();
  }

  function showProgress(job) {
    const total = Number(job?.total), done = Number(job?.done);
    const known = Number.isFinite(total) && total > 0 && Number.isFinite(done);
    progress.hidden = !known;
    progressText.hidden = !known;
    if (!known) return;
    progress.max = total;
    progress.value = Math.min(done, total);
    bindText(progressText, 'users.import_progress', { done: Math.min(done, total), total });
  }

  function hideProgress() {
    progress.hidden = true;
    progressText.hidden = true;
  }

  async function poll(url, mine) {
    const until = Date.now() + POLL_MAX_MS;
    while (Date.now() < until) {
      await sleep(POLL_MS);
      if (mine !== run) return null;
      const r = await api.users.job(url);
      if (mine !== run) return null;
      const state = String(r.json?.state ?? r.json?.status ?? '').toLowerCase();
      showProgress(r.json);
      if (r.status === 202 || (r.status === 200 && RUNNING.has(state))) continue;
      if (r.status === 200 && (state === 'failed' || r.json?.errors?.length)) {
        return { status: 422, json: r.json?.result ?? r.json, headers: r.headers };
      }
      if (r.status === 200) return { status: 200, json: r.json?.result ?? r.json, headers: r.headers };
      return r;
    }
    return { status: 0, json: { detail: t('users.import_timeout') } };
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (busy) return;
    clearErrors();
    const f = file.files?.[0];
    if (!f) { say('error', 'users.import_choose'); file.focus(); return; }
    if (f.size > MAX_BYTES) { say('error', 'users.import_too_big'); file.focus(); return; }
    if (f.size === 0) { say('error', 'users.import_empty'); file.focus(); return; }
    busy = true;
    submit.disabled = true;
    const mine = ++run;
    say('info', 'users.import_sending');
    const text = await f.text();
    let r = await api.users.import(text, isCsv(f, text));
    if (r.status === 202) {
      const url = jobUrl(r);
      say('info', 'users.import_running');
      r = url ? await poll(url, mine) : { status: 0, json: { detail: t('users.import_no_job') } };
    }
    busy = false;
    submit.disabled = false;
    hideProgress();
    if (!r || mine !== run) return;
    if (r.status === 200) {
      const n = r.json?.imported ?? 0;
      say('ok', 'users.import_done', {}, n);
      file.value = '';
      onImported(n);
    } else if (r.status !== 401) {
      showErrors(r);
    }
  });
  close.addEventListener('click', () => element.close());
  element.addEventListener('close', () => { run++; busy = false; submit.disabled = false; opener?.focus(); });

  return {
    element,
    open(from) {
      opener = from;
      file.value = '';
      clearErrors();
      say('', null);
      element.showModal();
      file.focus();
    },
  };
}
