// "Test connection" under Proxy settings: sends the proxy values currently in
// the form (saved or not) to POST /api/v1/proxy/test and shows the server's
// message as it is. The busy button and the error box are the other test
// boxes' (test-box.js).
import * as api from './api.js';
import { h } from './dom.js';
import { bindText } from './i18n.js';
import { onTestClick, showTestError } from './test-box.js';

// onFieldErrors(errors) puts the server's per-key messages beside their
// fields as well (an invalid port is fixed there, not in the result box);
// it gets [] when a test starts.
export function createProxyTest(currentValues, onFieldErrors = () => {}) {
  const button = bindText(h('button', { type: 'button', class: 'secondary', id: 'proxy-test-button',
    'aria-describedby': 'proxy-test-hint' }), 'proxy.test');
  const hint = bindText(h('p', { class: 'help', id: 'proxy-test-hint' }), 'proxy.test_hint');
  const heading = h('strong', { class: 'test-title', id: 'proxy-test-title' });
  const message = h('p', { class: 'test-message', id: 'proxy-test-message' });
  const meta = h('p', { class: 'test-meta', id: 'proxy-test-meta' });
  const result = h('div', { class: 'test-result', id: 'proxy-test-result', role: 'status', 'aria-live': 'polite' });
  const element = h('div', { class: 'proxy-test' }, button, hint, result);
  onTestClick(button, result, 'proxy.test_busy', async () => {
    onFieldErrors([]);
    const r = await api.proxyTest(currentValues());
    if (r.status === 200 && r.json) {
      const ok = !!r.json.ok;
      result.className = `test-result ${ok ? 'ok' : 'error'}`;
      bindText(heading, ok ? 'proxy.test_ok' : 'proxy.test_failed');
      message.textContent = r.json.message ?? '';
      meta.replaceChildren();
      const bits = [];
      if (r.json.stage) bits.push(bindText(h('span'), 'proxy.test_stage', { stage: r.json.stage }));
      if (r.json.http_status) bits.push(bindText(h('span'), 'proxy.test_http', { status: r.json.http_status }));
      if (r.json.elapsed_ms !== undefined) bits.push(bindText(h('span'), 'proxy.test_elapsed', { ms: r.json.elapsed_ms }));
      bits.forEach((b, i) => meta.append(...(i ? [' · ', b] : [b])));
      result.replaceChildren(heading, message, meta);
    } else if (r.status !== 401) {
      showTestError(result, r, 'proxy.test_error', 'proxy-test-message');
      onFieldErrors(r.json?.errors ?? []);
    }
  });
  return { element };
}
