// The language machinery shared by the admin page and the web client:
// English or German (the stored choice, else the browser's), texts bound to
// elements so that a switch retranslates the page in place, "{name}"
// arguments, and ".one"/".other" plurals. Each page brings its own texts
// through lookup(key, lang).

export const LANGUAGES = [{ code: 'en', name: 'English' }, { code: 'de', name: 'Deutsch' }];
const CODES = new Set(LANGUAGES.map((l) => l.code));
const BOUND = 'data-i18n-bound';

function format(s, args) {
  if (!args) return s;
  // A function argument is evaluated now: a text that is itself translated.
  return s.replace(/\{(\w+)\}/g, (m, n) => {
    const v = args[n];
    if (v === undefined) return m;
    return String(typeof v === 'function' ? v() : v);
  });
}

export function createI18n({ storageKey, lookup }) {
  let lang = 'en';
  const listeners = new Set();

  function detect() {
    let stored = null;
    try { stored = localStorage.getItem(storageKey); } catch { /* storage disabled */ }
    if (CODES.has(stored)) return stored;
    const prefs = navigator.languages?.length ? navigator.languages : [navigator.language || 'en'];
    for (const p of prefs) {
      const code = String(p).toLowerCase().slice(0, 2);
      if (CODES.has(code)) return code;
    }
    return 'en';
  }

  const t = (key, args) => format(lookup(key, lang), args);
  /** t() with the ".one"/".other" form chosen by n. */
  const tn = (key, n, args = {}) => t(`${key}.${n === 1 ? 'one' : 'other'}`, { n, ...args });
  const render = (b) => (b.n !== undefined ? tn(b.key, b.n, b.args) : t(b.key, b.args));
  let titleFn = () => t('app.title');

  function binding(el) {
    if (!el._i18n) el._i18n = { attrs: {} };
    el.setAttribute(BOUND, '');
    return el._i18n;
  }

  function retranslate(root) {
    for (const el of root.querySelectorAll(`[${BOUND}]`)) {
      const b = el._i18n;
      if (!b) continue;
      if (b.text) el.textContent = render(b.text);
      for (const [attr, a] of Object.entries(b.attrs)) el.setAttribute(attr, render(a));
    }
    document.title = titleFn();
  }

  return {
    t,
    tn,
    retranslate,
    initLanguage() {
      lang = detect();
      document.documentElement.lang = lang;
    },
    language: () => lang,
    setLanguage(code) {
      if (!CODES.has(code)) return;
      lang = code;
      try { localStorage.setItem(storageKey, code); } catch { /* storage disabled */ }
      document.documentElement.lang = lang;
      retranslate(document);
      for (const fn of listeners) fn(lang);
    },
    onLanguageChange(fn) { listeners.add(fn); },
    /** Sets el's text to t(key, args) now and after every language switch. */
    bindText(el, key, args) {
      binding(el).text = { key, args };
      el.textContent = t(key, args);
      return el;
    },
    /** Same with tn(). */
    bindPlural(el, key, n, args) {
      binding(el).text = { key, n, args };
      el.textContent = tn(key, n, args);
      return el;
    },
    bindAttr(el, attr, key, args) {
      binding(el).attrs[attr] = { key, args };
      el.setAttribute(attr, t(key, args));
      return el;
    },
    /** Forgets the text binding (the element shows data, not a UI text). */
    unbindText(el, text = '') {
      if (el._i18n) el._i18n.text = undefined;
      el.textContent = text;
      return el;
    },
    /** The document title, recomputed after a language switch. */
    setTitle(fn) {
      titleFn = fn;
      document.title = titleFn();
    },
  };
}
