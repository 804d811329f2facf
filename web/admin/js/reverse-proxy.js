// The reverse-proxy URL list (GET /api/v1/reverse-proxy): under Mobile App,
// UM Settings, Web meeting and Online documentation the external URLs the
// reverse proxy must forward, each with a copy button; under Server address
// the upstream, the trusted proxies and the API's warnings and conflicts. Every
// box offers the generated nginx configuration as a file download. The list
// follows the SAVED settings: the page calls refresh() after loading and after
// every save.
import * as api from './api.js';
import { h } from './dom.js';
import { bindAttr, bindPlural, bindText, t } from './i18n.js';

/** Which features each settings section shows. */
export const SECTION_FEATURES = {
  mobile: ['mobile.app', 'mobile.webapi'],
  um: ['um'],
  meeting: ['meeting'],
  docs: ['docs'],
};
const KNOWN_FEATURES = new Set(Object.values(SECTION_FEATURES).flat());
const NGINX_FILE = 'atrium.conf';

const featureName = (f, fallback) => (KNOWN_FEATURES.has(f) ? t(`rp.feature.${f}`) : fallback ?? f);
const featureSlug = (f) => String(f).replace(/[^A-Za-z0-9]+/g, '-');

// ---- copying --------------------------------------------------------------------------

function selectText(el) {
  const range = document.createRange();
  range.selectNodeContents(el);
  const sel = window.getSelection();
  sel.removeAllRanges();
  sel.addRange(range);
}

/** Copies the text of el; resolves 'copied' or 'selected' (the user copies). */
async function copyText(el) {
  const text = el.textContent;
  if (window.isSecureContext && navigator.clipboard?.writeText) {
    try {
      await navigator.clipboard.writeText(text);
      return 'copied';
    } catch { /* not allowed: fall back to the selection */ }
  }
  // Without the Clipboard API (an http:// page that is not localhost, or the
  // permission refused) the URL is selected, ready for Ctrl+C.
  selectText(el);
  let ok = false;
  try { ok = document.execCommand('copy'); } catch { ok = false; }
  return ok ? 'copied' : 'selected';
}

// ---- the nginx download -----------------------------------------------------------------

