// The shared helpers (web/common/dom.js), and this page's own below.
export { append, clear, h } from '../common/dom.js';

/** "proxy.host" → "proxy-host": a setting key as an id fragment. */
export function slug(key) {
  return String(key).replace(/[^A-Za-z0-9]+/g, '-');
}

/** Sets aria-describedby to the ids of the given elements that are shown. */
export function describe(input, elements) {
  const ids = elements.filter((e) => e && !e.hidden && e.id).map((e) => e.id);
  if (ids.length) input.setAttribute('aria-describedby', ids.join(' '));
  else input.removeAttribute('aria-describedby');
}
