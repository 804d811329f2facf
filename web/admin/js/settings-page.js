// The System settings page: one fieldset per schema section, in the schema's
// order; one control per setting. Save sends ONE PATCH with the changed keys
// and If-Match; errors land beside their fields; a stale version asks to
// reload.
import * as api from './api.js';
import { createControl } from './controls.js';
import { h, slug } from './dom.js';
import { createDomainDialog } from './domain-dialog.js';
import { bindAttr, bindPlural, bindText, setSchema, t } from './i18n.js';
import { createPrivacy } from './privacy.js';
import { createFederationTest } from './federation-test.js';
import { createPushTest } from './push-test.js';
import { createProxyTest } from './proxy-test.js';
import { SECTION_FEATURES, createReverseProxy } from './reverse-proxy.js';

// A help link per section: its guide in the documentation atriumd serves at
// /docs/ (docs/ of the repository, rendered at build time). Relative to the
// admin page, so a reverse proxy's path prefix is kept.
const DOCS_BASE = '../docs/';

const SECTION_GUIDES = {
  domain: 'directory.html#the-domain-change',
  login: 'operations/kerberos.html',
  mobile: 'operations/push.html',
  um: 'operations/reverse-proxy.html',
  meeting: 'meeting.html',
  qos: 'operations/qos.html',
  docs: 'settings.html#online-documentation',
  proxy: 'operations/proxy.html',
  server: 'operations/reverse-proxy.html',
  federation: 'operations/federation.html',
  ad: 'operations/active-directory.html',
  license: 'settings.html#license-server',
};

/** The guide of a section; the settings reference for a section without one. */
function guideOf(section) {
  return DOCS_BASE + (SECTION_GUIDES[section] ?? `settings.html`);
}

