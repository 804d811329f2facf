// "Test push" under Mobile App: POST /api/v1/push/test with the saved
// settings, through the route real notifications take (the proxy when
// "Use proxy settings for sending push notifications" is on). Each hop comes
// back with its sentence: the credentials, the proxy, CONNECT, TLS, HTTP/2,
// the provider's verdict on our token, its answer. Without a device token
// the server sends a made-up one, and "bad device token" from a provider
// that accepted our credentials counts as success.
import * as api from './api.js';
import { h } from './dom.js';
import { bindText } from './i18n.js';
import { onTestClick, showTestError } from './test-box.js';

export function createPushTest() {
  const provider = h('select', { id: 'push-test-provider' },
    h('option', { value: '' }, ''),
    h('option', { value: 'apns' }, 'APNs'),
    h('option', { value: 'fcm' }, 'FCM'),
    h('option', { value: 'gateway' }, 'Push gateway'));
  const autoOption = provider.options[0];
  bindText(autoOption, 'push.test_provider_auto');
  const providerLabel = bindText(h('label', { for: 'push-test-provider' }), 'push.test_provider');
  const token = h('input', { type: 'text', id: 'push-test-token', autocomplete: 'off', spellcheck: 'false',
    'aria-describedby': 'push-test-hint' });
  const tokenLabel = bindText(h('label', { for: 'push-test-token' }), 'push.test_token');
  const button = bindText(h('button', { type: 'button', class: 'secondary', id: 'push-test-button' }), 'push.test');
  const hint = bindText(h('p', { class: 'help', id: 'push-test-hint' }), 'push.test_hint');
  const result = h('div', { class: 'test-result', id: 'push-test-result', role: 'status', 'aria-live': 'polite' });
  const element = h('div', { class: 'proxy-test push-test' },
    h('div', { class: 'push-test-fields' },
      h('div', {}, providerLabel, provider), h('div', {}, tokenLabel, token)),
    button, hint, result);
  onTestClick(button, result, 'push.test_busy', async () => {
    const body = {};
    if (provider.value) body.provider = provider.value;
    if (token.value.trim()) body.token = token.value.trim();
    const r = await api.pushTest(body);
    if (r.status === 200 && r.json) {
      const ok = !!r.json.ok;
      result.className = `test-result ${ok ? 'ok' : 'error'}`;
      const list = h('ul', { class: 'test-steps' });
      for (const s of r.json.stages ?? []) {
        list.append(h('li', { class: s.ok ? 'ok' : 'error', 'data-stage': s.stage },
          h('strong', {}, `${s.ok ? '✓' : '✗'} ${s.stage}`), ' ', s.detail));
      }
      result.replaceChildren(h('p', { class: 'test-message', id: 'push-test-message' }, r.json.message ?? ''), list);
    } else if (r.status !== 401) {
      showTestError(result, r, 'push.test_error', 'push-test-message');
    }
  });
  return { element };
}
