// What the test boxes (Test connection, Test federation, Test push) share: one run at
// a time, the button busy meanwhile, a "testing…" line in the live result,
// and the sentence for a test that could not run at all.
import * as api from './api.js';
import { h } from './dom.js';
import { bindText } from './i18n.js';

/** On a click, runs `run()` unless a run is under way. */
export function onTestClick(button, result, busyKey, run) {
  let busy = false;
  button.addEventListener('click', async () => {
    if (busy) return;
    busy = true;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    result.className = 'test-result busy';
    result.replaceChildren(bindText(h('span'), busyKey));
    try {
      await run();
    } finally {
      busy = false;
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  });
}

/** A refused or failed call: the problem's sentence and its field errors. */
export function showTestError(result, r, key, id) {
  result.className = 'test-result error';
  const detail = [api.problemText(r), ...(r.json?.errors ?? []).map((e) => `${e.key}: ${e.message}`)].join(' ');
  result.replaceChildren(bindText(h('p', { class: 'test-message', ...(id ? { id } : {}) }), key, { detail }));
}
