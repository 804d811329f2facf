// The web meeting's privacy policy under Web meeting: where the templates are
// (GET /api/v1/privacy), the retention time, and a preview dialog with the
// policy as guests see it (GET /api/v1/privacy/preview?lang=…) in the UI
// language.
//
// The rendered policy is an HTML fragment from a template the operator edits.
// It is parsed with DOMParser (nothing runs) and copied element by element
// through an allow-list, so no script, style, handler or foreign URL scheme
// reaches the page.
import * as api from './api.js';
import { h } from './dom.js';
import { bindPlural, bindText, language, onLanguageChange, t } from './i18n.js';

const KEEP = new Set(['a', 'abbr', 'address', 'b', 'blockquote', 'br', 'caption', 'cite', 'code', 'dd', 'div',
  'dl', 'dt', 'em', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'i', 'li', 'ol', 'p', 'section', 'small', 'span',
  'strong', 'sub', 'sup', 'table', 'tbody', 'td', 'tfoot', 'th', 'thead', 'tr', 'u', 'ul']);
const DROP = new Set(['script', 'style', 'template', 'iframe', 'object', 'embed', 'svg', 'math', 'noscript',
  'link', 'meta', 'base', 'form', 'input', 'button', 'select', 'textarea', 'img', 'video', 'audio', 'frame',
  'frameset', 'title', 'head']);

function copyNodes(from, to) {
  for (const n of from.childNodes) {
    if (n.nodeType === Node.TEXT_NODE) {
      to.append(n.textContent);
      continue;
    }
    if (n.nodeType !== Node.ELEMENT_NODE) continue; // comments
    const tag = n.localName;
    if (DROP.has(tag)) continue;
    if (!KEEP.has(tag)) { copyNodes(n, to); continue; } // unknown wrapper: its content
    const el = document.createElement(tag);
    for (const attr of ['lang', 'title', 'colspan', 'rowspan', 'scope']) {
      if (n.hasAttribute(attr)) el.setAttribute(attr, n.getAttribute(attr));
    }
    if (tag === 'a') {
      const href = n.getAttribute('href') ?? '';
      if (/^(https?:|mailto:)/i.test(href.trim())) {
        el.setAttribute('href', href.trim());
        el.setAttribute('target', '_blank');
        el.setAttribute('rel', 'noopener noreferrer');
      }
    }
    copyNodes(n, el);
    to.append(el);
  }
}

/** The policy fragment as safe DOM nodes. */
function policyNodes(html) {
  const parsed = new DOMParser().parseFromString(`<!doctype html><body>${html}</body>`, 'text/html');
  const box = document.createDocumentFragment();
  copyNodes(parsed.body, box);
  return box;
}

/** A translated sentence with {name} placeholders replaced by nodes. */
function withNodes(text, nodes) {
  return text.split(/(\{\w+\})/).map((part) => {
    const m = /^\{(\w+)\}$/.exec(part);
    return m && nodes[m[1]] ? nodes[m[1]] : part;
  }).filter((x) => x !== '');
}

