// The shared helpers (web/common/dom.js), and this page's own below.
export { append, clear, h } from '../common/dom.js';

/** A string usable inside an id ("bob@example.com" → "bob-example-com"). */
export function slug(s) {
  return String(s).toLowerCase().replace(/[^a-z0-9]+/g, '-');
}