async function downloadNginx(button, say) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  say('info', 'rp.nginx_busy');
  const r = await api.reverseProxyNginx();
  button.disabled = false;
  button.removeAttribute('aria-busy');
  if (r.status !== 200) {
    if (r.status !== 401) say('error', 'rp.nginx_failed', { detail: api.problemText(r) });
    return;
  }
  const url = URL.createObjectURL(new Blob([r.text], { type: 'text/plain;charset=utf-8' }));
  const a = h('a', { href: url, download: NGINX_FILE, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  say('ok', 'rp.nginx_done', { file: NGINX_FILE });
}

export function createReverseProxy() {
  let doc = null;
  let failure = null;
  let seq = 0;
  const boxes = new Map();
  let overview = null;

  function statusLine(id) {
    const el = h('p', { class: 'rp-status', id, role: 'status', 'aria-live': 'polite' });
    const say = (kind, key, args) => {
      el.className = `rp-status ${kind}`;
      if (key) bindText(el, key, args);
      else el.textContent = '';
    };
    return { el, say };
  }

  function nginxButton(id, say) {
    const button = bindText(h('button', { type: 'button', class: 'secondary small rp-nginx', id }), 'rp.nginx');
    button.addEventListener('click', () => downloadNginx(button, say));
    return button;
  }

  function conflictItem(c) {
    return h('li', { 'data-code': 'conflict' }, bindText(h('strong'), 'field.warning'), ' ',
      bindText(h('span'), 'rp.conflict', {
        url: c.url, a: () => featureName(c.features), b: () => featureName(c.also),
      }));
  }

  // ---- one box per settings section -----------------------------------------------------

  /** The box for the settings section `section` (a key of SECTION_FEATURES). */
  function box(section) {
    const features = SECTION_FEATURES[section];
    const id = `rp-${section}`;
    const heading = bindText(h('h3', { id: `${id}-heading` }), 'rp.heading');
    const intro = bindText(h('p', { class: 'help' }), 'rp.intro');
    const list = h('ul', { class: 'rp-list', id: `${id}-list` });
    const empty = h('p', { class: 'rp-empty', id: `${id}-empty`, hidden: true });
    const conflicts = h('ul', { class: 'warnings', id: `${id}-conflicts`, hidden: true });
    const noteLink = h('a', { href: '#rp-server', id: `${id}-notes` });
    noteLink.addEventListener('click', (ev) => {
      ev.preventDefault();
      overview?.element.scrollIntoView({ block: 'start' });
      overview?.heading.focus({ preventScroll: true });
    });
    const note = h('p', { class: 'rp-note', hidden: true }, noteLink);
    const copied = statusLine(`${id}-copied`);
    const dl = statusLine(`${id}-nginx-status`);
    const actions = h('div', { class: 'rp-actions' }, nginxButton(`${id}-nginx`, dl.say), dl.el);
    const element = h('section', { class: 'rp', id, 'aria-labelledby': `${id}-heading` },
      heading, intro, list, empty, conflicts, note, copied.el, actions);

    function entryItem(e) {
      const fs = featureSlug(e.feature);
      const url = h('code', { class: 'rp-url', id: `rp-url-${fs}` }, e.url);
      const copy = bindText(h('button', { type: 'button', class: 'secondary small rp-copy', id: `rp-copy-${fs}` }), 'rp.copy');
      bindAttr(copy, 'aria-label', 'rp.copy_label', { what: () => featureName(e.feature, e.title) });
      copy.addEventListener('click', async () => {
        const how = await copyText(url);
        copied.say('ok', how === 'copied' ? 'rp.copied' : 'rp.selected', { url: e.url });
      });
      const ws = e.websocket
        ? h('dd', { class: 'rp-ws' }, bindText(h('span'), 'rp.ws_yes'), ' ', h('code', {}, e.websocket_path ?? ''))
        : bindText(h('dd', { class: 'rp-ws' }), 'rp.ws_no');
      const title = h('span', { class: 'rp-title' });
      if (KNOWN_FEATURES.has(e.feature)) bindText(title, `rp.feature.${e.feature}`);
      else title.textContent = e.title ?? e.feature;
      return h('li', { class: 'rp-entry', 'data-feature': e.feature },
        title,
        h('div', { class: 'rp-url-line' }, url, copy),
        h('dl', { class: 'rp-facts' },
          bindText(h('dt'), 'rp.path'), h('dd', { class: 'rp-path' }, h('code', {}, e.path)),
          bindText(h('dt'), 'rp.upstream'), h('dd', { class: 'rp-upstream' }, h('code', {}, e.upstream)),
          bindText(h('dt'), 'rp.websocket'), ws));
    }

    function render() {
      list.replaceChildren();
      conflicts.replaceChildren();
      copied.say('', null);
      if (!doc) {
        empty.hidden = !failure;
        if (failure) bindText(empty, 'rp.failed', { detail: failure });
        note.hidden = true;
        return;
      }
      const entries = (doc.entries ?? []).filter((e) => features.includes(e.feature));
      for (const e of entries) list.append(entryItem(e));
      empty.hidden = entries.length > 0;
      if (!entries.length) bindText(empty, `rp.empty.${section}`);
      for (const c of doc.conflicts ?? []) {
        if (features.includes(c.features) || features.includes(c.also)) conflicts.append(conflictItem(c));
      }
      conflicts.hidden = conflicts.childElementCount === 0;
      const n = (doc.warnings ?? []).length;
      note.hidden = n === 0;
      if (n) bindPlural(noteLink, 'rp.notes', n);
    }

    const b = { element, render };
    boxes.set(section, b);
    render();
    return element;
  }

  // ---- the overview under Server address ---------------------------------------------------

  function overviewBox() {
    const heading = bindText(h('h3', { id: 'rp-server-heading', tabindex: '-1' }), 'rp.overview');
    const intro = bindText(h('p', { class: 'help' }), 'rp.overview_intro');
    const facts = h('dl', { class: 'rp-facts', id: 'rp-server-facts' });
    const warnings = h('ul', { class: 'warnings', id: 'rp-warnings', hidden: true });
    const conflicts = h('ul', { class: 'warnings', id: 'rp-server-conflicts', hidden: true });
    const failed = h('p', { class: 'error', id: 'rp-server-failed', hidden: true });
    const dl = statusLine('rp-server-nginx-status');
    const actions = h('div', { class: 'rp-actions' }, nginxButton('rp-server-nginx', dl.say), dl.el);
    const element = h('section', { class: 'rp', id: 'rp-server', 'aria-labelledby': 'rp-server-heading' },
      heading, intro, failed, facts, warnings, conflicts, actions);

    function render() {
      facts.replaceChildren();
      warnings.replaceChildren();
      conflicts.replaceChildren();
      failed.hidden = !failure;
      if (failure) bindText(failed, 'rp.failed', { detail: failure });
      if (!doc) return;
      const up = doc.upstream ?? {};
      const trusted = doc.trusted_proxies ?? [];
      facts.append(
        bindText(h('dt'), 'rp.upstream_atriumd'),
        h('dd', { id: 'rp-upstream' }, h('code', {}, up.url ?? ''),
          up.guessed ? [' ', bindText(h('span', { class: 'rp-guessed' }), 'rp.guessed')] : null),
        bindText(h('dt'), 'rp.trusted'),
        trusted.length
          ? h('dd', { id: 'rp-trusted' }, ...trusted.flatMap((p, i) => [i ? ' ' : null, h('code', {}, p)]))
          : bindText(h('dd', { id: 'rp-trusted' }), 'rp.trusted_none'),
        bindText(h('dt'), 'rp.count_label'),
        bindPlural(h('dd', { id: 'rp-count' }), 'rp.count', (doc.entries ?? []).length));
      for (const w of doc.warnings ?? []) {
        warnings.append(h('li', { 'data-code': w.code ?? '' }, bindText(h('strong'), 'field.warning'), ' ', w.message ?? ''));
      }
      warnings.hidden = warnings.childElementCount === 0;
      for (const c of doc.conflicts ?? []) conflicts.append(conflictItem(c));
      conflicts.hidden = conflicts.childElementCount === 0;
    }
    overview = { element, heading, render };
    render();
    return element;
  }

  function renderAll() {
    for (const b of boxes.values()) b.render();
    overview?.render();
  }

  /** Asks the server again; a newer call wins over an older one. */
  async function refresh() {
    const n = ++seq;
    const r = await api.reverseProxy();
    if (n !== seq) return;
    if (r.status === 200 && r.json) {
      doc = r.json;
      failure = null;
    } else if (r.status !== 401) {
      doc = null;
      failure = api.problemText(r);
    }
    renderAll();
  }

  function reset() {
    boxes.clear();
    overview = null;
  }

  return { box, overview: overviewBox, refresh, reset };
}
