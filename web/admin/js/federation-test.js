// "Test federation" under Federation: the partner domain typed here goes to
// POST /api/v1/federation/test and each step comes back with its sentence
// (our DNS records, our certificate, the partner's records, TLS, OPTIONS).
import * as api from './api.js';
import { h } from './dom.js';
import { bindText } from './i18n.js';
import { onTestClick, showTestError } from './test-box.js';

export function createFederationTest() {
  const input = h('input', { type: 'text', id: 'federation-test-domain', autocomplete: 'off',
    spellcheck: 'false', placeholder: 'partner.example.com', 'aria-describedby': 'federation-test-hint' });
  const label = bindText(h('label', { for: 'federation-test-domain' }), 'federation.test_domain');
  const button = bindText(h('button', { type: 'button', class: 'secondary', id: 'federation-test-button' }),
    'federation.test');
  const hint = bindText(h('p', { class: 'help', id: 'federation-test-hint' }), 'federation.test_hint');
  const result = h('div', { class: 'test-result', id: 'federation-test-result', role: 'status', 'aria-live': 'polite' });
  const element = h('div', { class: 'proxy-test federation-test' }, label, input, button, hint, result);
  onTestClick(button, result, 'federation.test_busy', async () => {
    const r = await api.federationTest(input.value.trim());
    if (r.status === 200 && r.json) {
      const ok = !!r.json.ok;
      result.className = `test-result ${ok ? 'ok' : 'error'}`;
      const list = h('ul', { class: 'test-steps' });
      for (const s of r.json.steps ?? []) {
        const mark = s.ok === true ? '✓' : s.ok === false ? '✗' : '–';
        list.append(h('li', { class: s.ok === true ? 'ok' : s.ok === false ? 'error' : 'skipped' },
          h('strong', {}, `${mark} ${s.step}`), ' ', s.sentence));
      }
      result.replaceChildren(bindText(h('strong', { class: 'test-title' }),
        ok ? 'federation.test_ok' : 'federation.test_failed'), list);
    } else if (r.status !== 401) {
      showTestError(result, r, 'federation.test_error');
    }
  });
  return { element };
}