export function createSettingsPage() {
  const controls = new Map();
  let schema = null;
  let doc = null;
  let saving = false;

  const heading = bindText(h('h1', { id: 'settings-heading', tabindex: '-1' }), 'settings.heading');
  const intro = bindText(h('p', { class: 'intro' }), 'settings.intro');
  // A new tab: unsaved changes stay where they are.
  const pageGuide = bindText(h('a', { class: 'help-link', id: 'settings-guide', href: `${DOCS_BASE}admin-page.html`,
    target: '_blank', rel: 'noopener' }), 'help.page');
  const loading = bindText(h('p', { class: 'loading', role: 'status' }), 'settings.loading');
  const tocList = h('ul');
  const toc = h('nav', { class: 'toc', 'aria-labelledby': 'toc-heading' },
    bindText(h('h2', { id: 'toc-heading', class: 'toc-heading' }), 'settings.sections'), tocList);
  const sections = h('div', { class: 'sections' });

  const unsaved = h('span', { class: 'unsaved', id: 'unsaved-marker' });
  const status = h('p', { class: 'save-status', id: 'save-status', role: 'status', 'aria-live': 'polite' });
  const discardBtn = bindText(h('button', { type: 'button', class: 'secondary', id: 'discard-button' }), 'discard');
  const saveBtn = bindText(h('button', { type: 'submit', class: 'primary', id: 'save-button' }), 'save');
  const reloadBtn = bindText(h('button', { type: 'button', class: 'primary', id: 'reload-button' }), 'reload');
  const stale = h('div', { class: 'stale', id: 'stale-banner', role: 'alert', hidden: true },
    bindText(h('p', { id: 'stale-message' }), 'save.stale'), reloadBtn);
  const actionbar = h('div', { class: 'actionbar' }, stale,
    h('div', { class: 'actionbar-row' }, unsaved, status,
      h('div', { class: 'buttons' }, discardBtn, saveBtn)));
  const form = h('form', { id: 'settings-form', novalidate: true, 'aria-labelledby': 'settings-heading' },
    sections, actionbar);
  const element = h('section', { class: 'view settings-view', id: 'view-settings' },
    h('div', { class: 'page-head' }, heading, intro, h('p', { class: 'page-guide' }, pageGuide)), loading,
    h('div', { class: 'settings-layout' }, toc, form));

  const domainDialog = createDomainDialog({ onApplied: () => reload('dialog') });
  element.append(domainDialog.element);
  // The reverse-proxy list and the privacy policy follow the saved settings.
  const reverseProxy = createReverseProxy();
  const privacy = createPrivacy();
  element.append(privacy.dialog);

  // ---- status line and unsaved marker ------------------------------------------

  function setStatus(kind, key, args, plural) {
    status.className = `save-status ${kind ?? ''}`;
    if (!key) { status.textContent = ''; status._i18n = undefined; return; }
    if (plural !== undefined) bindPlural(status, key, plural, args);
    else bindText(status, key, args);
  }

  const dirtyControls = () => [...controls.values()].filter((c) => c.dirty());

  function updateDirty() {
    const n = dirtyControls().length;
    if (n) bindPlural(unsaved, 'unsaved', n);
    else bindText(unsaved, 'unsaved.none');
    unsaved.classList.toggle('has-changes', n > 0);
    element.classList.toggle('dirty', n > 0);
    document.body.classList.toggle('unsaved', n > 0);
    domainPart?.update();
  }

  // ---- the domain field: a dialog instead of editing ----------------------------

  let domainPart = null;
  function makeDomainPart(control) {
    const button = bindText(h('button', { type: 'button', class: 'secondary', id: 'domain-change-button' }),
      'domain.change');
    const blocked = bindText(h('p', { class: 'notice', id: 'domain-blocked' }), 'domain.federation_on');
    const note = h('p', { class: 'notice', id: 'domain-note', role: 'status' });
    const box = h('div', { class: 'domain-actions' }, button, blocked, note);
    control.row.insertBefore(box, control.row.querySelector('.error'));
    button.addEventListener('click', () => {
      if (dirtyControls().length) {
        bindText(note, 'domain.dirty');
        return;
      }
      note.textContent = '';
      domainDialog.open(doc, button);
    });
    return {
      update() {
        const federation = !!doc?.settings?.['federation.enabled']?.value;
        button.hidden = federation;
        blocked.hidden = !federation;
        if (!dirtyControls().length) note.textContent = '';
      },
    };
  }

  // ---- building ------------------------------------------------------------------

  function build() {
    sections.replaceChildren();
    tocList.replaceChildren();
    controls.clear();
    reverseProxy.reset();
    const bySection = new Map(schema.sections.map((s) => [s.id, []]));
    for (const def of schema.settings) {
      if (!bySection.has(def.section)) bySection.set(def.section, []);
      bySection.get(def.section).push(def);
    }
    for (const [id, defs] of bySection) {
      const help = bindText(h('a', { class: 'help-link', id: `help-${slug(id)}`, href: guideOf(id),
        target: '_blank', rel: 'noopener' }), 'help.section');
      bindAttr(help, 'aria-label', 'help.section_label', { section: () => t(`@section:${id}`) });
      const legend = h('legend', {}, h('div', { class: 'legend-line' }, bindText(h('h2', {}), `@section:${id}`), help));
      const fs = h('fieldset', { class: 'section', id: `sec-${slug(id)}`, 'data-section': id }, legend);
      for (const def of defs) {
        const c = createControl(def, () => {
          c.clearErrors();
          updateDirty();
          if (!status.classList.contains('error')) setStatus(null); // an old "Saved" would mislead
        });
        controls.set(def.key, c);
        fs.append(c.row);
        if (def.key === 'domain.name') domainPart = makeDomainPart(c);
      }
      if (id === 'proxy') fs.append(createProxyTest(proxyValues, proxyFieldErrors).element);
      if (id === 'federation') fs.append(createFederationTest().element);
      if (id === 'mobile') fs.append(createPushTest().element);
      if (SECTION_FEATURES[id]) fs.append(reverseProxy.box(id));
      if (id === 'meeting') fs.append(privacy.element);
      if (id === 'server') fs.append(reverseProxy.overview());
      sections.append(fs);
      const link = bindText(h('a', { href: `#sec-${slug(id)}` }), `@section:${id}`);
      link.addEventListener('click', (ev) => {
        ev.preventDefault();
        fs.scrollIntoView({ block: 'start' });
        const first = fs.querySelector('input:not([type=hidden]), select, button');
        first?.focus({ preventScroll: true });
      });
      tocList.append(h('li', {}, link));
    }
  }

  function applyDocument(d) {
    doc = d;
    for (const c of controls.values()) c.setEntry(d.settings?.[c.key]);
    updateDirty();
  }

  /** The proxy values in the form now (saved or not), for "Test connection". */
  function proxyValues() {
    const values = {};
    for (const c of controls.values()) {
      if (!c.key.startsWith('proxy.')) continue;
      if (c.def.type === 'secret') {
        if (c.dirty()) values[c.key] = c.value(); // unchanged: the stored password is used
        continue;
      }
      values[c.key] = c.value();
    }
    return values;
  }

  // ---- loading, saving ------------------------------------------------------------

  async function load() {
    loading.hidden = false;
    bindText(loading, 'settings.loading');
    const [s, d] = await Promise.all([api.settings.schema(), api.settings.get()]);
    if (s.status !== 200 || d.status !== 200) {
      const bad = s.status !== 200 ? s : d;
      if (bad.status !== 401) bindText(loading, 'settings.load_failed', { detail: api.problemText(bad) });
      return false;
    }
    loading.hidden = true;
    schema = s.json;
    setSchema(schema);
    build();
    applyDocument(d.json);
    reverseProxy.refresh();
    privacy.refresh();
    return true;
  }

  async function reload(why) {
    const d = await api.settings.get();
    if (d.status !== 200) {
      if (d.status !== 401) setStatus('error', 'settings.load_failed', { detail: api.problemText(d) });
      return;
    }
    hideStale();
    applyDocument(d.json);
    reverseProxy.refresh();
    if (why === 'user') setStatus('ok', 'reloaded');
  }

  function hideStale() { stale.hidden = true; }

  /** "Test connection" errors beside their proxy fields; nothing is focused. */
  function proxyFieldErrors(errors) {
    for (const c of controls.values()) if (c.key.startsWith('proxy.')) c.clearErrors();
    placeErrors(errors);
  }

  function placeErrors(errors) {
    const byKey = new Map();
    const loose = [];
    for (const e of errors ?? []) {
      if (controls.has(e.key)) {
        if (!byKey.has(e.key)) byKey.set(e.key, []);
        byKey.get(e.key).push(e);
      } else {
        loose.push(e);
      }
    }
    for (const [key, list] of byKey) controls.get(key).showErrors(list);
    return { byKey, loose };
  }

  function showErrors(errors) {
    const { byKey, loose } = placeErrors(errors);
    // Focus the first invalid field in page order.
    const first = [...controls.values()].find((c) => byKey.has(c.key));
    first?.focus();
    return { count: byKey.size + loose.length, loose };
  }

  async function save() {
    if (saving || !doc) return;
    for (const c of controls.values()) c.clearErrors();
    const changed = dirtyControls();
    if (!changed.length) {
      setStatus('info', 'save.none');
      return;
    }
    const body = {};
    for (const c of changed) body[c.key] = c.value();
    saving = true;
    saveBtn.disabled = true;
    saveBtn.setAttribute('aria-busy', 'true');
    setStatus('info', 'save.busy');
    const r = await api.settings.patch(body, doc.version);
    saving = false;
    saveBtn.disabled = false;
    saveBtn.removeAttribute('aria-busy');
    if (r.status === 200) {
      applyDocument(r.json);
      setStatus('ok', 'save.ok', {}, changed.length);
      reverseProxy.refresh(); // the published URLs follow the saved settings
    } else if (r.status === 412) {
      setStatus(null); // the banner (role=alert) says it, with the way out
      stale.hidden = false;
      reloadBtn.focus();
    } else if (r.status === 422) {
      const { count, loose } = showErrors(r.json?.errors);
      setStatus('error', 'save.invalid', { loose: loose.map((e) => e.message).join(' ') }, count);
      if (loose.length) status.append(' ', loose.map((e) => `${e.key}: ${e.message}`).join(' '));
    } else if (r.status === 401) {
      setStatus('error', 'login.expired');
    } else {
      showErrors(r.json?.errors);
      setStatus('error', 'save.failed', { detail: api.problemText(r) });
    }
  }

  form.addEventListener('submit', (ev) => { ev.preventDefault(); save(); });
  discardBtn.addEventListener('click', () => {
    if (!doc) return;
    applyDocument(doc);
    setStatus('info', 'discarded');
  });
  reloadBtn.addEventListener('click', async () => {
    await reload('user');
    heading.focus();
  });

  return {
    element,
    load,
    save,
    hasChanges: () => dirtyControls().length > 0,
    loaded: () => !!doc,
    focus: () => heading.focus(),
  };
}