export function createPrivacy() {
  // ---- the box in the Web meeting section -----------------------------------------------
  const heading = bindText(h('h3', { id: 'privacy-heading' }), 'privacy.heading');
  const intro = bindText(h('p', { class: 'help' }), 'privacy.intro');
  const retention = h('p', { class: 'privacy-retention', id: 'privacy-retention-summary' });
  const dirs = h('p', { class: 'help', id: 'privacy-dirs' });
  const templates = h('ul', { class: 'privacy-templates', id: 'privacy-templates' });
  const button = bindText(h('button', { type: 'button', class: 'secondary', id: 'privacy-preview-button',
    'aria-haspopup': 'dialog' }), 'privacy.preview');
  const element = h('section', { class: 'rp privacy', id: 'privacy-box', 'aria-labelledby': 'privacy-heading' },
    heading, intro, retention, h('div', { class: 'rp-actions' }, button), dirs, templates);

  // ---- the preview dialog -----------------------------------------------------------------
  const title = bindText(h('h2', { id: 'privacy-dialog-title' }), 'privacy.dialog_title');
  const status = h('p', { class: 'dialog-status', id: 'privacy-status', role: 'status', 'aria-live': 'polite' });
  const facts = h('dl', { class: 'preview-facts', id: 'privacy-facts', hidden: true });
  const policy = h('div', { class: 'policy', id: 'privacy-policy', tabindex: '0', hidden: true,
    'aria-labelledby': 'privacy-policy-label' });
  const policyLabel = bindText(h('h3', { class: 'visually-hidden', id: 'privacy-policy-label' }), 'privacy.policy_label');
  const closeBtn = bindText(h('button', { type: 'button', class: 'secondary', id: 'privacy-close-button' }), 'dialog.close');
  const dialog = h('dialog', { id: 'privacy-dialog', class: 'privacy-dialog', 'aria-labelledby': 'privacy-dialog-title' },
    title, status, facts, policyLabel, policy, h('div', { class: 'dialog-actions' }, closeBtn));

  let info = null;
  let seq = 0;

  const retentionText = (days, why) => (days === null || days === undefined
    ? bindText(h('span', { class: 'error' }), 'privacy.retention_unknown', { why: why ?? '' })
    : bindPlural(h('span'), 'privacy.days', days));

  const sourceKey = (s) => `privacy.source.${['install', 'custom', 'missing', 'unreadable'].includes(s) ? s : 'unreadable'}`;

  function renderInfo() {
    retention.replaceChildren();
    dirs.replaceChildren();
    templates.replaceChildren();
    if (!info) return;
    retention.append(bindText(h('strong'), 'privacy.retention'), ': ',
      retentionText(info.retention_days, info.retention_error));
    dirs.append(...withNodes(t('privacy.dirs'), {
      install: h('code', { id: 'privacy-install-dir' }, info.install_directory ?? ''),
      custom: h('code', { id: 'privacy-custom-dir' }, info.custom_directory ?? ''),
      command: h('code', {}, 'atriumctl privacy customize'),
    }));
    for (const tpl of info.templates ?? []) {
      templates.append(h('li', { 'data-lang': tpl.lang ?? '' },
        bindText(h('span'), `privacy.lang.${tpl.lang === 'de' ? 'de' : 'en'}`), ': ',
        bindText(h('span'), sourceKey(tpl.source)),
        tpl.path ? [' ', h('code', {}, tpl.path)] : null));
    }
  }

  /** Reloads the template directories and the retention time. */
  async function refresh() {
    const r = await api.privacyInfo();
    if (r.status === 200 && r.json) info = r.json;
    renderInfo();
  }

  function say(kind, key, args) {
    status.className = `dialog-status ${kind}`;
    if (key) bindText(status, key, args);
    else status.textContent = '';
  }

  async function loadPreview() {
    const n = ++seq;
    const lang = language();
    facts.hidden = true;
    policy.hidden = true;
    say('info', 'privacy.loading');
    const [r, i] = await Promise.all([api.privacyPreview(lang), api.privacyInfo()]);
    if (n !== seq) return;
    if (i.status === 200 && i.json) { info = i.json; renderInfo(); }
    if (r.status !== 200 || !r.json) {
      if (r.status !== 401) say('error', 'privacy.failed', { detail: api.problemText(r) });
      return;
    }
    const p = r.json;
    say('', null);
    facts.replaceChildren(
      bindText(h('dt'), 'privacy.language'),
      bindText(h('dd', { id: 'privacy-lang' }), `privacy.lang.${p.lang === 'de' ? 'de' : 'en'}`),
      bindText(h('dt'), 'privacy.retention'),
      h('dd', { id: 'privacy-retention' }, retentionText(p.retention_days, info?.retention_error)),
      bindText(h('dt'), 'privacy.template'),
      h('dd', { id: 'privacy-source' }, bindText(h('span'), sourceKey(p.source)), ' ', h('code', {}, p.path ?? '')));
    policy.replaceChildren(policyNodes(p.html ?? ''));
    policy.setAttribute('lang', p.lang ?? lang);
    facts.hidden = false;
    policy.hidden = false;
    policy.scrollTop = 0;
  }

  let opener = null;
  button.addEventListener('click', () => {
    opener = button;
    dialog.showModal();
    closeBtn.focus();
    loadPreview();
  });
  closeBtn.addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => { seq += 1; opener?.focus(); });
  // The preview follows the UI language while it is open.
  onLanguageChange(() => {
    renderInfo(); // the sentence with the directories is built, not bound
    if (dialog.open) loadPreview();
  });

  return { element, dialog, refresh };
}
