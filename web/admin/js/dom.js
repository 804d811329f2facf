// Small DOM helpers: element creation without innerHTML (no markup from
// strings, so server text can never become HTML).

/** h('button', {class: 'primary', onclick: fn}, 'Save') */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

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
