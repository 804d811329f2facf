// The domain change: a modal dialog with the dry-run preview (users, samples,
// mobile devices, subscriptions, federation FQDN carry-over) and an explicit
// confirmation (typing the new domain) before the change is applied.
import * as api from './api.js';
import { h } from './dom.js';
import { bindText } from './i18n.js';

/* The problem's sentence and its fields' messages, each once: a message the
 * sentence already holds is not repeated. */
function problemSentences(r) {
  const head = api.problemText(r);
  const rest = (r.json?.errors ?? []).map((e) => e.message).filter((m) => m && !head.includes(m));
  return [head, ...rest].join(' ');
}

export function createDomainDialog({ onApplied }) {
  const title = bindText(h('h2', { id: 'domain-dialog-title' }), 'dialog.title');
  const intro = h('p', { class: 'intro', id: 'domain-dialog-intro' });
  const input = h('input', { type: 'text', id: 'domain-new', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off' });
  const previewBtn = bindText(h('button', { type: 'submit', class: 'primary', id: 'domain-preview-button' }), 'dialog.preview');
  const status = h('p', { class: 'dialog-status', id: 'domain-status', role: 'status', 'aria-live': 'polite' });

  const dl = h('dl', { class: 'preview-facts' });
  const samples = h('ul', { class: 'samples', id: 'domain-samples' });
  const previewHeading = h('h3', { id: 'domain-preview-heading' });
  const confirmLabel = h('label', { for: 'domain-confirm' });
  const confirm = h('input', { type: 'text', id: 'domain-confirm', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off' });
  const applyBtn = bindText(h('button', { type: 'button', class: 'danger', id: 'domain-apply-button', disabled: true }), 'dialog.apply');
  const preview = h('section', { class: 'preview', id: 'domain-preview', hidden: true, 'aria-labelledby': 'domain-preview-heading' },
    previewHeading, dl, bindText(h('h4', {}), 'dialog.samples'), samples,
    h('div', { class: 'field' }, confirmLabel, confirm), h('div', { class: 'buttons' }, applyBtn));
  const cancelBtn = bindText(h('button', { type: 'button', class: 'secondary', id: 'domain-cancel-button' }), 'dialog.cancel');

  const askForm = h('form', { class: 'domain-ask', novalidate: true },
    h('div', { class: 'field' }, bindText(h('label', { for: 'domain-new' }), 'dialog.new_domain'),
      h('div', { class: 'entry-line' }, input, previewBtn)));
  const element = h('dialog', { id: 'domain-dialog', 'aria-labelledby': 'domain-dialog-title', 'aria-describedby': 'domain-dialog-intro' },
    title, intro, askForm, status, preview, h('div', { class: 'dialog-actions' }, cancelBtn));

  let result = null; // the last preview
  let opener = null;
  let busy = false;
  let done = false;

  const fact = (key, value, id) => [bindText(h('dt', {}), key), h('dd', { id }, value)];

  function showPreview(p) {
    result = p;
    previewHeading.textContent = `${p.old_domain} → ${p.new_domain}`;
    const fqdn = p.federation_fqdn ?? {};
    dl.replaceChildren(
      ...fact('dialog.users', String(p.users ?? 0), 'domain-users'),
      ...fact('dialog.mobile', String(p.mobile_devices ?? 0), 'domain-mobile'),
      ...fact('dialog.subs', String(p.subscriptions ?? 0), 'domain-subs'),
      ...fact('dialog.fqdn', `${fqdn.old ?? ''} → ${fqdn.new ?? ''}`, 'domain-fqdn'));
    samples.replaceChildren();
    for (const s of p.samples ?? []) samples.append(h('li', {}, h('code', {}, s.old), ' → ', h('code', {}, s.new)));
    if (!samples.childElementCount) samples.append(bindText(h('li', {}), 'dialog.no_samples'));
    bindText(confirmLabel, 'dialog.confirm', { domain: p.new_domain });
    confirm.value = '';
    applyBtn.disabled = true;
    preview.hidden = false;
  }

  function resetPreview() {
    result = null;
    preview.hidden = true;
    applyBtn.disabled = true;
  }

  function say(kind, key, args) {
    status.className = `dialog-status ${kind}`;
    if (key) bindText(status, key, args);
    else status.textContent = '';
  }

  askForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const domain = input.value.trim();
    if (!domain || busy) { input.focus(); return; }
    busy = true;
    resetPreview();
    say('info', 'dialog.preview_busy');
    const r = await api.domainChange(domain, true);
    busy = false;
    if (r.status === 200) {
      say('', null);
      showPreview(r.json);
      confirm.focus();
    } else {
      const detail = problemSentences(r);
      say('error', 'dialog.preview_failed', { detail });
      input.focus();
    }
  });
  input.addEventListener('input', resetPreview);
  confirm.addEventListener('input', () => {
    applyBtn.disabled = !result || confirm.value.trim().toLowerCase() !== String(result.new_domain).toLowerCase();
  });
  applyBtn.addEventListener('click', async () => {
    if (!result || busy || applyBtn.disabled) return;
    busy = true;
    applyBtn.disabled = true;
    say('info', 'dialog.apply_busy');
    const r = await api.domainChange(result.new_domain, false);
    busy = false;
    if (r.status === 200) {
      done = true;
      preview.hidden = true;
      askForm.hidden = true;
      say('ok', 'dialog.done', { domain: r.json?.new_domain ?? result.new_domain });
      bindText(cancelBtn, 'dialog.close');
      cancelBtn.focus();
      await onApplied();
    } else {
      applyBtn.disabled = false;
      const detail = problemSentences(r);
      say('error', 'dialog.failed', { detail });
    }
  });
  cancelBtn.addEventListener('click', () => element.close());
  element.addEventListener('close', () => opener?.focus());

  return {
    element,
    open(doc, from) {
      opener = from;
      done = false;
      const old = doc?.settings?.['domain.name']?.value ?? '';
      bindText(intro, 'dialog.intro', { old });
      input.value = '';
      askForm.hidden = false;
      bindText(cancelBtn, 'dialog.cancel');
      say('', null);
      resetPreview();
      element.showModal();
      input.focus();
    },
    get done() { return done; },
  };
}
